"""The report card's scoring: row by row only where a 64-row probe finds answers that depend on the batch, and the
teacher's scores read back from a cache keyed by its weights, the rows, max_length and the task."""

from __future__ import annotations

import torch

from distill.delivery.batching import task_batches
from distill.delivery.scoring import batch_dependent, evaluate, score
from distill.plugins.quantization import quantize
from distill.registry import task_from_spec
from distill.teacher import Teacher
from tests.conftest import SST2


def dev_rows(task, count: int = 96):
    from distill.sources import DataFiles

    return task.read(DataFiles(validation=str(SST2 / "dev.tsv")), "validation", count)


def test_a_float_model_is_batch_independent_and_its_row_by_row_score_is_its_batch_score(tiny_teacher, tmp_path):
    task = task_from_spec("sst2")
    teacher = Teacher(str(tiny_teacher), task)
    rows = dev_rows(task)
    assert not batch_dependent(teacher.model, task, teacher.tokenizer, rows, 64)
    scored = score(teacher.model, task, teacher.tokenizer, rows, 64)
    row_by_row = evaluate(teacher.model, task_batches(task, teacher.tokenizer, rows, 1, 64), task)
    assert scored["metrics_batch1"] == scored["metrics"] == row_by_row and scored["batch_dependent"] is False


def test_dynamic_int8_depends_on_its_batch_mates_and_is_scored_row_by_row(tiny_teacher):
    task = task_from_spec("sst2")
    teacher = Teacher(str(tiny_teacher), task)
    rows = dev_rows(task)
    int8 = quantize(teacher.model, per_channel=True, embeddings=False)
    assert batch_dependent(int8, task, teacher.tokenizer, rows, 64)
    scored = score(int8, task, teacher.tokenizer, rows, 64)
    expected = evaluate(int8, task_batches(task, teacher.tokenizer, rows, 1, 64), task)
    assert scored["batch_dependent"] is True and scored["metrics_batch1"] == expected


def test_the_teacher_cache_is_keyed_by_weights_rows_and_length(tiny_teacher, tmp_path):
    task = task_from_spec("sst2")
    teacher = Teacher(str(tiny_teacher), task)
    rows = dev_rows(task)
    first = score(teacher.model, task, teacher.tokenizer, rows, 64, tmp_path)
    again = score(teacher.model, task, teacher.tokenizer, rows, 64, tmp_path)
    assert not first["cached"] and again["cached"] and again["metrics"] == first["metrics"]
    assert not score(teacher.model, task, teacher.tokenizer, rows, 32, tmp_path)["cached"]  # another max_length
    assert not score(teacher.model, task, teacher.tokenizer, dev_rows(task, 80), 64, tmp_path)["cached"]
    with torch.no_grad():
        next(teacher.model.parameters()).add_(1.0)
    assert not score(teacher.model, task, teacher.tokenizer, rows, 64, tmp_path)["cached"]  # other weights
