"""Writes tests/exports/: one small export of each kind distill writes, and what `distill predict` answered with
each when it was written. tests/test_saved_exports.py reads them with today's code, so a change to how exports
are read that breaks a folder a user already has fails there.

Run it only to add a kind (the commit that wrote the others is in made_at.txt), from the repository root:
    python -m tests.exports.make_exports
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
import yaml
from transformers import AutoModelForSequenceClassification, AutoTokenizer, BertConfig

from tests.test_own_tokenizer import word_pieces

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
SST2 = ROOT.parent / "shared" / "data" / "glue" / "SST-2"
ROWS = HERE / "rows.jsonl"  # the rows every export labels
STUDENTS = {
    "hf": {"class_path": "BertStudent", "init_args": {"num_layers": 1, "init_from_teacher": [1]}},
    "early_exit": {"class_path": "BertStudent", "init_args": {"num_layers": 2, "init_from_teacher": [0, 1]}},
    "pruned_heads": {"class_path": "BertStudent", "init_args": {"num_layers": 2, "init_from_teacher": [0, 1]}},
    "low_rank": {"class_path": "BertStudent", "init_args": {"num_layers": 1, "init_from_teacher": [1]}},
    "bilstm": {"class_path": "BiLSTMStudent", "init_args": {"embedding_dim": 16, "hidden_size": 16, "mlp_size": 16}},
    "cnn": {"class_path": "CNNStudent", "init_args": {"embedding_dim": 16, "channels": 8}},
}
COMPRESSION = {
    "early_exit": [{"class_path": "EarlyExit", "init_args": {"threshold": 0.5}}],
    "pruned_heads": [{"class_path": "HeadPruning", "init_args": {"fraction": 0.5, "at": 0.0, "batches": 2}}],
    "low_rank": [
        {"class_path": "LowRankDecomposition", "init_args": {"keep": {"feed_forward_in": 0.3}, "embedding_rank": 8}}
    ],
}


def small_teacher(folder: Path) -> Path:
    """A random two-layer BERT of width 32 over a 400-piece WordPiece trained on SST-2: kilobytes, not megabytes."""
    fast = AutoTokenizer.from_pretrained(word_pieces(folder, pieces=400))
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(fast), hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
        max_position_embeddings=128, num_labels=2, pad_token_id=0,
    )  # fmt: skip
    AutoModelForSequenceClassification.from_config(config).save_pretrained(folder)
    return folder


def distill(*argv: str) -> None:
    subprocess.run([sys.executable, "-m", "distill.cli", *argv], check=True, cwd=ROOT)


def fit(kind: str, teacher: Path, work: Path) -> Path:
    """A four-step `distill fit` of the kind's student and methods; its export folder."""
    config = {
        "seed_everything": 0,
        "trainer": {"max_steps": 4, "val_check_interval": 2, "default_root_dir": str(work / kind),
                    "enable_progress_bar": False, "enable_model_summary": False},
        "model": {
            "teacher": str(teacher), "student": STUDENTS[kind], "learning_rate": 1e-3,
            "losses": [{"class_path": "HardLabelCE", "init_args": {"weight": 0.5}},
                       {"class_path": "LogitsKD", "init_args": {"weight": 0.5, "temperature": 2.0}}],
            "compression": COMPRESSION.get(kind, []),
        },
        "report": {"enabled": False},
        "data": {"task": "sst2", "data_dir": str(SST2), "train_limit": 64, "eval_limit": 32, "batch_size": 16,
                 "max_length": 48, "cache_dir": str(work / "cache")},
    }  # fmt: skip
    path = work / f"{kind}.yaml"
    path.write_text(yaml.safe_dump(config))
    distill("fit", "--config", str(path), "--run_name", kind)
    return work / kind / kind / "student"


def main() -> None:
    dev = (SST2 / "dev.tsv").read_text().splitlines()[1:17]
    ROWS.write_text("".join(json.dumps({"sentence": line.split("\t")[0]}) + "\n" for line in dev))
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        teacher = small_teacher(work / "teacher")
        for kind in STUDENTS:
            target = HERE / kind
            shutil.rmtree(target, ignore_errors=True)
            shutil.copytree(fit(kind, teacher, work), target)
        distill("export", "--model", str(HERE / "hf"), "--variants", "[DynamicQuantization]", "--onnx", "true")
    answers = {}
    for model in exports():
        out = HERE / ".answer.jsonl"
        distill("predict", "--model", str(model), "--input", str(ROWS), "--output", str(out), "--task", "sst2")
        answers[str(model.relative_to(HERE))] = [json.loads(line) for line in out.read_text().splitlines()]
        out.unlink()
    (HERE / "answers.json").write_text(json.dumps(answers, indent=1) + "\n")
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout
    (HERE / "made_at.txt").write_text(head)


def exports() -> list[Path]:
    """Every saved export and variant the test loads: each folder, its int8/ copy, and each ONNX file."""
    found = [HERE / kind for kind in STUDENTS]
    found.append(HERE / "hf" / "int8")
    found += sorted((HERE / "hf" / "onnx").glob("*.onnx"))
    return found


if __name__ == "__main__":
    main()
