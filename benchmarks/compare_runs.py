"""Are two runs the same numbers? Every logged value (per-step losses, validation metrics) and the exported
student's dev metrics, compared exactly. Used to show that a redesign changed no maths:

    git worktree add ../before <old commit>
    (cd ../before && PYTHONPATH=$PWD distill fit --config configs/sst2/bert_l3.yaml --config configs/quickstart.yaml \
        --trainer.log_every_n_steps 1 --run_name quickstart-before)
    distill fit --config configs/sst2/bert_l3.yaml --config configs/quickstart.yaml \
        --trainer.log_every_n_steps 1 --run_name quickstart-after
    python benchmarks/compare_runs.py ../before/runs/quickstart-before runs/quickstart-after \
        --label "quickstart before and after <change>" --out benchmarks/results/<name>.json

Run the `before` side on code whose students/ and plugins/ are that commit's too (PYTHONPATH only redirects the
`distill` package, so keep those folders unchanged while it runs).
"""

from __future__ import annotations

import argparse
import csv
import json
from datetime import date
from pathlib import Path

from run_recipe import machine


def logged(run: Path) -> list[dict[str, str]]:
    with (run / "lightning_logs" / "version_0" / "metrics.csv").open(newline="") as handle:
        return list(csv.DictReader(handle))


def compare(before: Path, after: Path) -> dict:
    rows_before, rows_after = logged(before), logged(after)
    columns = sorted(set(rows_before[0]) & set(rows_after[0]))
    differing = [
        {"row": i, "step": a.get("step"), "column": c, "before": a[c], "after": b[c]}
        for i, (a, b) in enumerate(zip(rows_before, rows_after, strict=False))
        for c in columns
        if a[c] != b[c]
    ]
    values = sum(1 for row in rows_before for c in columns if row[c] != "")
    card = {
        side: json.loads((run / "student" / "card.json").read_text())
        for side, run in (("before", before), ("after", after))
    }
    return {
        "rows": [len(rows_before), len(rows_after)],
        "columns": columns,
        "values_compared": values,
        "differing": differing,
        "dev_metrics": {side: c["dev_metrics"] for side, c in card.items()},
        "steps": max(int(r["step"]) for r in rows_after),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    parser.add_argument("--label", required=True, help="what the two runs are, for RESULTS.md")
    parser.add_argument("--command", default="", help="the command both runs were made with")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    result = compare(args.before, args.after)
    result |= {
        "label": args.label,
        "command": args.command,
        "date": date.today().isoformat(),
        "machine": machine(),
    }
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(
        f"{result['values_compared']} values compared, {len(result['differing'])} differ; dev {result['dev_metrics']}"
    )


if __name__ == "__main__":
    main()
