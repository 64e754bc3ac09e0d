"""Does optimum load distill's ONNX export folders? Each file of an export's onnx/ folder through optimum's
ORTModelForSequenceClassification, scored on SST-2 dev, so the accuracies can be set beside distill's own.

optimum pins older transformers and huggingface_hub than distill uses, so this runs in a venv of its own:

    python3 -m venv /tmp/optvenv && . /tmp/optvenv/bin/activate
    pip install torch==2.13.0 'optimum[onnxruntime]'
    python benchmarks/optimum_check.py benchmarks/out/bert_l3_seed1/student/onnx

Writes benchmarks/results/optimum_check.json. It imports nothing from distill: that is the point.
"""

from __future__ import annotations

import csv
import json
import os
import sys
from datetime import date
from importlib.metadata import version
from pathlib import Path

import torch
from optimum.onnxruntime import ORTModelForSequenceClassification
from transformers import AutoTokenizer

os.environ.update({"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"})
HERE = Path(__file__).resolve().parent
DEV = HERE.parent.parent / "shared/data/glue/SST-2/dev.tsv"


def dev_rows() -> tuple[list[str], list[int]]:
    with DEV.open() as handle:
        rows = list(csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE))
    return [r["sentence"] for r in rows], [int(r["label"]) for r in rows]


def accuracy(model: ORTModelForSequenceClassification, tokenizer, texts: list[str], labels: list[int]) -> float:
    right = 0
    for start in range(0, len(texts), 64):
        batch = tokenizer(texts[start : start + 64], padding=True, truncation=True, max_length=66, return_tensors="pt")
        with torch.no_grad():
            predicted = model(**batch).logits.argmax(-1)
        right += int((predicted == torch.tensor(labels[start : start + 64])).sum())
    return right / len(texts)


def main(folder: Path) -> None:
    texts, labels = dev_rows()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    scores = {}
    for file in sorted(folder.glob("*.onnx")):
        model = ORTModelForSequenceClassification.from_pretrained(folder, file_name=file.name)
        scores[file.name] = accuracy(model, tokenizer, texts, labels)
        print(f"{file.name}: {type(model).__name__}, dev accuracy {100 * scores[file.name]:.2f}")
    record = {
        "folder": str(folder),
        "command": f"python benchmarks/optimum_check.py {folder}",
        "date": date.today().isoformat(),
        "versions": {p: version(p) for p in ("optimum", "onnxruntime", "transformers", "torch")},
        "dev_accuracy": scores,
    }
    (HERE / "results" / "optimum_check.json").write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
