"""Train one recipe with `distill fit`, then measure its student against the teacher in one process.

    python benchmarks/run_recipe.py configs/sst2/bert_l3.yaml [--name NAME] [more `distill fit` arguments]
    python benchmarks/run_recipe.py configs/sst2/bilstm.yaml [--name NAME] --remeasure

Writes benchmarks/results/<name>.json (numbers, command, date, machine; the name defaults to the recipe's) and
regenerates benchmarks/RESULTS.md. Any student family works: the export is loaded with distill's own loader.
`--remeasure` skips training and measures the existing export again, e.g. after `distill export --model
benchmarks/out/<name>/student --variants [DynamicQuantization]` added an int8 copy; the training record is kept.
"""

from __future__ import annotations

import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import torch

from distill.cli import card_data
from distill.delivery.folder import card_max_length, export_variants_in
from distill.delivery.loading import load_model
from distill.delivery.measure import measure_models
from distill.export_format import bench_variants
from distill.registry import task_from_spec

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"
RESULTS = HERE / "results"
OFFLINE = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "WANDB_MODE": "offline"}


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    if Path("/proc/cpuinfo").exists():
        names = [
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ]
        cpu = names[0] if names else cpu
    return f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__}, {torch.get_num_threads()} threads"


def train(recipe: Path, extra: list[str], name: str) -> tuple[list[str], float]:
    shutil.rmtree(OUT / name, ignore_errors=True)
    command = [
        "distill",
        "fit",
        "--config",
        str(recipe),
        *extra,
        "--trainer.default_root_dir",
        str(OUT.relative_to(Path.cwd())),
        "--run_name",
        name,
    ]
    started = time.perf_counter()
    subprocess.run(command, check=True, env={**os.environ, **OFFLINE})
    return command, time.perf_counter() - started


def measure(teacher_dir: Path, student_dir: Path, card: dict) -> dict:
    """Teacher, student, the student's export variants (int8) and bench variants (early-exit thresholds),
    on the same validation examples (the task and data of the student's card), timed interleaved in one process."""
    task, source = card_data(card, None)
    examples = task.read(source, "validation")
    folders = {"teacher": teacher_dir, "student": student_dir}
    folders |= {f"student-{name}": path for name, path in export_variants_in(student_dir).items()}
    models = {name: (*load_model(folder), folder) for name, folder in folders.items()}
    for name, (model, tokenizer, folder) in list(models.items())[1:]:
        models |= {variant: (copy, tokenizer, folder) for variant, copy in bench_variants(name, model)}
    max_length = card_max_length(student_dir, 128)
    measured = measure_models(models, task, examples, latency_rows=len(examples), max_length=max_length)
    return {name: {**m, "dev": m.pop("metrics")} for name, m in measured.items()}


def main(argv: list[str]) -> None:
    recipe, extra = Path(argv[0]), argv[1:]
    name = recipe.stem
    if extra[:1] == ["--name"]:
        name, extra = extra[1], extra[2:]
    if extra == ["--remeasure"]:
        previous = json.loads((RESULTS / f"{name}.json").read_text())
        command, seconds = shlex.split(previous["command"]), previous["training"]["wall_seconds"]
    else:
        command, seconds = train(recipe, extra, name)
    card = json.loads((OUT / name / "student" / "card.json").read_text())
    data = card["config"]["data"]
    measured = measure(Path(card["teacher"]), OUT / name / "student", card)
    RESULTS.mkdir(exist_ok=True)
    record = {
        "name": name,
        "recipe": str(recipe),
        "command": shlex.join(command),
        "date": date.today().isoformat(),
        "machine": machine(),
        "task": card["task"],
        "metric": task_from_spec(card["task_spec"]).main_metric if card.get("task_spec") else None,
        "epochs_or_steps": {k: card["config"]["trainer"][k] for k in ("max_epochs", "max_steps")},
        "training": {**card["training"], "wall_seconds": round(seconds, 1)},
        "batching": data.get("batching", "random"),  # exports from before length grouping have no such key
        "teacher": measured.pop("teacher"),
        "student": measured.pop("student"),
        "variants": measured,
    }
    (RESULTS / f"{name}.json").write_text(json.dumps(record, indent=2) + "\n")
    subprocess.run([sys.executable, str(HERE / "render.py")], check=True)


if __name__ == "__main__":
    main(sys.argv[1:])
