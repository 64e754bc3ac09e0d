"""A 10-step run of every SST-2 recipe, report card included, timed end to end: what a user pays to try a recipe
before committing to its full schedule. Also the quickstart (README's first command), with the share of its wall
time that went to the report card.

    python benchmarks/recipe_smoke.py [--recipes bert_l3 cnn ...] [--skip-quickstart]

Recipes that start from another recipe's export (`runs/bert_l3/student`) get the 10-step export of that recipe.
Writes benchmarks/results/recipe_smoke.json; benchmarks/render.py puts it into RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import tempfile
import time
from datetime import date
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RECIPES = ROOT / "configs" / "sst2"
NOT_RECIPES = {"data", "data_transfer", "data_transfer_x1", "teacher"}  # data blocks; the teacher's own fine-tune
SHORT = ["--trainer.max_steps", "10", "--trainer.max_epochs", "null", "--trainer.limit_val_batches", "2",
         "--trainer.val_check_interval", "10"]  # fmt: skip
OFFLINE = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "WANDB_MODE": "offline"}


def recipes() -> list[str]:
    """Every recipe, those that others start from first."""
    names = sorted(p.stem for p in RECIPES.glob("*.yaml") if p.stem not in NOT_RECIPES)
    return sorted(names, key=lambda name: name not in ("bert_l3", "bert_l4_h192_general"))


def starts_from(recipe: str) -> str | None:
    """The recipe whose export this one starts from, if any."""
    found = re.search(r"^\s+model: runs/(\w+)/student", (RECIPES / f"{recipe}.yaml").read_text(), re.M)
    return found.group(1) if found else None


def run(recipe: str, root: Path, *extra: str) -> dict:
    """One 10-step fit; its wall time and where its report card's time went (from the run's log)."""
    base = starts_from(recipe)
    start = [] if base is None else ["--model.student.init_args.model", str(root / base / "student")]
    command = ["distill", "fit", "--config", str(RECIPES / f"{recipe}.yaml"), *SHORT, *start, *extra,
               "--trainer.default_root_dir", str(root), "--run_name", recipe]  # fmt: skip
    began = time.perf_counter()
    finished = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, env={**os.environ, **OFFLINE})
    wall = time.perf_counter() - began
    report = root / recipe / "report.json"
    return {
        "recipe": recipe,
        "wall_s": round(wall, 1),
        "ok": finished.returncode == 0,
        "error": None if finished.returncode == 0 else finished.stderr.strip().splitlines()[-1][:300],
        "report_written": report.is_file(),
    }


def quickstart(root: Path) -> dict:
    """README's first command (600 steps), and the same run without the report card: the report's share, and
    (from the second run's card) the share of its wall time spent outside the training steps."""
    configs = ["--config", str(RECIPES / "bert_l3.yaml"), "--config", str(ROOT / "configs" / "quickstart.yaml")]
    walls = {}
    for label, extra in (("with_report", []), ("without_report", ["--report.enabled", "false"])):
        command = ["distill", "fit", *configs, *extra, "--trainer.default_root_dir", str(root), "--run_name",
                   f"quickstart_{label}"]  # fmt: skip
        began = time.perf_counter()
        subprocess.run(command, cwd=ROOT, check=True, capture_output=True, env={**os.environ, **OFFLINE})
        walls[label] = round(time.perf_counter() - began, 1)
    share = (walls["with_report"] - walls["without_report"]) / walls["with_report"]
    card = json.loads((root / "quickstart_without_report" / "student" / "card.json").read_text())
    steps = card["training"]["seconds"]
    outside = round(1 - steps / walls["without_report"], 3)
    report = json.loads((root / "quickstart_with_report" / "report.json").read_text())
    table = [{k: r[k] for k in ("model", "value", "value_batch1", "parameters", "size_mb")} for r in report["rows"]]
    return {**walls, "report_share": round(share, 3), "step_seconds": steps, "outside_steps_share": outside,
            "report_rows": table}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipes", nargs="*", default=None)
    parser.add_argument("--skip-quickstart", action="store_true")
    args = parser.parse_args()
    chosen = args.recipes or recipes()
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        rows = []
        for recipe in chosen:
            rows.append(run(recipe, root))
            print(json.dumps(rows[-1]), flush=True)
        result = {
            "date": str(date.today()),
            "machine": f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}",
            "load_average_at_end": os.getloadavg()[0],
            "recipes": rows,
            "quickstart": None if args.skip_quickstart else quickstart(root),
        }
    out = HERE / "results" / "recipe_smoke.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["quickstart"]))


if __name__ == "__main__":
    main()
