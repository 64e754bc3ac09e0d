"""Every GPU measurement of issue 34, in one process tree, against one deadline: `benchmarks/gpu.sh run` calls it
on the borrowed machine (and, with --max-steps, on a CPU as a dry run). Stages run in order of importance; each
gets what is left of the deadline, and the results file is rewritten after each, so a stage cut short still
leaves the others' rows.

1. the bert_l3 recipe in bf16-mixed at its full schedule (`distill fit`, report card off, as the hand loop has
   none), its export with a bfloat16 copy;
2. `distill bench` of teacher, student and the bf16 copy: the report card's rows on the CPU and on the GPU;
3. the hand-written loop with the same maths on the same steps (benchmarks/hand_loop.py);
4. a base-size teacher (bert-base's shape, randomly initialised) into a 6-layer student for a few hundred steps,
   by distill (with the teacher cache) and by the hand loop;
5. CoNLL-2003: a teacher fine-tuned from the reference teacher's encoder, then the bert_l3 student, one epoch
   each (the pretrained all-MiniLM-L6-v2 would not fit beside the reference teacher in what a call carries);
6. tests/test_fsdp.py, whose FSDP run with a frozen teacher needs an accelerator (pytest travels as a wheel).

    python benchmarks/gpu_run.py --carry .gpu --out OUT [--max-steps N] [--deadline-s 540]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import numpy
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer, BertConfig, BertModel

ROOT = Path(__file__).resolve().parents[1]
OFFLINE = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "WANDB_MODE": "offline", "PYTHONUNBUFFERED": "1"}


class Stages:
    """Runs commands against the deadline and keeps every result in one JSON file."""

    def __init__(self, out: Path, deadline_s: float) -> None:
        self.out, self.ends = out, time.monotonic() + deadline_s
        device = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
        self.results: dict = {"device": device, "date": str(date.today())}
        out.mkdir(parents=True, exist_ok=True)

    def run(self, name: str, command: list[str], env: dict[str, str] | None = None) -> dict:
        left = self.ends - time.monotonic()
        if left < 20:
            self.results[name] = {"skipped": "deadline reached"}
            return self.results[name]
        began = time.perf_counter()
        with open(self.out / "stages.log", "a") as log:  # one file: a call brings back at most 8
            log.write(f"\n===== {name}: {' '.join(command)}\n")
            log.flush()
            try:
                environment = {**os.environ, **OFFLINE, **(env or {})}
                done = subprocess.run(command, cwd=ROOT, env=environment, stdout=subprocess.PIPE, stderr=log,
                                      text=True, timeout=left)  # fmt: skip
                result = {"ok": done.returncode == 0, "stdout_tail": done.stdout[-400:]}
            except subprocess.TimeoutExpired:
                result = {"ok": False, "timed_out_after_s": round(left)}
        result["process_seconds"] = round(time.perf_counter() - began, 1)
        self.results[name] = result
        self.save()
        print(name, json.dumps(result)[:300], flush=True)
        return result

    def save(self) -> None:
        (self.out / "gpu.json").write_text(json.dumps(self.results, indent=2) + "\n")


def card(run: Path) -> dict:
    path = run / "student" / "card.json"
    if not path.is_file():
        return {}
    written = json.loads(path.read_text())
    return {"training": written.get("training"), "dev_metrics": written.get("dev_metrics")}


def prepare(carry: Path, scratch: Path) -> dict[str, Path]:
    """The float32 teacher from its float16 copy, its encoder alone (the CoNLL teacher starts from it), and a
    randomly initialised teacher of bert-base's shape with the same tokenizer."""
    teacher = scratch / "teacher"
    model = AutoModelForSequenceClassification.from_pretrained(carry / "teacher", dtype=torch.float32)
    model.save_pretrained(teacher)
    tokenizer = AutoTokenizer.from_pretrained(carry / "teacher")
    tokenizer.save_pretrained(teacher)
    encoder = scratch / "encoder"
    model.bert.save_pretrained(encoder)
    tokenizer.save_pretrained(encoder)
    base = scratch / "base_teacher"
    torch.manual_seed(0)
    config = BertConfig(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072,
                        num_labels=2, vocab_size=tokenizer.vocab_size)  # fmt: skip
    AutoModelForSequenceClassification.from_config(config).save_pretrained(base)
    tokenizer.save_pretrained(base)
    assert isinstance(model.bert, BertModel)
    return {"teacher": teacher, "encoder": encoder, "base": base}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--carry", type=Path, default=ROOT / ".gpu")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--max-steps", type=int, default=None, help="cap every run (a dry run on a CPU)")
    parser.add_argument("--deadline-s", type=float, default=540)
    parser.add_argument("--scratch", type=Path, default=Path("/tmp/distill-gpu"))
    args = parser.parse_args()
    stages = Stages(args.out, args.deadline_s)
    gpu = torch.cuda.is_available()
    models = prepare(args.carry, args.scratch)
    runs, data = args.scratch / "runs", args.carry / "data"
    hardware = ["--trainer.accelerator", "gpu", "--trainer.devices", "1", "--trainer.precision", "bf16-mixed"]
    hardware = hardware if gpu else ["--trainer.accelerator", "cpu"]
    cap = [] if args.max_steps is None else ["--trainer.max_steps", str(args.max_steps), "--trainer.max_epochs",
                                             "null", "--trainer.val_check_interval", str(args.max_steps)]  # fmt: skip
    common = [*hardware, *cap, "--report.enabled", "false", "--trainer.default_root_dir", str(runs),
              "--data.cache_dir", str(args.scratch / "tokens"), "--trainer.enable_progress_bar", "false"]  # fmt: skip
    distill = [sys.executable, "-P", "-m", "distill.cli"]  # -P: the installed wheel, not the source tree
    loop = [sys.executable, str(ROOT / "benchmarks" / "hand_loop.py"), "--data", str(data / "SST-2")]
    loop += [] if gpu else ["--precision", "fp32"]

    stages.run("bert_l3_fit", [*distill, "fit", "--config", "configs/sst2/bert_l3.yaml", *common, "--model.teacher",
                               str(models["teacher"]), "--data.data_dir", str(data / "SST-2"), "--model.compression",
                               "[{class_path: HalfPrecision}]", "--run_name", "bert_l3"])  # fmt: skip
    stages.results["bert_l3_fit"] |= card(runs / "bert_l3")
    stages.run("bench", [*distill, "bench", "--teacher", str(models["teacher"]), str(runs / "bert_l3" / "student"),
                         str(runs / "bert_l3" / "student" / "bf16"), "--names", "[bert_l3, bert_l3-bf16]", "--out",
                         str(args.out / "bench"), "--latency_rows", "64" if args.max_steps else "256"])  # fmt: skip
    stages.results["onnxruntime_cuda"] = onnxruntime_cuda()
    steps = ["--steps", str(args.max_steps)] if args.max_steps else []
    stages.run("hand_loop", [*loop, "--teacher", str(models["teacher"]), *steps])
    stages.results["hand_loop"] |= printed(stages.results["hand_loop"])
    base_steps = str(args.max_steps or 300)
    stages.run("base_fit", [*distill, "fit", "--config", "configs/sst2/bert_l3.yaml", *common, "--model.teacher",
                            str(models["base"]), "--data.data_dir", str(data / "SST-2"),
                            "--model.student.init_args.num_layers", "6", "--model.student.init_args.init_from_teacher",
                            "[0, 2, 4, 6, 8, 10]", "--model.teacher_cache.directory", str(args.scratch / "cache"),
                            "--trainer.max_steps", base_steps, "--trainer.max_epochs", "null",
                            "--trainer.val_check_interval", base_steps, "--run_name", "base"])  # fmt: skip
    stages.results["base_fit"] |= card(runs / "base") | cache_bytes(args.scratch / "cache")
    stages.run("base_hand_loop", [*loop, "--teacher", str(models["base"]), "--steps", base_steps, "--evaluations", "1"])
    stages.results["base_hand_loop"] |= printed(stages.results["base_hand_loop"])
    conll = ["--data.files.train", str(data / "conll2003" / "train.txt"), "--data.files.validation",
             str(data / "conll2003" / "dev.txt")]  # fmt: skip
    conll += [] if args.max_steps else ["--trainer.max_epochs", "1"]  # one epoch each: the call's time is bounded
    stages.run("conll_teacher", [*distill, "fit", "--config", "configs/conll2003/teacher.yaml", *common, *conll,
                                 "--model.student.init_args.model", str(models["encoder"]), "--run_name",
                                 "conll_teacher"])  # fmt: skip
    stages.results["conll_teacher"] |= card(runs / "conll_teacher")
    stages.run("conll_bert_l3", [*distill, "fit", "--config", "configs/conll2003/bert_l3.yaml", *common, *conll,
                                 "--model.teacher", str(runs / "conll_teacher" / "student"), "--run_name",
                                 "conll_bert_l3"])  # fmt: skip
    stages.results["conll_bert_l3"] |= card(runs / "conll_bert_l3")
    stages.run("fsdp_test", [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_fsdp.py"],
               env={"DISTILL_SHARED": str(shared_copy(args.carry, args.scratch))})  # fmt: skip
    stages.save()


def shared_copy(carry: Path, scratch: Path) -> Path:
    """../shared's layout, as the tests read it, pointing into what the call carried."""
    shared = scratch / "shared"
    for link, target in {"teachers/minilm-l6-sst2": carry / "teacher", "data/glue/SST-2": carry / "data" / "SST-2",
                         "data/conll2003": carry / "data" / "conll2003"}.items():  # fmt: skip
        (shared / link).parent.mkdir(parents=True, exist_ok=True)
        if not (shared / link).exists():
            (shared / link).symlink_to(target.resolve())
    return shared


def printed(result: dict) -> dict:
    """The JSON line a hand loop printed last, as its result."""
    lines = [line for line in result.get("stdout_tail", "").splitlines() if line.startswith("{")]
    return {"result": json.loads(lines[-1])} if lines else {}


def cache_bytes(folder: Path) -> dict:
    """The teacher cache's bytes per training example, for each feature file it holds."""
    filled = next(folder.rglob("filled.npy"), None)
    if filled is None:
        return {"teacher_cache": None}
    rows = len(numpy.load(filled, mmap_mode="r"))
    arrays = {path.stem: numpy.load(path, mmap_mode="r") for path in filled.parent.glob("*.npy")}
    return {"teacher_cache": {"rows": rows, "bytes_per_example": {k: a.nbytes / rows for k, a in arrays.items()}}}


def onnxruntime_cuda() -> str:
    try:
        import onnxruntime
    except ImportError:
        return "onnxruntime is not installed"
    providers = onnxruntime.get_available_providers()
    if "CUDAExecutionProvider" in providers:
        return "onnxruntime-gpu: the CUDA execution provider is available"
    return f"onnxruntime-gpu is not installed here (providers: {', '.join(providers)}): ONNX runs on the CPU only"


if __name__ == "__main__":
    main()
