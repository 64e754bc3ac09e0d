"""`distill predict`: label a file (CSV, TSV, JSON, JSONL or Parquet) with an exported model."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow
import pyarrow.parquet
import torch

from distill.atomic import atomic_file
from distill.delivery.batching import MAX_LENGTH, model_inputs, task_batches
from distill.delivery.folder import CARD_NAME, card_max_length, card_task
from distill.delivery.loading import load_model
from distill.errors import DistillError
from distill.hf import head_logits
from distill.lazy import lazy_module
from distill.registry import task_from_spec
from distill.sources import file_format, load_table
from distill.task import Task
from distill.teachers import build_teacher

datasets = lazy_module("datasets")


def task_of(model_dir: Path, task: str | None) -> Task:
    """The task to label for: the card's, or a `--task` preset that has the same labels as the card's."""
    trained = card_task(model_dir)
    if task is None:
        if trained is None:
            raise DistillError(
                f"{model_dir} has no {CARD_NAME} naming its task: pass --task (a preset: `distill plugins` lists them)"
            )
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
    """The model's own output width decides: a task with another number of labels is refused (an embedding's
    width is the model's own)."""
    if width != task.num_labels and task.output != "embedding":
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


CHUNK_ROWS = 4096  # rows labelled and written at a time: memory stays flat whatever the file's length
NUMPY = ".npy"  # an output of the models' outputs alone
LOGIT_PREFIX = "logit_"  # `--logits` columns: logit_<label>
Outputs = Iterable[tuple[torch.Tensor, dict, "datasets.Dataset", list[int]]]  # outputs, batch, its rows, positions


@torch.inference_mode()
def predict(
    model_dir: Path,
    input_path: Path,
    output_path: Path,
    task: str | None = None,
    batch_size: int = 64,
    trust_remote_code: bool = False,
    logits: bool = False,
) -> int:
    """Write the input rows with the task's prediction columns (for classification: `prediction`, the label
    name, and one `probability_<label>` column per label; for embeddings, `embedding`), in the input's format.
    An output named .npy holds the models' outputs alone, one row per input row (embeddings, or logits). Rows are
    labelled and written a chunk at a time into a scratch file, which becomes `output_path` only once every row
    is written. With `logits`, a sentence task's rows also get one `logit_<label>` column per output, at full
    precision: a soft-label file a run can learn from (`model.teacher: that file`).

    Returns:
        The number of rows labelled.
    """
    # First: a folder that holds no model is the problem to report.
    model, tokenizer = load_model(model_dir, trust_remote_code)
    chosen = task_of(model_dir, task)
    rows = read_inputs(input_path, chosen)
    max_length = card_max_length(model_dir, MAX_LENGTH)

    def outputs(chunk: datasets.Dataset) -> Outputs:
        return outputs_of(model, tokenizer, chosen, chunk, batch_size, max_length, model_dir)

    return write_predictions(rows, chosen, output_path, outputs, logits)


@torch.inference_mode()
def predict_with_teacher(
    spec: Any,
    input_path: Path,
    output_path: Path,
    task: str,
    batch_size: int = 64,
    trust_remote_code: bool = False,
    max_length: int = MAX_LENGTH,
) -> int:
    """`distill predict --teacher`: what a teacher of any kind (`model.teacher`'s spec: a causal LM, an ensemble)
    says of each input row, as prediction columns and `logit_<label>` columns: a soft-label file to review, then
    to train from (`model.teacher: that file`).

    Returns:
        The number of rows labelled.
    """
    chosen = task_from_spec(task)
    rows = read_inputs(input_path, chosen)
    if "idx" in rows.column_names:
        raise DistillError(f"--input {str(input_path)!r} has a column named idx, which distill numbers rows with: "
                           f"rename it")  # fmt: skip
    examples = rows.add_column("idx", list(range(len(rows))))
    teacher = build_teacher(spec, chosen, trust_remote_code)
    teacher.prepare(InputRows(examples))

    def outputs(chunk: datasets.Dataset) -> Outputs:
        order = longest_first(chunk, chosen)
        for start in range(0, len(order), batch_size):
            picked = order[start : start + batch_size]
            part = chunk.select(picked)
            if teacher.tokenizer is not None:
                (batch,) = task_batches(chosen, teacher.tokenizer, part, None, max_length)
            else:  # a teacher that reads the rows' text itself (a causal LM) needs only their numbers
                batch = {"idx": torch.tensor(part["idx"]), "attention_mask": torch.ones(len(part), 1)}
            yield teacher(batch, frozenset({"logits"})).logits.float(), batch, part, picked

    return write_predictions(examples, chosen, output_path, outputs, True, drop=["idx"])


class InputRows:
    """The rows of `--input` as a teacher's `prepare` reads a run's data: as its training split."""

    def __init__(self, examples: datasets.Dataset) -> None:
        self.examples, self.notes, self.corpus = examples, {}, None

    def read(self, split: str) -> datasets.Dataset:
        return self.examples


def write_predictions(
    rows: datasets.Dataset,
    task: Task,
    output_path: Path,
    outputs: Callable[[datasets.Dataset], Outputs],
    logits: bool,
    drop: list[str] | None = None,
) -> int:
    """Write `rows` (less the `drop` columns) with the prediction columns of `outputs(chunk)`, a chunk at a time,
    into a scratch file that becomes `output_path` once every row is in; an output named .npy holds the outputs
    alone.

    Raises:
        DistillError: `logits` for a task whose outputs are not one value per label per row.
    """
    if logits and (task.per_token or task.output == "embedding"):
        raise DistillError(
            f"--logits writes one value per label per row, and task {task.name} outputs "
            f"{'one row per token' if task.per_token else 'embeddings'}: drop --logits"
        )
    if output_path.suffix.lower() == NUMPY:
        found = list(outputs(rows))
        with atomic_file(output_path, "wb") as stream:
            width = found[0][0].shape[-1] if found else task.num_labels
            if not found:
                np.save(stream, np.zeros((0, width), np.float32))
            else:
                positions = torch.tensor([row for *_, picked in found for row in picked])
                np.save(stream, torch.cat([output for output, *_ in found])[positions.argsort()].numpy())
        return len(rows)
    kind = file_format(output_path, "--output")
    kept = [c for c in rows.column_names if c not in (drop or [])]
    with atomic_file(output_path, "wb") as stream:
        writer = None
        for start in range(0, len(rows), CHUNK_ROWS):
            chunk = rows.select(range(start, min(start + CHUNK_ROWS, len(rows))))
            predictions = prediction_columns(task, outputs(chunk), logits)
            writer = writer or TableWriter(stream, kind, [*kept, *added_columns(predictions, rows)])
            writer.write({**chunk.select_columns(kept).to_dict(), **predictions})
        if writer is None:  # no rows: the header still gets the task's columns
            empty = task.prediction_columns(torch.empty(0, task.num_labels), {}, {})
            writer = TableWriter(stream, kind, [*kept, *added_columns(empty, rows)])
        writer.close()
    return len(rows)


def added_columns(predictions: dict[str, list], rows: datasets.Dataset) -> list[str]:
    """The prediction columns, which must not replace an input column.

    Raises:
        DistillError: the input already has one of them.
    """
    if clash := [c for c in predictions if c in rows.column_names]:
        raise DistillError(f"--input already has column(s) {clash} that predictions would overwrite: rename them")
    return list(predictions)


def prediction_columns(task: Task, outputs: Outputs, logits: bool = False) -> dict[str, list]:
    """The task's prediction columns for the rows `outputs` ran through the model, in the rows' own order, and
    with `logits` the raw outputs too (`logit_<label>`)."""
    names = list(task.labels) if task.labels is not None else ["score"]
    added: dict[str, dict[int, Any]] = {}
    for output, batch, chunk, positions in outputs:
        columns = task.prediction_columns(output, batch, chunk.to_dict())
        if logits:
            columns |= {f"{LOGIT_PREFIX}{name}": output[:, i].tolist() for i, name in enumerate(names)}
        for column, values in columns.items():
            added.setdefault(column, {}).update(zip(positions, values, strict=True))
    return {column: [values[row] for row in sorted(values)] for column, values in added.items()}


def outputs_of(
    model: torch.nn.Module,
    tokenizer: Any,
    task: Task,
    rows: datasets.Dataset,
    batch_size: int,
    max_length: int,
    model_dir: Path,
) -> Outputs:
    """(outputs in float32, encoded batch, its input rows, their positions in `rows`), a batch at a time, longest
    rows first: each batch pads to lengths close to its own (SST-2's training file in file order pads to three
    times the tokens)."""
    texts = rows.select_columns(list(task.text_columns))
    order = longest_first(texts, task)
    for start in range(0, len(order), batch_size):
        picked = order[start : start + batch_size]
        chunk = texts.select(picked)
        # One batch per chunk of rows, whatever the encoded inputs per row (a long QA context has several windows).
        (batch,) = task_batches(task, tokenizer, chunk, None, max_length)
        logits = head_logits(model(**model_inputs(model, batch))).float()
        check_label_space(model_dir, logits.shape[-1], task)
        yield logits, batch, chunk, picked


def longest_first(rows: datasets.Dataset, task: Task) -> list[int]:
    """Row positions by length, longest first: characters of the text columns (words of a word-list column), a
    cheap stand-in for word pieces."""
    lengths = [sum(len(value) for value in values) for values in zip(*(rows[c] for c in task.text_columns),
                                                                      strict=True)]  # fmt: skip
    return sorted(range(len(rows)), key=lambda row: -lengths[row])


class TableWriter:
    """Writes rows to a binary stream in `kind` (csv, tsv, json, jsonl, parquet), a chunk of columns at a time."""

    def __init__(self, stream: Any, kind: str, names: list[str]) -> None:
        self.stream, self.kind, self.names = stream, kind, names
        self.text = io.TextIOWrapper(stream, encoding="utf-8", newline="", write_through=True)
        self.parquet: Any = None
        self.first = True
        if kind in ("csv", "tsv"):
            # TSV as GLUE writes it: no quoting (a field holds no tab), so it reads back the way it was read.
            options = {"delimiter": "\t", "quoting": csv.QUOTE_NONE, "escapechar": "\\"} if kind == "tsv" else {}
            self.csv = csv.writer(self.text, lineterminator="\n", **options)
            self.csv.writerow(names)
        elif kind == "json":
            self.text.write("[")

    def write(self, columns: dict[str, list]) -> None:
        if self.kind == "parquet":
            table = pyarrow.Table.from_pydict({name: columns[name] for name in self.names})
            if self.parquet is None:
                self.parquet = pyarrow.parquet.ParquetWriter(self.stream, table.schema)
            self.parquet.write_table(table.cast(self.parquet.schema))
            return
        table = [columns[name] for name in self.names]
        records = [dict(zip(self.names, values, strict=True)) for values in zip(*table, strict=True)]
        if self.kind in ("csv", "tsv"):
            self.csv.writerows(list(record.values()) for record in records)
        elif self.kind == "jsonl":
            self.text.write("".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records))
        else:
            for record in records:
                self.text.write(("\n" if self.first else ",\n") + json.dumps(record, ensure_ascii=False))
                self.first = False

    def close(self) -> None:
        """Finish the file (a JSON array's bracket, a Parquet footer, or an empty Parquet file's schema)."""
        if self.kind == "json":
            self.text.write("\n]")
        elif self.kind == "parquet":
            if self.parquet is None:
                self.write({name: [] for name in self.names})
            self.parquet.close()
        self.text.flush()
        self.text.detach()
