"""What the report card costs after a short run: the wall time of a 10-step `distill fit` with the report card (the
teacher's scores not yet cached, then cached) and without it, and each model's scoring time the old way (every
model at batch 64 and row by row) against the new one (row by row only where a 64-row probe finds the answers
batch-dependent; the teacher from its cache).

    python benchmarks/report_card_cost.py [configs/sst2/bert_l3.yaml]

Writes benchmarks/results/report_card_cost.json; benchmarks/render.py puts it into RESULTS.md.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import torch

from distill.delivery.batching import task_batches
from distill.delivery.loading import load_model
from distill.delivery.scoring import evaluate, score
from distill.registry import task_from_spec
from distill.sources import DataFiles
from distill.teacher import Teacher

HERE = Path(__file__).resolve().parent
SHARED = HERE.parent.parent / "shared"
OFFLINE = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "WANDB_MODE": "offline"}
SHORT = ["--trainer.max_steps", "10", "--trainer.max_epochs", "null", "--trainer.limit_val_batches", "2",
         "--trainer.val_check_interval", "10"]  # fmt: skip


def timed_fit(recipe: str, root: Path, cache: Path, name: str, *extra: str) -> float:
    command = ["distill", "fit", "--config", recipe, *SHORT, "--trainer.default_root_dir", str(root),
               "--data.cache_dir", str(cache), "--run_name", name, *extra]  # fmt: skip
    started = time.perf_counter()
    subprocess.run(command, check=True, env={**os.environ, **OFFLINE}, capture_output=True)
    return round(time.perf_counter() - started, 1)


def scoring_times(student_dir: Path, max_length: int) -> dict[str, dict[str, float]]:
    """Seconds each model's scores take the old way and the new way, on the whole SST-2 dev split."""
    task = task_from_spec("sst2")
    teacher = Teacher(str(SHARED / "teachers" / "minilm-l6-sst2"), task)
    rows = task.read(DataFiles(validation=str(SHARED / "data" / "glue" / "SST-2" / "dev.tsv")), "validation")
    student, tokenizer = load_model(student_dir)
    times = {}
    for name, (model, tok) in {"teacher": (teacher.model, teacher.tokenizer), "student": (student, tokenizer)}.items():
        started = time.perf_counter()
        for batch_size in (64, 1):
            evaluate(model, task_batches(task, tok, rows, batch_size, max_length), task)
        old = time.perf_counter() - started
        started = time.perf_counter()
        scored = score(model, task, tok, rows, max_length)
        times[name] = {
            "old_seconds": round(old, 1),
            "new_seconds": round(time.perf_counter() - started, 1),
            "batch_dependent": scored["batch_dependent"],
        }
    return times


def main(argv: list[str]) -> None:
    recipe = argv[0] if argv else "configs/sst2/bert_l3.yaml"
    with tempfile.TemporaryDirectory() as scratch:
        root, cache = Path(scratch) / "runs", Path(scratch) / "cache"
        # The first run tokenises SST-2 into the cache and scores nothing: not counted.
        timed_fit(recipe, root, cache, "tokenise", "--report.enabled", "false")
        walls = {
            "report_teacher_not_cached": timed_fit(recipe, root, cache, "cold"),
            "report_teacher_cached": timed_fit(recipe, root, cache, "warm"),
            "no_report": timed_fit(recipe, root, cache, "off", "--report.enabled", "false"),
        }
        scoring = scoring_times(root / "warm" / "student", 66)
    record = {
        "date": str(date.today()),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "threads": torch.get_num_threads(),
        "recipe": recipe,
        "command": "python benchmarks/report_card_cost.py " + " ".join(argv),
        "wall_seconds": walls,
        "scoring_seconds": scoring,
    }
    out = HERE / "results" / "report_card_cost.json"
    out.write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps(record, indent=2))


if __name__ == "__main__":
    main(sys.argv[1:])
