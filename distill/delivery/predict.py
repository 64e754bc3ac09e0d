"""`distill predict`: label a file (CSV, TSV, JSON, JSONL or Parquet) with an exported model."""

from __future__ import annotations

import csv
import io
import json
import tempfile
from pathlib import Path
from typing import Any

import datasets
import torch

from distill.delivery.bench import MAX_LENGTH, model_inputs, task_batches
from distill.delivery.export import write_text_atomic
from distill.delivery.loading import CARD_NAME, card_max_length, card_task, load_model
from distill.errors import DistillError
from distill.hf import head_logits
from distill.registry import task_from_spec
from distill.sources import file_format, load_table
from distill.task import Task


def task_of(model_dir: Path, task: str | None) -> Task:
    """The task to label for: the card's, or a `--task` preset that has the same labels as the card's."""
    trained = card_task(model_dir)
    if task is None:
        if trained is None:
            raise DistillError(f"{model_dir} has no {CARD_NAME} naming its task: pass --task (a preset such as sst2)")
        return trained
    asked = task_from_spec(task)
    if trained is not None and asked.labels != trained.labels:
        raise DistillError(
            f"--task {asked.name} has labels {_labels(asked)}, but {model_dir} was trained on {trained.name} "
            f"with labels {_labels(trained)}: drop --task, or give a model trained for {asked.name}"
        )
    return asked


def _labels(task: Task) -> str:
    return "a regression score" if task.labels is None else ", ".join(task.labels)


def check_label_space(model_dir: Path, width: int, task: Task) -> None:
    """The model's own output width decides: a task with another number of labels is refused."""
    if width != task.num_labels:
        raise DistillError(
            f"{model_dir} predicts {width} value(s) per row, but task {task.name} needs {task.num_labels} "
            f"({_labels(task)}): drop --task, or pass the task the model was trained on"
        )


def read_inputs(path: Path, task: Task) -> datasets.Dataset:
    """The input rows, all columns kept; the task's text columns must be among them."""
    rows = load_table(path, "--input")
    if missing := [c for c in task.text_columns if c not in rows.column_names]:
        raise DistillError(
            f"--input {str(path)!r} has no column(s) {missing} (the task's text columns); its columns are "
            f"{rows.column_names}"
        )
    for column in task.text_columns:
        for row, value in enumerate(rows[column]):
            words = isinstance(value, list) and all(isinstance(w, str) for w in value)
            if not (words if task.split_into_words else isinstance(value, str)):
                wanted = "a list of words" if task.split_into_words else "text"
                raise DistillError(
                    f"--input {str(path)!r}, row {row + 1}: column {column!r} holds {value!r}, not {wanted}"
                )
    return rows


@torch.inference_mode()
def predict(model_dir: Path, input_path: Path, output_path: Path, task: str | None = None, batch_size: int = 64) -> int:
    """Write the input rows with the task's prediction columns (for classification: `prediction`, the label
    name, and one `probability_<label>` column per label), in the input's format.

    Returns:
        The number of rows labelled.
    """
    model, tokenizer = load_model(model_dir)  # first: a folder that holds no model is the problem to report
    chosen = task_of(model_dir, task)
    kind = file_format(output_path, "--output")
    rows = read_inputs(input_path, chosen)
    texts = rows.select_columns(list(chosen.text_columns))
    max_length = card_max_length(model_dir, MAX_LENGTH)
    added: dict[str, list] = {}
    for start in range(0, len(texts), batch_size):
        chunk = texts.select(range(start, min(start + batch_size, len(texts))))
        # One batch per chunk of rows, whatever the encoded inputs per row (a long QA context has several windows).
        (batch,) = task_batches(chosen, tokenizer, chunk, None, max_length)
        logits = head_logits(model(**model_inputs(model, batch)))
        check_label_space(model_dir, logits.shape[-1], chosen)
        for column, values in chosen.prediction_columns(logits, batch, chunk.to_dict()).items():
            added.setdefault(column, []).extend(values)
    if clash := [c for c in added if c in rows.column_names]:
        raise DistillError(f"--input already has column(s) {clash} that predictions would overwrite: rename them")
    if not added:  # no rows: the header still gets the task's columns
        empty = chosen.prediction_columns(torch.empty(0, chosen.num_labels), {}, {})
        added = {column: [] for column in empty}
    write_table(rows.to_dict(), added, output_path, kind)
    return len(rows)


def write_table(columns: dict[str, list], added: dict[str, list], path: Path, kind: str) -> None:
    """The input's columns and the added ones, written atomically in `kind` (csv, tsv, json, jsonl, parquet)."""
    table: dict[str, list[Any]] = {**columns, **added}
    names = list(table)
    records = [dict(zip(names, values, strict=True)) for values in zip(*table.values(), strict=True)]
    if kind in ("csv", "tsv"):
        buffer = io.StringIO()
        # TSV as GLUE writes it: no quoting (a field holds no tab), so it reads back the way it was read.
        options = {"delimiter": "\t", "quoting": csv.QUOTE_NONE, "escapechar": "\\"} if kind == "tsv" else {}
        writer = csv.writer(buffer, lineterminator="\n", **options)
        writer.writerow(names)
        writer.writerows(list(record.values()) for record in records)
        write_text_atomic(path, buffer.getvalue())
    elif kind == "jsonl":
        write_text_atomic(path, "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records))
    elif kind == "json":
        write_text_atomic(path, json.dumps(records, ensure_ascii=False, indent=1))
    else:
        with tempfile.TemporaryDirectory(dir=path.parent) as scratch:
            staged = Path(scratch) / path.name
            datasets.Dataset.from_dict(table).to_parquet(str(staged))
            staged.replace(path)
