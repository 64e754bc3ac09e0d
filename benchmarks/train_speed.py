"""Training-step speed on identical work: distill (DistillationModule under Lightning), a minimal hand-written
PyTorch loop doing the same maths, and TextBrewer's GeneralDistiller when it is installed.

    python benchmarks/train_speed.py [--steps 40] [--rounds 2]

Same reference teacher, same student (3 layers copied from teacher layers 0, 2, 4), same fixed SST-2 batches,
same AdamW and schedule. A step's time is the interval between two consecutive batch fetches, so everything a
framework does per step is inside it; the first steps are warm-up. Runners alternate order across rounds.
Writes benchmarks/results/train_speed.json; benchmarks/render.py puts it into RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import random
import shlex
import statistics
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
from transformers import get_linear_schedule_with_warmup

from distill.data import read_glue_tsv
from distill.module import DistillationModule
from distill.plugins.losses import AttentionKD, HardLabelCE, HiddenStatesKD, LogitsKD
from distill.students.bert import BertStudent
from distill.tasks import get_task
from distill.teacher import Teacher

HERE = Path(__file__).resolve().parent
TEACHER = HERE.parent.parent / "shared" / "teachers" / "minilm-l6-sst2"
SST2 = HERE.parent.parent / "shared" / "data" / "glue" / "SST-2"
TEMPERATURE, LR = 2.0, 5e-5
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


def fixed_batches(tokenizer, count: int, size: int = 32) -> list[dict]:
    rows = read_glue_tsv(SST2 / "train.tsv", get_task("sst2"))
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
    module = DistillationModule(student=student_config(), losses=losses, teacher=str(TEACHER), learning_rate=LR)
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
    student = student_config().build(Teacher(str(TEACHER)), get_task("sst2")).model
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
    student = student_config().build(Teacher(str(TEACHER)), get_task("sst2")).model
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
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
