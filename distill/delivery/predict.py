"""`distill predict`: label a TSV file with an exported model."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import torch

from distill.delivery.bench import make_batches
from distill.delivery.export import CARD_NAME, write_text_atomic
from distill.delivery.loading import load_model
from distill.errors import DistillError
from distill.tasks import GlueTask, get_task


def _task_of(model_dir: Path, task: str | None) -> GlueTask:
    """The task to label for: the card's, or `--task` where it has the same labels as the card's."""
    card = model_dir / CARD_NAME
    trained = get_task(json.loads(card.read_text())["task"]) if card.is_file() else None
    if task is None:
        if trained is None:
            raise DistillError(f"{model_dir} has no {CARD_NAME} naming its task: pass --task")
        return trained
    asked = get_task(task)
    if trained is not None and asked.labels != trained.labels:
        raise DistillError(
            f"--task {asked.name} has labels {_labels(asked)}, but {model_dir} was trained on {trained.name} "
            f"with labels {_labels(trained)}: drop --task, or give a model trained for {asked.name}"
        )
    return asked


def _labels(task: GlueTask) -> str:
    return "a regression score" if task.labels is None else ", ".join(task.labels)


def check_label_space(model_dir: Path, width: int, task: GlueTask) -> None:
    """The model's own output width decides: a task with another number of labels is refused."""
    if width != task.num_labels:
        raise DistillError(
            f"{model_dir} predicts {width} value(s) per row, but task {task.name} needs {task.num_labels} "
            f"({_labels(task)}): drop --task, or pass the task the model was trained on"
        )


def read_inputs(path: Path, task: GlueTask) -> tuple[list[str], list[list[str]]]:
    """Header and rows of a TSV holding the task's text columns (quoting off, as GLUE files need)."""
    if not path.is_file():
        raise DistillError(f"input file {path} does not exist: give a TSV with a header naming {task.text_columns}")
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE))
    if not rows or any(column not in rows[0] for column in task.text_columns):
        raise DistillError(
            f"{path}: the header must name the text columns {list(task.text_columns)}; "
            f"found {rows[0] if rows else 'an empty file'}"
        )
    header = rows[0]
    for line, row in enumerate(rows[1:], start=2):
        if len(row) != len(header):
            raise DistillError(f"{path}, line {line}: expected {len(header)} tab-separated fields, found {len(row)}")
    return header, rows[1:]


@torch.inference_mode()
def predict(model_dir: Path, input_path: Path, output_path: Path, task: str | None = None, batch_size: int = 64) -> int:
    """Write the input rows with a `prediction` column and one probability column per label.

    Returns:
        The number of rows labelled.
    """
    model, tokenizer = load_model(model_dir)  # first: a folder that holds no model is the problem to report
    glue = _task_of(model_dir, task)
    header, rows = read_inputs(input_path, glue)
    texts = [tuple(row[header.index(c)] for c in glue.text_columns) for row in rows]
    outputs = []
    for batch in make_batches(tokenizer, texts, batch_size):
        result = model(**batch)
        outputs.append(result.logits if hasattr(result, "logits") else result)
    logits = torch.cat(outputs) if outputs else torch.empty(0, glue.num_labels)
    if outputs:
        check_label_space(model_dir, logits.shape[-1], glue)
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter="\t", quoting=csv.QUOTE_NONE, escapechar="\\", lineterminator="\n")
    if glue.labels is None:
        writer.writerow([*header, "prediction"])
        writer.writerows([*row, f"{score:.6f}"] for row, score in zip(rows, logits.squeeze(-1).tolist(), strict=True))
    else:
        writer.writerow([*header, "prediction", *(f"probability_{label}" for label in glue.labels)])
        probabilities = logits.softmax(-1)
        for row, p in zip(rows, probabilities.tolist(), strict=True):
            writer.writerow([*row, glue.labels[max(range(len(p)), key=p.__getitem__)], *(f"{v:.6f}" for v in p)])
    write_text_atomic(output_path, buffer.getvalue())
    return len(rows)
