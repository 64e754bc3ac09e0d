"""Where the quickstart's time outside its optimizer steps goes: the README's first command (600 steps, report card
off), in this process, with each phase timed by wrapping the function that does it.

    python benchmarks/outside_steps.py

Phases: importing distill's CLI, building teacher and student, data set-up (reading and tokenising, from the
tokenised cache after a first run), the fit-start checks, validation loops, checkpoint writes and the export. The
steps themselves are the card's `training.seconds` (each training batch from start to end). Writes
benchmarks/results/outside_steps.json; render.py puts it into RESULTS.md.
"""

from __future__ import annotations

import functools
import json
import os
import platform
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

STARTED = time.perf_counter()
HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
os.environ.update({"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "WANDB_MODE": "offline"})


def timed(owner: object, name: str, label: str, totals: dict[str, float]) -> None:
    """Wrap `owner.name` so the seconds spent in it add up under `label`."""
    original = getattr(owner, name)

    @functools.wraps(original)
    def wrapper(*args, **kwargs):
        began = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            totals[label] = totals.get(label, 0.0) + time.perf_counter() - began

    setattr(owner, name, wrapper)


def main() -> None:
    import distill.cli as cli

    totals = {"importing distill's CLI": time.perf_counter() - STARTED}
    import torch
    from lightning.pytorch.loops.evaluation_loop import _EvaluationLoop

    from distill.training.checkpoints import AtomicCheckpointIO
    from distill.training.data import TaskDataModule
    from distill.training.module import DistillationModule

    timed(DistillationModule, "__init__", "teacher and student built", totals)
    timed(TaskDataModule, "setup", "data set-up", totals)
    timed(DistillationModule, "on_fit_start", "fit-start checks (teacher agreement, cache)", totals)
    timed(_EvaluationLoop, "run", "validation loops", totals)
    timed(AtomicCheckpointIO, "save_checkpoint", "checkpoint writes", totals)
    export = cli.finish_fit

    def finish_fit(*args, **kwargs):  # the export, less the dev re-score inside it (counted with validation)
        before, began = totals.get("validation loops", 0.0), time.perf_counter()
        try:
            return export(*args, **kwargs)
        finally:
            totals["export"] = time.perf_counter() - began - (totals.get("validation loops", 0.0) - before)

    cli.finish_fit = finish_fit
    os.chdir(ROOT)
    with tempfile.TemporaryDirectory() as scratch:
        recipe = ["--config", "configs/sst2/bert_l3.yaml", "--config", "configs/quickstart.yaml"]
        cli.main(["fit", *recipe, "--report.enabled", "false", "--trainer.default_root_dir", scratch,
                  "--run_name", "quickstart"])  # fmt: skip
        card = json.loads((Path(scratch) / "quickstart" / "student" / "card.json").read_text())
    wall = time.perf_counter() - STARTED
    steps = card["training"]["seconds"]
    phases = {label: round(seconds, 2) for label, seconds in totals.items()}
    result = {
        "date": str(date.today()),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads",
        "command": "python benchmarks/outside_steps.py",
        "wall_seconds": round(wall, 1),
        "step_seconds": steps,
        "outside_steps_share": round(1 - steps / wall, 3),
        "phases": phases,
        "unaccounted_seconds": round(wall - steps - sum(phases.values()), 1),
        "dev_accuracy": card["dev_metrics"]["accuracy"],
    }
    (HERE / "results" / "outside_steps.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result), file=sys.stderr)


if __name__ == "__main__":
    main()
