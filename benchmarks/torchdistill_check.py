"""Can torchdistill 1.1.5 join the training-speed comparison on this machine's torch?

    python benchmarks/torchdistill_check.py

Installs torch==2.13.0 (the project's pin) and torchdistill==1.1.5 into a throw-away venv, with the torch pin
kept as a constraint, then imports the modules a distillation run needs. Writes what happened to
benchmarks/results/torchdistill.json; benchmarks/render.py puts it into RESULTS.md.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from datetime import date
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
MODULES = ["torchdistill", "torchdistill.losses.mid_level", "torchdistill.core.distillation", "torchvision"]


def run(command: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(command, capture_output=True, text=True)


def last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""


def main() -> None:
    with tempfile.TemporaryDirectory() as scratch:
        venv = Path(scratch) / "venv"
        run([sys.executable, "-m", "venv", str(venv)])
        pip, python = str(venv / "bin" / "pip"), str(venv / "bin" / "python")
        pin = Path(scratch) / "constraints.txt"
        pin.write_text("torch==2.13.0\n")
        installed = run([pip, "install", "-q", "torch==2.13.0"])
        if installed.returncode == 0:
            installed = run([pip, "install", "-q", "torchdistill==1.1.5", "-c", str(pin)])
        versions = run([pip, "list", "--format", "json"])
        wanted = {"torch", "torchvision", "torchdistill"}
        packages = {p["name"]: p["version"] for p in json.loads(versions.stdout or "[]") if p["name"] in wanted}
        imports = {}
        for module in MODULES:
            result = run([python, "-c", f"import {module}"])
            imports[module] = "ok" if result.returncode == 0 else last_line(result.stderr)
    record = {
        "date": date.today().isoformat(),
        "command": "python benchmarks/torchdistill_check.py",
        "install": "ok" if installed.returncode == 0 else last_line(installed.stderr),
        "packages": packages,
        "imports": imports,
        "runs": all(outcome == "ok" for outcome in imports.values()),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "torchdistill.json").write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
