"""Where local-group attention pays: the bert_l3 student's shape with its lower layers attending in groups of
consecutive positions, against the same weights attending globally, at SST-2's length and at 128, 256 and 512
tokens (dev sentences joined until the input is full), in one process.

    python benchmarks/attention_lengths.py [--lengths 66 128 256 512] [--groups 32 64] [--batches 8]

Speed only: grouping changes no weight, so the weights are the ones the student starts from (teacher layers
0, 2, 4); the trained SST-2 accuracy of a grouped student is the bert_l3_local row in RESULTS.md, if run.
Writes benchmarks/results/attention_lengths.json.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
from datetime import date
from pathlib import Path

import torch

from distill import Teacher
from distill.delivery.timing import compare_latency
from distill.plugins.local_attention import localise
from distill.registry import task_from_spec
from distill.students.encoder import BertStudent
from distill.training.data import TaskDataModule

os.environ.update({"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"})
HERE = Path(__file__).resolve().parent
TEACHER = "../shared/teachers/minilm-l6-sst2"


def inputs(tokenizer, sentences: list[str], length: int, batch: int, count: int) -> list[dict]:
    """`count` batches of `batch` rows, each exactly `length` tokens of joined dev sentences."""
    ids = [i for s in sentences for i in tokenizer(s, add_special_tokens=False)["input_ids"]]
    body = length - 2
    rows = [
        [tokenizer.cls_token_id, *ids[(n * body) % (len(ids) - body) :][:body], tokenizer.sep_token_id]
        for n in range(batch * count)
    ]
    tensors = torch.tensor(rows)
    return [{"input_ids": part, "attention_mask": torch.ones_like(part)} for part in tensors.split(batch)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[66, 128, 256, 512])
    parser.add_argument("--groups", type=int, nargs="+", default=[32, 64])
    parser.add_argument("--batches", type=int, default=8, help="batches timed per setting")
    args = parser.parse_args()
    task = task_from_spec("sst2")
    teacher = Teacher(TEACHER, task)
    data = TaskDataModule(task="sst2", data_dir="../shared/data/glue/SST-2", tokenizer=teacher.tokenizer)
    sentences = data.read("validation")["sentence"]
    student = BertStudent(num_layers=3, init_from_teacher=[0, 2, 4]).build(teacher, task).model.eval()
    models = {"teacher": teacher.model.eval(), "bert_l3": student}
    for group in args.groups:
        grouped = copy.deepcopy(student)
        localise(grouped, [1, 2], group)
        models[f"bert_l3 local {group} (layers 1-2)"] = grouped
    rows = []
    for length in args.lengths:
        for size in (1, 8):
            batches = inputs(teacher.tokenizer, sentences, length, size, args.batches)
            timed = compare_latency(models, {name: batches for name in models}, warmup=2, rounds=2)
            full = timed["bert_l3"]["median_ms"]
            for name, t in timed.items():
                rows.append(
                    {
                        "model": name,
                        "tokens": length,
                        "batch": size,
                        "median_ms": round(t["median_ms"], 2),
                        "speedup_over_global": round(full / t["median_ms"], 3),
                    }
                )
                print(rows[-1])
    record = {
        "date": date.today().isoformat(),
        "command": "python benchmarks/attention_lengths.py "
        + " ".join(
            ["--lengths", *map(str, args.lengths), "--groups", *map(str, args.groups), "--batches", str(args.batches)]
        ),
        "threads": torch.get_num_threads(),
        "rows": rows,
    }
    (HERE / "results" / "attention_lengths.json").write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()
