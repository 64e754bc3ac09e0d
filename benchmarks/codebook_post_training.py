"""Codebook embeddings without training: the bert_l3 student's word table coded after training, at several
codebook counts and kinds, scored on SST-2 dev (no latency: the table's form does not change the time).

    python benchmarks/codebook_post_training.py [--model benchmarks/out/bert_l3_base17/student]

Writes benchmarks/results/codebook_post_training.json: per setting, the table's relative reconstruction error,
how much smaller it is than float32, and the dev accuracy against the uncoded student's.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
from datetime import date
from pathlib import Path

import torch

from distill.delivery.batching import task_batches
from distill.delivery.folder import card_max_length
from distill.delivery.loading import load_model
from distill.delivery.scoring import evaluate
from distill.plugins.codebook import CodedEmbedding
from distill.registry import task_from_spec
from distill.training.data import TaskDataModule

os.environ.update({"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"})
HERE = Path(__file__).resolve().parent
SETTINGS = [("additive", 8), ("product", 8), ("product", 32), ("product", 64), ("product", 96)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="benchmarks/out/bert_l3_base17/student")
    args = parser.parse_args()
    model, tokenizer = load_model(args.model)
    task = task_from_spec("sst2")
    dev = TaskDataModule(task="sst2", data_dir="../shared/data/glue/SST-2", tokenizer=tokenizer).read("validation")
    batches = task_batches(task, tokenizer, dev, 64, card_max_length(Path(args.model), 66))
    table = model.get_input_embeddings()
    rows = [{"kind": "float32", "codebooks": 0, "accuracy": evaluate(model, batches, task)["accuracy"]}]
    for kind, books in SETTINGS:
        coded = CodedEmbedding.from_table(table, books, 256, kind, iterations=15)
        with torch.no_grad():
            error = (
                coded(torch.arange(table.num_embeddings)) - table.weight
            ).square().sum() / table.weight.square().sum()
        copy_ = copy.deepcopy(model)
        copy_.set_input_embeddings(coded)
        stored = coded.codes.numel() * coded.codes.element_size() + coded.codebooks.weight.numel() * 4
        rows.append(
            {
                "kind": kind,
                "codebooks": books,
                "codewords": 256,
                "relative_error": round(float(error), 4),
                "smaller": round(table.weight.numel() * 4 / stored, 1),
                "accuracy": evaluate(copy_, batches, task)["accuracy"],
            }
        )
        print(rows[-1], flush=True)
    record = {
        "date": date.today().isoformat(),
        "model": args.model,
        "command": "python benchmarks/codebook_post_training.py",
        "rows": rows,
    }
    (HERE / "results" / "codebook_post_training.json").write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()
