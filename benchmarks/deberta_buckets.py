"""Where a DeBERTa student's time goes at SST-2 lengths: the same 3-layer student (deberta_l3's shape) at several
relative-position bucket counts, timed against the reference teacher in one process.

    python benchmarks/deberta_buckets.py [--buckets 256 64 32] [--rows 256]

Speed only: the students are untrained (speed does not depend on the weights), so no accuracy is claimed. Every
layer projects the whole relative-position table (2 x buckets rows) through its query and key projections, which
at ~22 tokens a sentence is more work than the tokens themselves.
"""

from __future__ import annotations

import argparse
import os

import torch

from distill import Teacher
from distill.delivery.batching import model_inputs, task_batches
from distill.delivery.timing import compare_latency
from distill.registry import task_from_spec
from distill.students.encoder import EncoderStudent
from distill.training.data import TaskDataModule

os.environ.update({"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"})
TEACHER = "../shared/teachers/minilm-l6-sst2"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--buckets", type=int, nargs="+", default=[256, 64, 32])
    parser.add_argument("--rows", type=int, default=256)
    args = parser.parse_args()
    task = task_from_spec("sst2")
    teacher = Teacher(TEACHER, task)
    data = TaskDataModule(task="sst2", data_dir="../shared/data/glue/SST-2", tokenizer=teacher.tokenizer)
    mix = data.read("validation").select(range(args.rows))
    models = {"teacher": teacher.model.eval()}
    for buckets in args.buckets:
        student = EncoderStudent(family="deberta-v2", num_layers=3, config={"position_buckets": buckets})
        models[f"deberta_l3 buckets={buckets}"] = student.build(teacher, task).model.eval()
    print(f"{torch.get_num_threads()} threads, {args.rows} SST-2 dev sentences")
    print("| model | median ms @1 | speedup @1 | median ms @32 | speedup @32 |\n|---|---|---|---|---|")
    timed = {}
    for size in (1, 32):
        batches = task_batches(task, teacher.tokenizer, mix, size, 66)
        per_model = {name: [model_inputs(m, b) for b in batches] for name, m in models.items()}
        with torch.inference_mode():
            timed[size] = compare_latency(models, per_model)
    for name in models:
        ms1, ms32 = timed[1][name]["median_ms"], timed[32][name]["median_ms"]
        base1, base32 = timed[1]["teacher"]["median_ms"], timed[32]["teacher"]["median_ms"]
        print(f"| {name} | {ms1:.2f} | {base1 / ms1:.2f}x | {ms32:.1f} | {base32 / ms32:.2f}x |")


if __name__ == "__main__":
    main()
