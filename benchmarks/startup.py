"""What a command costs before it does any work: user + system CPU seconds of `distill --help`, `distill plugins`
and `distill fit --help`, the median of several runs.

    python benchmarks/startup.py [--before PATH_TO_AN_OLDER_distill] [--repeats 5]

`--before` names the console script of another install (an older commit in its own venv), measured the same way
beside this one. Writes benchmarks/results/startup.json; benchmarks/render.py puts it into RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
from datetime import date
from pathlib import Path

HERE = Path(__file__).resolve().parent
COMMANDS = {"distill --help": ["--help"], "distill plugins": ["plugins"], "distill fit --help": ["fit", "--help"]}
TARGETS = {"distill --help": "under 1.5", "distill plugins": "under 3", "distill fit --help": ""}
OFFLINE = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "WANDB_MODE": "offline"}


def cpu_seconds(command: list[str]) -> float:
    """User + system CPU seconds of one run of `command` and its children."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(command, check=True, capture_output=True, env={**os.environ, **OFFLINE})
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def measure(script: str, repeats: int) -> dict[str, float]:
    return {
        name: round(statistics.median(cpu_seconds([script, *argv]) for _ in range(repeats)), 2)
        for name, argv in COMMANDS.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", default=None)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    after = measure(shutil.which("distill") or "distill", args.repeats)
    before = measure(args.before, args.repeats) if args.before else {}
    result = {
        "date": str(date.today()),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "repeats": args.repeats,
        "commands": {
            name: {"before": before.get(name), "after": after[name], "target": TARGETS[name]} for name in COMMANDS
        },
    }
    out = HERE / "results" / "startup.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["commands"], indent=2))


if __name__ == "__main__":
    main()
