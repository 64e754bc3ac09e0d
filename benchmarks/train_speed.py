"""Training speed, two ways.

Per step, on identical work: distill (DistillationModule under Lightning), a minimal hand-written PyTorch loop
doing the same maths, and TextBrewer's GeneralDistiller when it is installed.

    python benchmarks/train_speed.py [--steps 40] [--rounds 2]

Same reference teacher, same student (3 layers copied from teacher layers 0, 2, 4), same fixed SST-2 batches,
same AdamW and schedule. A step's time is the interval between two consecutive batch fetches, so everything a
framework does per step is inside it; the first steps are warm-up. Runners alternate order across rounds.
Writes benchmarks/results/train_speed.json.

End to end, everything included: the quickstart (`configs/sst2/bert_l3.yaml` + `configs/quickstart.yaml`, 600
steps, `--report.enabled false`) as `distill fit` runs it, against a hand-written loop that sorts batches by
length within pools of 50, and TextBrewer fed that loop's batches. Each runs in a process of its own, timed from
start to exit, and reports its dev accuracy. Lightning's SimpleProfiler splits distill's time into its parts.

    python benchmarks/train_speed.py --end_to_end [--steps 600]

TextBrewer needs tensorboard, which would change Lightning's default logger, so it lives in a venv of its own
that also sees the main one's packages:

    python3 -m venv .venv-bench && .venv-bench/bin/pip install tensorboard && \
    .venv-bench/bin/pip install --no-deps textbrewer==0.2.1.post1 && \
    echo "import site; site.addsitedir('$PWD/.venv/lib/python3.11/site-packages')" \
        > .venv-bench/lib/python3.11/site-packages/distill-venv.pth

Without it, the end-to-end table has no TextBrewer row.
Writes benchmarks/results/train_speed_end_to_end.json; benchmarks/render.py puts both into RESULTS.md.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import random
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path

import torch
import torch.nn.functional as F
from lightning.pytorch import Trainer
from lightning.pytorch.loggers import CSVLogger
from transformers import AutoModelForSequenceClassification, AutoTokenizer, get_linear_schedule_with_warmup

from distill.plugins.losses import AttentionKD, HardLabelCE, HiddenStatesKD, LogitsKD
from distill.registry import task_from_spec
from distill.sources import DataFiles
from distill.students.encoder import BertStudent
from distill.teacher import Teacher
from distill.training.module import DistillationModule

HERE = Path(__file__).resolve().parent
TEACHER = HERE.parent.parent / "shared" / "teachers" / "minilm-l6-sst2"
SST2 = HERE.parent.parent / "shared" / "data" / "glue" / "SST-2"
TEMPERATURE, LR = 2.0, 5e-5
OFFLINE = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "WANDB_MODE": "offline"}
PAIRS = [(0, 0), (1, 2), (2, 4), (3, 6)]  # hidden states: embeddings and uniform layers; attention uses 1..3


class Clock:
    """Yields the fixed batches and stamps the time of every fetch."""

    def __init__(self, batches: list[dict], steps: int) -> None:
        self.batches, self.steps, self.stamps = batches, steps, []

    def __iter__(self) -> Iterator[dict]:
        for step in range(self.steps):
            self.stamps.append(time.perf_counter())
            yield self.batches[step % len(self.batches)]

    def step_seconds(self, warmup: int) -> list[float]:
        return [b - a for a, b in zip(self.stamps[warmup:], self.stamps[warmup + 1 :], strict=False)]


def sst2_rows(file_name: str):
    """One SST-2 file as distill's sst2 preset reads it: `sentence`, `labels` (class ids) and `idx`."""
    return task_from_spec("sst2").read(DataFiles(train=str(SST2 / file_name)), "train")


def fixed_batches(tokenizer, count: int, size: int = 32) -> list[dict]:
    rows = sst2_rows("train.tsv")
    chosen = random.Random(0).sample(range(len(rows["labels"])), count * size)
    batches = []
    for start in range(0, len(chosen), size):
        picked = chosen[start : start + size]
        encoded = tokenizer(
            [rows["sentence"][i] for i in picked], truncation=True, max_length=66, padding=True, return_tensors="pt"
        )
        batches.append({**encoded, "labels": torch.tensor([rows["labels"][i] for i in picked])})
    return batches


def student_config() -> BertStudent:
    return BertStudent(num_layers=3, init_from_teacher=[0, 2, 4])


def optimizer_for(params, steps: int):
    optimizer = torch.optim.AdamW(params, lr=LR, weight_decay=0.01)
    return optimizer, get_linear_schedule_with_warmup(optimizer, int(0.06 * steps), steps)


# --- distill ----------------------------------------------------------------------------------------------------


def run_distill(batches: list[dict], steps: int, intermediate: bool) -> Clock:
    losses = [HardLabelCE(weight=0.5), LogitsKD(weight=0.5, temperature=TEMPERATURE, kind="soft_ce")]
    if intermediate:
        losses += [HiddenStatesKD(layers=[list(p) for p in PAIRS]), AttentionKD(layers="uniform", kind="mse")]
    module = DistillationModule(
        task="sst2", student=student_config(), losses=losses, teacher=str(TEACHER), learning_rate=LR
    )
    clock = Clock(batches, steps)
    with tempfile.TemporaryDirectory() as scratch:
        trainer = Trainer(
            max_steps=steps,
            logger=CSVLogger(scratch),
            default_root_dir=scratch,
            limit_val_batches=0,
            enable_progress_bar=False,
            enable_model_summary=False,
            log_every_n_steps=50,
        )
        trainer.fit(module, train_dataloaders=clock)
    return clock


# --- the hand-written loop: the same maths in plain PyTorch ------------------------------------------------------


def qk_hooks(model, store: list) -> None:
    """Record each layer's (query, key) projections, as distill does, so attention stays on SDPA."""
    for layer in model.bert.encoder.layer:
        attention = layer.attention.self
        heads = attention.num_attention_heads

        def keep(module, inputs, output, heads=heads):
            b, t, w = output.shape
            store.append(output.view(b, t, heads, w // heads).transpose(1, 2))

        attention.query.register_forward_hook(keep)
        attention.key.register_forward_hook(keep)


def masked_hidden_mse(s, t, mask):
    m = mask.unsqueeze(-1).float()
    return ((s - t).pow(2) * m).sum() / (m.sum() * t.shape[-1])


def masked_score_mse(s, t, mask):
    tokens = mask.bool()
    m = (tokens[:, None, :, None] & tokens[:, None, None, :]).float()
    return ((s - t).pow(2) * m).sum() / (m.sum() * s.shape[1])


def scores(store: list, layer: int):
    q, k = store[2 * (layer - 1)], store[2 * (layer - 1) + 1]
    return q @ k.transpose(-1, -2) * q.shape[-1] ** -0.5


def run_hand(batches: list[dict], steps: int, intermediate: bool) -> Clock:
    teacher = Teacher(str(TEACHER)).model
    student = student_config().build(Teacher(str(TEACHER)), task_from_spec("sst2")).model
    t_store, s_store = [], []
    if intermediate:
        qk_hooks(teacher, t_store)
        qk_hooks(student, s_store)
    optimizer, scheduler = optimizer_for(student.parameters(), steps)
    student.train()
    clock = Clock(batches, steps)
    for batch in clock:
        t_store.clear(), s_store.clear()
        inputs = {k: batch[k] for k in ("input_ids", "attention_mask", "token_type_ids")}
        with torch.no_grad():
            t_out = teacher(**inputs, output_hidden_states=intermediate)
        s_out = student(**inputs, output_hidden_states=intermediate)
        p_t = F.softmax(t_out.logits / TEMPERATURE, -1)
        kd = -(p_t * F.log_softmax(s_out.logits / TEMPERATURE, -1)).sum(-1).mean() * TEMPERATURE**2
        loss = 0.5 * F.cross_entropy(s_out.logits, batch["labels"]) + 0.5 * kd
        if intermediate:
            mask = batch["attention_mask"]
            hidden = sum(masked_hidden_mse(s_out.hidden_states[s], t_out.hidden_states[t], mask) for s, t in PAIRS)
            attention = sum(masked_score_mse(scores(s_store, s), scores(t_store, t), mask) for s, t in PAIRS[1:])
            loss = loss + hidden / len(PAIRS) + attention / (len(PAIRS) - 1)
        loss.backward()
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad()
    return clock


# --- TextBrewer --------------------------------------------------------------------------------------------------


def run_textbrewer(batches: list[dict], steps: int, intermediate: bool) -> Clock:
    from textbrewer import DistillationConfig, GeneralDistiller, TrainingConfig

    teacher = Teacher(str(TEACHER)).model
    student = student_config().build(Teacher(str(TEACHER)), task_from_spec("sst2")).model
    extra = {}
    matches = []
    if intermediate:  # TextBrewer reads attention maps from model outputs, which needs the eager attention path
        for model in (teacher, student):
            model.set_attn_implementation("eager")
        extra = {"output_hidden_states": True, "output_attentions": True}
        matches = [
            {"layer_T": t, "layer_S": s, "feature": "hidden", "loss": "hidden_mse", "weight": 1 / len(PAIRS)}
            for s, t in PAIRS
        ]
        matches += [
            {
                "layer_T": t - 1,
                "layer_S": s - 1,
                "feature": "attention",
                "loss": "attention_mse",
                "weight": 1 / (len(PAIRS) - 1),
            }
            for s, t in PAIRS[1:]
        ]

    def adaptor(batch, outputs):
        result = {"logits": outputs.logits, "losses": [outputs.loss], "inputs_mask": batch["attention_mask"]}
        if intermediate:
            result |= {"hidden": outputs.hidden_states, "attention": outputs.attentions}
        return result

    optimizer, scheduler = optimizer_for(student.parameters(), steps)
    clock = Clock(batches, steps)
    with tempfile.TemporaryDirectory() as scratch:
        distiller = GeneralDistiller(
            train_config=TrainingConfig(device="cpu", log_dir=scratch, output_dir=scratch, ckpt_steps=10**9),
            distill_config=DistillationConfig(
                temperature=TEMPERATURE,
                hard_label_weight=0.5,
                kd_loss_type="ce",
                kd_loss_weight=0.5,
                intermediate_matches=matches,
            ),
            model_T=teacher,
            model_S=student,
            adaptor_T=adaptor,
            adaptor_S=adaptor,
        )
        distiller.train(optimizer, clock, num_steps=steps, scheduler=scheduler, **extra)
    return clock


# --- end to end: the quickstart's 600 steps, every cost included ------------------------------------------------

ROOT = HERE.parent
QUICKSTART = ["--config", "configs/sst2/bert_l3.yaml", "--config", "configs/quickstart.yaml"]
BENCH_PYTHON = ROOT / ".venv-bench" / "bin" / "python"  # where TextBrewer is installed (see the docstring)
SEED, MAX_LENGTH = 42, 66


def length_grouped_batches(tokenizer, steps: int, size: int = 32, pool: int = 50) -> list[dict]:
    """The hand loop's batches: each epoch shuffled, sorted by length within pools of `pool` batches, and the
    batches shuffled; padded to each batch's longest sentence."""
    rows = sst2_rows("train.tsv")
    ids = tokenizer(rows["sentence"], truncation=True, max_length=MAX_LENGTH)["input_ids"]
    rng, chosen = random.Random(SEED), []
    while len(chosen) < steps:
        order = list(range(len(ids)))
        rng.shuffle(order)
        epoch = []
        for start in range(0, len(order), size * pool):
            pooled = sorted(order[start : start + size * pool], key=lambda i: len(ids[i]), reverse=True)
            epoch += [pooled[i : i + size] for i in range(0, len(pooled), size)]
        rng.shuffle(epoch)
        chosen += epoch
    return [
        {
            **tokenizer.pad({"input_ids": [ids[i] for i in batch]}, return_tensors="pt"),
            "labels": torch.tensor([rows["labels"][i] for i in batch]),
        }
        for batch in chosen[:steps]
    ]


def copy_of_teacher_layers(teacher, layers: list[int]):
    """DistilBERT's initialisation by hand: embeddings, the chosen layers, pooler and classifier."""
    config = copy.deepcopy(teacher.config)
    config.num_hidden_layers = len(layers)
    student = type(teacher)(config)
    student.bert.embeddings.load_state_dict(teacher.bert.embeddings.state_dict())
    for mine, theirs in zip(student.bert.encoder.layer, layers, strict=True):
        mine.load_state_dict(teacher.bert.encoder.layer[theirs].state_dict())
    student.bert.pooler.load_state_dict(teacher.bert.pooler.state_dict())
    student.classifier.load_state_dict(teacher.classifier.state_dict())
    return student


@torch.no_grad()
def dev_accuracy(model, tokenizer) -> float:
    rows = sst2_rows("dev.tsv")
    model.eval()
    correct = 0
    for start in range(0, len(rows["labels"]), 64):
        encoded = tokenizer(
            rows["sentence"][start : start + 64],
            truncation=True,
            max_length=MAX_LENGTH,
            padding=True,
            return_tensors="pt",
        )
        gold = torch.tensor(rows["labels"][start : start + 64])
        correct += int((model(**encoded).logits.argmax(-1) == gold).sum())
    return correct / len(rows["labels"])


def setup_by_hand(steps: int):
    """Teacher, student, the length-grouped batches, and AdamW (no decay on biases and norms) with warm-up."""
    torch.manual_seed(SEED)
    tokenizer = AutoTokenizer.from_pretrained(TEACHER)
    teacher = AutoModelForSequenceClassification.from_pretrained(TEACHER).eval()
    student = copy_of_teacher_layers(teacher, [0, 2, 4]).train()
    exempt = ("bias", "LayerNorm.weight")
    groups = [
        {"params": [p for n, p in student.named_parameters() if not n.endswith(exempt)], "weight_decay": 0.01},
        {"params": [p for n, p in student.named_parameters() if n.endswith(exempt)], "weight_decay": 0.0},
    ]
    optimizer = torch.optim.AdamW(groups, lr=LR)
    scheduler = get_linear_schedule_with_warmup(optimizer, int(0.06 * steps), steps)
    return tokenizer, teacher, student, length_grouped_batches(tokenizer, steps), optimizer, scheduler


def hand_end_to_end(steps: int) -> float:
    """0.5 · CE + 0.5 · T² · KL at T = 2, the quickstart's objective, in a plain loop; dev accuracy at the end."""
    tokenizer, teacher, student, batches, optimizer, scheduler = setup_by_hand(steps)
    for batch in batches:
        inputs = {k: batch[k] for k in ("input_ids", "attention_mask")}
        with torch.no_grad():
            soft = F.log_softmax(teacher(**inputs).logits / TEMPERATURE, -1)
        logits = student(**inputs).logits
        kd = F.kl_div(F.log_softmax(logits / TEMPERATURE, -1), soft, log_target=True, reduction="batchmean")
        loss = 0.5 * F.cross_entropy(logits, batch["labels"]) + 0.5 * kd * TEMPERATURE**2
        loss.backward()
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad()
    return dev_accuracy(student, tokenizer)


def textbrewer_end_to_end(steps: int) -> float:
    """TextBrewer's GeneralDistiller on the hand loop's batches and optimizer; dev accuracy at the end."""
    from textbrewer import DistillationConfig, GeneralDistiller, TrainingConfig

    tokenizer, teacher, student, batches, optimizer, scheduler = setup_by_hand(steps)

    def adaptor(batch, outputs):
        return {"logits": outputs.logits, "losses": [outputs.loss]}

    with tempfile.TemporaryDirectory() as scratch:
        distiller = GeneralDistiller(
            train_config=TrainingConfig(device="cpu", log_dir=scratch, output_dir=scratch, ckpt_steps=10**9),
            distill_config=DistillationConfig(
                temperature=TEMPERATURE, hard_label_weight=0.5, kd_loss_type="ce", kd_loss_weight=0.5
            ),
            model_T=teacher,
            model_S=student,
            adaptor_T=adaptor,
            adaptor_S=adaptor,
        )
        distiller.train(optimizer, batches, num_steps=steps, scheduler=scheduler)
    return dev_accuracy(student, tokenizer)


def distill_end_to_end(steps: int, scratch: Path, name: str, *overrides: str, profiled: bool = False) -> dict:
    """The quickstart as a user runs it; returns its card (and, profiled, Lightning's time per action)."""
    command = [
        "distill",
        "fit",
        *QUICKSTART,
        *overrides,
        "--trainer.max_steps",
        str(steps),
        "--report.enabled",
        "false",
        "--trainer.enable_progress_bar",
        "false",
        "--trainer.default_root_dir",
        str(scratch),
        "--run_name",
        name,
    ]
    if profiled:
        profiler = {
            "class_path": "lightning.pytorch.profilers.SimpleProfiler",
            "init_args": {"dirpath": str(scratch), "filename": "profile"},
        }
        command += ["--trainer.profiler", json.dumps(profiler)]
    subprocess.run(command, check=True, cwd=ROOT, env={**os.environ, **OFFLINE})
    card = json.loads((scratch / name / "student" / "card.json").read_text())
    result = {"dev_accuracy": card["dev_metrics"]["accuracy"], "training": card["training"]}
    if profiled:
        result["actions"] = profile_actions(scratch / "fit-profile.txt")
    return result


def profile_actions(report: Path) -> dict[str, float]:
    """SimpleProfiler's table as {action: total seconds}, largest first."""
    totals = {}
    for line in report.read_text().splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 5 and cells[0] not in ("Action", "") and cells[3].replace(".", "", 1).isdigit():
            totals[cells[0]] = float(cells[3])
    return dict(sorted(totals.items(), key=lambda item: -item[1]))


def timed(command: list[str]) -> tuple[float, str]:
    started = time.perf_counter()
    output = subprocess.run(
        command, check=True, cwd=ROOT, env={**os.environ, **OFFLINE}, capture_output=True, text=True
    ).stdout
    return time.perf_counter() - started, output


def end_to_end(steps: int) -> None:
    """distill, the hand loop and TextBrewer, one after the other in this sitting, each in its own process."""
    results = {}
    with tempfile.TemporaryDirectory() as scratch:
        for name, overrides in (("distill", ()), ("distill, random batches", ("--data.batching", "random"))):
            started = time.perf_counter()
            card = distill_end_to_end(steps, Path(scratch), name.replace(", ", "-").replace(" ", "_"), *overrides)
            results[name] = {"wall_seconds": time.perf_counter() - started, **card}
        runners = {"hand-written loop": [sys.executable]}
        if BENCH_PYTHON.exists():
            runners["textbrewer 0.2.1.post1"] = [str(BENCH_PYTHON)]
        for name, python in runners.items():
            which = "hand" if name.startswith("hand") else "textbrewer"
            seconds, output = timed([*python, __file__, "--one", which, "--steps", str(steps)])
            results[name] = {"wall_seconds": seconds, "dev_accuracy": json.loads(output.splitlines()[-1])}
        results["distill (profiled)"] = distill_end_to_end(steps, Path(scratch), "profiled", profiled=True)
    hand = results["hand-written loop"]["wall_seconds"]
    for result in results.values():
        if "wall_seconds" in result:
            result["vs_hand_loop"] = result["wall_seconds"] / hand
    record = {
        "date": date.today().isoformat(),
        "steps": steps,
        "threads": torch.get_num_threads(),
        "command": shlex.join(["python", "benchmarks/train_speed.py", *sys.argv[1:]]),
        "results": results,
    }
    (HERE / "results" / "train_speed_end_to_end.json").write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps(record, indent=1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=None, help="default: 40 per step, 600 end to end")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--end_to_end", action="store_true", help="the quickstart's steps, every cost included")
    parser.add_argument("--one", choices=["hand", "textbrewer"], help=argparse.SUPPRESS)  # a child of --end_to_end
    args = parser.parse_args()
    args.steps = args.steps or (600 if args.end_to_end or args.one else 40)
    if args.one:
        print(json.dumps((hand_end_to_end if args.one == "hand" else textbrewer_end_to_end)(args.steps)))
        return
    if args.end_to_end:
        end_to_end(args.steps)
        return
    torch.manual_seed(0)
    batches = fixed_batches(Teacher(str(TEACHER)).tokenizer, count=args.steps)
    runners: dict[str, Callable] = {"distill": run_distill, "hand-written loop": run_hand}
    try:
        import textbrewer  # noqa: F401

        runners["textbrewer 0.2.1.post1"] = run_textbrewer
    except ImportError:
        print("textbrewer is not installed: comparing distill with the hand-written loop only")
    results = {}
    for variant in ("logits", "intermediate"):
        seconds: dict[str, list[float]] = {name: [] for name in runners}
        for round_ in range(args.rounds):
            order = list(runners) if round_ % 2 == 0 else list(reversed(runners))
            for name in order:
                clock = runners[name](batches, args.steps, variant == "intermediate")
                seconds[name] += clock.step_seconds(args.warmup)
        hand = statistics.median(seconds["hand-written loop"])
        results[variant] = {
            name: {
                "median_step_ms": 1000 * statistics.median(s),
                "vs_hand_loop": statistics.median(s) / hand,
                "steps_timed": len(s),
            }
            for name, s in seconds.items()
        }
        print(variant, json.dumps(results[variant], indent=1))
    record = {
        "date": date.today().isoformat(),
        "steps": args.steps,
        "warmup": args.warmup,
        "rounds": args.rounds,
        "batch_size": 32,
        "threads": torch.get_num_threads(),
        "command": shlex.join(["python", "benchmarks/train_speed.py", *sys.argv[1:]]),
        "results": results,
    }
    (HERE / "results" / "train_speed.json").write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()
