"""The base-size row: a randomly initialised teacher of bert-base's shape (12 layers, 768 wide) distilled into 6
layers for a few hundred steps, by `distill fit` (teacher cache on, report card off) and by the hand-written loop
on the same steps: process wall time against the seconds in training steps, samples per second, peak memory, and
the teacher cache's bytes per example. (The quickstart's share outside its steps is in recipe_smoke.py.)

    python benchmarks/lean_run.py [--base-steps 200]

Writes benchmarks/results/lean_run.json; benchmarks/render.py puts it into RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer, BertConfig

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SHARED = ROOT.parent / "shared"
TEACHER, SST2 = SHARED / "teachers" / "minilm-l6-sst2", SHARED / "data" / "glue" / "SST-2"
OFFLINE = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "WANDB_MODE": "offline"}


def timed(command: list[str]) -> tuple[float, str, int]:
    """Wall seconds, stdout, and the largest resident memory any child has reached so far (bytes): run the larger
    models last for it to be theirs."""
    began = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, check=True, capture_output=True, text=True, env={**os.environ, **OFFLINE})
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    return round(time.perf_counter() - began, 1), done.stdout, peak


def fit(root: Path, name: str, *options: str) -> dict:
    """One `distill fit` (report card off): process wall seconds, and the card's training figures."""
    command = ["distill", "fit", "--config", "configs/sst2/bert_l3.yaml", *options, "--report.enabled", "false",
               "--trainer.enable_progress_bar", "false", "--trainer.default_root_dir", str(root), "--run_name", name,
               "--data.cache_dir", str(root / "tokens")]  # fmt: skip
    wall, _, peak = timed(command)
    training = json.loads((root / name / "student" / "card.json").read_text())["training"]
    return {"process_seconds": wall, "step_seconds": training["seconds"], "steps": training["optimizer_steps"],
            "samples_per_second": training["samples_per_second"], "peak_rss_bytes": peak,
            "outside_steps_share": round(1 - training["seconds"] / wall, 3)}  # fmt: skip


def hand_loop(teacher: Path, steps: int, evaluations: int) -> dict:
    wall, out, peak = timed([sys.executable, str(HERE / "hand_loop.py"), "--teacher", str(teacher), "--data", str(SST2),
                       "--steps", str(steps), "--evaluations", str(evaluations), "--precision", "fp32"])  # fmt: skip
    result = json.loads(out.strip().splitlines()[-1])
    return {"process_seconds": wall, "step_seconds": result["step_seconds"], "steps": result["steps"],
            "samples_per_second": result["samples_per_second"], "peak_rss_bytes": peak,
            "outside_steps_share": round(1 - result["step_seconds"] / wall, 3)}  # fmt: skip


def base_teacher(folder: Path) -> Path:
    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(TEACHER)
    config = BertConfig(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072,
                        num_labels=2, vocab_size=tokenizer.vocab_size)  # fmt: skip
    AutoModelForSequenceClassification.from_config(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def cache_bytes(folder: Path) -> dict[str, float]:
    filled = next(folder.rglob("filled.npy"))
    rows = len(numpy.load(filled, mmap_mode="r"))
    return {path.stem: numpy.load(path, mmap_mode="r").nbytes / rows for path in filled.parent.glob("*.npy")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-steps", type=int, default=200)
    args = parser.parse_args()
    result: dict = {"date": str(date.today()), "machine": f"{platform.machine()}, {os.cpu_count()} cores, torch "
                    f"{torch.__version__}, {torch.get_num_threads()} threads"}  # fmt: skip
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        teacher = base_teacher(root / "base_teacher")
        steps = str(args.base_steps)
        result["base"] = fit(root, "base", "--model.teacher", str(teacher), "--model.student.init_args.num_layers", "6",
                             "--model.student.init_args.init_from_teacher", "[0, 2, 4, 6, 8, 10]",
                             "--model.teacher_cache.directory", str(root / "cache"), "--trainer.max_steps", steps,
                             "--trainer.max_epochs", "null", "--trainer.val_check_interval", steps,
                             "--trainer.limit_val_batches", "4")  # fmt: skip
        result["base"]["teacher_cache_bytes_per_example"] = cache_bytes(root / "cache")
        result["base_hand_loop"] = hand_loop(teacher, args.base_steps, evaluations=1)
    out = HERE / "results" / "lean_run.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
