"""Sentence-level tasks: one prediction per example of one text or a pair of texts.

Text classification (softmax over classes), regression (one score) and multi-label classification (a sigmoid
per label). They share reading and tokenising; each parses its labels, scores and serves its own way.
"""

from __future__ import annotations

import importlib
import math
from abc import abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch.nn.functional as F
from torch import Tensor

from distill import UNLABELLED, DataSource, DistillError, Preset, Task, lazy_module
from distill.plugins.tasks.glue import classification_presets, regression_presets

datasets = lazy_module("datasets")

if TYPE_CHECKING:
    from torchmetrics import Metric, MetricCollection
    from transformers import PreTrainedTokenizerBase


class LabelError(ValueError):
    """A label value the task cannot read; the message says what was expected."""


@dataclass
class SentenceTask(Task):
    """Shared by the sentence-level tasks. Each subclass says in `label_columns` which columns hold its labels.

    Attributes:
        text_columns: the column with the text, or two columns for a pair (e.g. [premise, hypothesis]).
        name: what cards, logs and cache files call the task; by default the class name.
    """

    text_columns: list[str] = field(default_factory=lambda: ["text"])
    name: str = ""

    def __post_init__(self) -> None:
        if not 1 <= len(self.text_columns) <= 2:
            raise DistillError(
                f"{type(self).__name__}.text_columns names {len(self.text_columns)} columns: give one text "
                f"column, or two for a pair"
            )
        self.name = self.name or type(self).__name__.lower()

    @abstractmethod
    def parse_label(self, values: Sequence[Any]) -> Any:
        """One row's label from its label-column values; raises LabelError with what was expected."""

    def fix_labels(self, values: list[Any], source: DataSource) -> None:
        """Discover the label space from the training split's parsed labels (only tasks that have one)."""

    def check_label(self, value: Any, split: str, source: DataSource, row: int) -> None:
        """Refuse a label outside the label space (only tasks that have one)."""

    def read(self, source: DataSource, split: str, limit: int | None = None) -> datasets.Dataset:
        columns = {
            **dict.fromkeys(self.text_columns, "text_columns"),
            **dict.fromkeys(self.label_columns, self._label_key()),
        }
        raw = self.load_columns(source, split, columns, limit)
        texts = self._texts(raw, split, source)
        labels = self._parse_labels(raw, split, source)
        if split == "train":
            self.fix_labels(labels, source)
        for row, label in enumerate(labels):
            self.check_label(label, split, source, row)
        return datasets.Dataset.from_dict({**texts, "labels": self.label_ids(labels), "idx": list(range(len(raw)))})

    def read_unlabelled(self, source: DataSource, split: str, limit: int | None = None) -> datasets.Dataset:
        raw = self.load_columns(source, split, dict.fromkeys(self.text_columns, "text_columns"), limit)
        unlabelled = [UNLABELLED] * self.num_labels if self.output == "sigmoid" else UNLABELLED
        return datasets.Dataset.from_dict(
            {**self._texts(raw, split, source), "labels": [unlabelled] * len(raw), "idx": list(range(len(raw)))}
        )

    def _texts(self, raw: datasets.Dataset, split: str, source: DataSource) -> dict[str, list[str]]:
        """The text columns, checked: every row holds a string."""
        texts = {column: raw[column] for column in self.text_columns}
        for column, values in texts.items():
            for row, value in enumerate(values):
                if not isinstance(value, str):
                    problem = f"{_MISSING} text in column {column!r}" if value is None else f"{value!r} is not text"
                    raise DistillError(f"{source.where(split, row)}: {problem}: fix that row or drop it")
        return texts

    def _parse_labels(self, raw: datasets.Dataset, split: str, source: DataSource) -> list[Any]:
        columns = [raw[c] for c in self.label_columns]
        parsed = []
        for row, values in enumerate(zip(*columns, strict=True)):
            try:
                parsed.append(self.parse_label(values))
            except LabelError as error:
                raise DistillError(f"{source.where(split, row)}: {error}") from None
        return parsed

    def label_ids(self, labels: list[Any]) -> list[Any]:
        """What the model is trained on for each parsed label (class ids for classification)."""
        return labels

    def _label_key(self) -> str:
        return "label_column"

    def encode(self, rows: dict[str, list], tokenizer: PreTrainedTokenizerBase, max_length: int) -> dict[str, list]:
        texts = [rows[column] for column in self.text_columns]
        return tokenizer(*texts, truncation=True, max_length=max_length)

    def notes(self, examples: datasets.Dataset, encoded: datasets.Dataset, max_length: int) -> list[str]:
        """Rows max_length cut, and text cells that are empty or hold NUL bytes (kept, and what becomes of them)."""
        notes = []
        lengths = [len(ids) for ids in encoded["input_ids"]]
        if cut := sum(length >= max_length for length in lengths):
            notes.append(
                f"{cut} of {len(lengths)} rows reached max_length {max_length} tokens and were cut there (raise "
                f"data.max_length to keep more of them)"
            )
        for column in self.text_columns:
            values = examples[column]
            if empty := sum(not (value or "").strip() for value in values):
                notes.append(
                    f"{empty} rows have an empty {column!r}: they are kept, and encoded as special tokens only"
                )
            if nul := sum("\0" in (value or "") for value in values):
                notes.append(
                    f"{nul} rows hold NUL bytes in {column!r}: kept; the tokenizer drops them as control characters"
                )
        return notes

    def _labelled(self, labels: Tensor) -> Tensor:
        """Rows that carry a gold label (a transfer set's synthetic rows do not)."""
        return labels != UNLABELLED if labels.dim() == 1 else (labels != UNLABELLED).all(-1)


@dataclass
class TextClassification(SentenceTask):
    """One class per example: sentiment, topic, intent, entailment.

    Attributes:
        label_column: the column holding each example's class name (or integer class id, see `labels`).
        labels: the class names in the order of the model's outputs. None discovers them from the training
            split, sorted (numbers numerically). An integer label in JSON, Parquet or hub data that is not
            itself one of the names is read as a position in this list.
        metrics: torchmetrics to report, the first selects checkpoints: accuracy, macro_f1, f1 (binary), mcc.
    """

    label_column: str = "label"
    labels: list[str] | None = None
    metrics: list[str] = field(default_factory=lambda: ["accuracy"])

    def __post_init__(self) -> None:
        super().__post_init__()
        if unknown := [m for m in self.metrics if m not in _CLASSIFICATION_METRICS]:
            raise DistillError(
                f"unknown metric(s) {unknown} for {type(self).__name__}: choose from {sorted(_CLASSIFICATION_METRICS)}"
            )
        if not self.metrics:
            raise DistillError(f"{type(self).__name__}.metrics is empty: name at least one, e.g. [accuracy]")
        self._given = self.labels is not None

    @classmethod
    def presets(cls) -> dict[str, Preset]:
        return classification_presets() if cls is TextClassification else {}

    @property
    def label_columns(self) -> list[str]:
        return [self.label_column]

    def parse_label(self, values: Sequence[Any]) -> str:
        (value,) = values
        if value is None or (isinstance(value, str) and not value.strip()):
            raise LabelError(f"{_MISSING} label")
        if isinstance(value, bool):
            raise LabelError(f"label {value!r} is not a class name: give class names or integer ids")
        if isinstance(value, int):
            if self.labels is None or str(value) in self.labels:
                return str(value)
            if not 0 <= value < len(self.labels):
                raise LabelError(f"class id {value} is out of range for the {len(self.labels)} labels {self.labels}")
            return self.labels[value]
        if isinstance(value, float) or (isinstance(value, str) and _is_fraction(value)):
            raise LabelError(
                f"label {value!r} is a number with a fraction, not a class: for scores use "
                f"class_path: Regression, or give class names or integer ids"
            )
        if not isinstance(value, str):
            raise LabelError(f"label {value!r} is not a class name: give class names or integer ids")
        return value

    def fix_labels(self, values: list[Any], source: DataSource) -> None:
        if self.labels is None:
            self.labels = sorted(set(values), key=_natural)
        if len(self.labels) < 2:
            raise DistillError(
                f"{source.where('train')} holds only the label(s) {self.labels}: classification needs at least two"
            )

    def check_label(self, value: Any, split: str, source: DataSource, row: int) -> None:
        if value not in self.labels:
            seen = "given in data.task.init_args.labels" if self._given else "seen in the training split"
            raise DistillError(
                f"{source.where(split, row)}: label {value!r} is not among the labels {seen} ({self.labels}): "
                f"fix the row, or list every label under data.task.init_args.labels"
            )

    def notes(self, examples: datasets.Dataset, encoded: datasets.Dataset, max_length: int) -> list[str]:
        """The sentence notes, and a split whose rows all carry one label (nothing else can be learned from it)."""
        notes = super().notes(examples, encoded, max_length)
        gold = (
            {label for label in examples["labels"] if label != UNLABELLED}
            if "labels" in examples.column_names
            else set()
        )
        if len(gold) == 1 and len(examples) > 1 and self.labels:
            notes.append(
                f"every labelled row has the label {self.labels[gold.pop()]!r}, so labels teach nothing else: check "
                f"{self.label_column!r} and the file"
            )
        return notes

    def teacher_note(self, logits: Tensor, labels: Tensor) -> str | None:
        """Accuracy under half of chance (1 / number of labels) on at least 32 gold rows."""
        gold = labels != UNLABELLED
        if int(gold.sum()) < 32 or not self.labels:
            return None
        accuracy = float((logits[gold].argmax(-1) == labels[gold]).float().mean())
        chance = 1 / len(self.labels)
        if accuracy >= chance / 2:
            return None
        return (
            f"the teacher agrees with the gold labels on only {accuracy:.0%} of {int(gold.sum())} dev rows, far below "
            f"chance ({chance:.0%}): its labels are probably in another order than the task's {self.labels}. Check "
            f"data.task.init_args.labels against the teacher's config.json id2label"
        )

    def label_ids(self, labels: list[Any]) -> list[int]:
        index = {name: position for position, name in enumerate(self.labels)}
        return [index[label] for label in labels]

    def label_loss(self, logits: Tensor, labels: Tensor) -> Tensor:
        labelled = self._labelled(labels)
        if not labelled.any():
            return logits.sum() * 0.0
        return F.cross_entropy(logits[labelled], labels[labelled])

    def build_metrics(self, prefix: str, sync: bool = True) -> MetricCollection:
        count = self.num_labels
        return _collection(
            {name: _CLASSIFICATION_METRICS[name](count, sync_on_compute=sync) for name in self.metrics}, prefix
        )

    @property
    def main_metric(self) -> str:
        return self.metrics[0]

    def predictions(self, logits: Tensor) -> Tensor:
        return logits.argmax(-1)

    def prediction_columns(
        self, logits: Tensor, batch: Mapping[str, Tensor], rows: Mapping[str, list]
    ) -> dict[str, list]:
        probabilities = logits.softmax(-1)
        columns: dict[str, list] = {"prediction": [self.labels[i] for i in probabilities.argmax(-1).tolist()]}
        for position, label in enumerate(self.labels):
            columns[f"probability_{label}"] = [round(p, 6) for p in probabilities[:, position].tolist()]
        return columns


@dataclass
class Regression(SentenceTask):
    """One real-valued score per example (similarity, rating).

    Attributes:
        label_column: the column holding each example's score.
        metrics: pearson or spearman correlation; the first selects checkpoints.
    """

    label_column: str = "label"
    metrics: list[str] = field(default_factory=lambda: ["pearson", "spearman"])
    output = "score"

    def __post_init__(self) -> None:
        super().__post_init__()
        if unknown := [m for m in self.metrics if m not in _REGRESSION_METRICS] or not self.metrics:
            raise DistillError(f"Regression.metrics {unknown or '[]'}: choose from {sorted(_REGRESSION_METRICS)}")

    @classmethod
    def presets(cls) -> dict[str, Preset]:
        return regression_presets() if cls is Regression else {}

    @property
    def labels(self) -> None:
        return None

    @property
    def label_columns(self) -> list[str]:
        return [self.label_column]

    def parse_label(self, values: Sequence[Any]) -> float:
        (value,) = values
        try:
            if isinstance(value, bool):
                raise ValueError
            score = float(value)
        except (TypeError, ValueError):
            raise LabelError(f"label {value!r} is not a number: a regression task needs a score in every row") from None
        if not math.isfinite(score):
            raise LabelError(f"label {value!r} is not a finite number")
        return score

    def label_loss(self, logits: Tensor, labels: Tensor) -> Tensor:
        labelled = self._labelled(labels)
        if not labelled.any():
            return logits.sum() * 0.0
        return F.mse_loss(logits[labelled].squeeze(-1), labels[labelled].float())

    def build_metrics(self, prefix: str, sync: bool = True) -> MetricCollection:
        return _collection({name: _REGRESSION_METRICS[name](sync_on_compute=sync) for name in self.metrics}, prefix)

    @property
    def main_metric(self) -> str:
        return self.metrics[0]

    def predictions(self, logits: Tensor) -> Tensor:
        return logits.squeeze(-1)

    def prediction_columns(
        self, logits: Tensor, batch: Mapping[str, Tensor], rows: Mapping[str, list]
    ) -> dict[str, list]:
        return {"prediction": [round(v, 6) for v in logits.squeeze(-1).tolist()]}


@dataclass
class MultiLabelClassification(SentenceTask):
    """Any number of labels per example, a sigmoid each (tags, toxicity types).

    Attributes:
        label_columns: one column per label, holding 1 (or true) where the label applies and 0 (or false)
            where it does not; the column names are the label names.
        threshold: a label is predicted where its probability reaches this.
        metrics: micro_f1, macro_f1 or accuracy (exact-match per label); the first selects checkpoints.
    """

    label_columns: list[str] = field(default_factory=list)
    threshold: float = 0.5
    metrics: list[str] = field(default_factory=lambda: ["micro_f1", "macro_f1"])
    output = "sigmoid"

    def __post_init__(self) -> None:
        super().__post_init__()
        if len(self.label_columns) < 2:
            raise DistillError(
                "MultiLabelClassification.label_columns needs at least two columns (one per label); "
                f"got {self.label_columns}"
            )
        if unknown := [m for m in self.metrics if m not in _MULTILABEL_METRICS] or not self.metrics:
            raise DistillError(
                f"MultiLabelClassification.metrics {unknown or '[]'}: choose from {sorted(_MULTILABEL_METRICS)}"
            )

    @property
    def labels(self) -> list[str]:
        return list(self.label_columns)

    def _label_key(self) -> str:
        return "label_columns"

    def parse_label(self, values: Sequence[Any]) -> list[int]:
        return [_flag(value, column) for value, column in zip(values, self.label_columns, strict=True)]

    def label_loss(self, logits: Tensor, labels: Tensor) -> Tensor:
        labelled = self._labelled(labels)
        if not labelled.any():
            return logits.sum() * 0.0
        return F.binary_cross_entropy_with_logits(logits[labelled], labels[labelled].float())

    def build_metrics(self, prefix: str, sync: bool = True) -> MetricCollection:
        count, threshold = self.num_labels, self.threshold
        return _collection(
            {
                name: _MULTILABEL_METRICS[name](count, threshold=threshold, sync_on_compute=sync)
                for name in self.metrics
            },
            prefix,
        )

    @property
    def main_metric(self) -> str:
        return self.metrics[0]

    def predictions(self, logits: Tensor) -> Tensor:
        return logits.sigmoid()

    def prediction_columns(
        self, logits: Tensor, batch: Mapping[str, Tensor], rows: Mapping[str, list]
    ) -> dict[str, list]:
        probabilities = logits.sigmoid()
        chosen = probabilities >= self.threshold
        names = [[name for name, on in zip(self.labels, row, strict=True) if on] for row in chosen.tolist()]
        columns: dict[str, list] = {"prediction": [",".join(row) for row in names]}
        for position, label in enumerate(self.labels):
            columns[f"probability_{label}"] = [round(p, 6) for p in probabilities[:, position].tolist()]
        return columns


def _flag(value: Any, column: str) -> int:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int) and value in (0, 1):
        return value
    if isinstance(value, str) and value.strip().lower() in _FLAGS:
        return _FLAGS[value.strip().lower()]
    raise LabelError(f"label column {column!r} holds {value!r}: a multi-label column holds 1/0 or true/false")


_MISSING = "the row has fewer fields than the header, or no"
_FLAGS = {"1": 1, "0": 0, "true": 1, "false": 0}


def _is_fraction(text: str) -> bool:
    try:
        number = float(text)
    except ValueError:
        return False
    return not text.strip().lstrip("+-").isdigit() and math.isfinite(number)


def _natural(name: str) -> tuple[int, int | float, str]:
    """Numbers in numeric order first, then names alphabetically: "2" before "10", and stable across formats."""
    stripped = name.strip()
    return (0, int(stripped), name) if stripped.lstrip("-").isdigit() else (1, 0, name)


def _metric(module: str, name: str) -> type[Metric]:
    """A torchmetrics class, imported on first use: torchmetrics alone costs 2 s of start-up."""
    return getattr(importlib.import_module(f"torchmetrics.{module}"), name)


def _collection(metrics: dict[str, Metric], prefix: str) -> MetricCollection:
    return _metric("collections", "MetricCollection")(metrics, prefix=prefix)


_CLASSIFICATION_METRICS = {
    "accuracy": lambda n, **kw: _metric("classification", "MulticlassAccuracy")(num_classes=n, average="micro", **kw),
    "macro_f1": lambda n, **kw: _metric("classification", "MulticlassF1Score")(num_classes=n, average="macro", **kw),
    "f1": lambda n, **kw: _metric("classification", "BinaryF1Score")(**kw),
    "mcc": lambda n, **kw: _metric("classification", "MatthewsCorrCoef")(
        task="binary" if n == 2 else "multiclass", num_classes=n, **kw
    ),
}
_REGRESSION_METRICS = {
    "pearson": lambda **kw: _metric("regression", "PearsonCorrCoef")(**kw),
    "spearman": lambda **kw: _metric("regression", "SpearmanCorrCoef")(**kw),
}
_MULTILABEL_METRICS = {
    "micro_f1": lambda n, **kw: _metric("classification", "MultilabelF1Score")(num_labels=n, average="micro", **kw),
    "macro_f1": lambda n, **kw: _metric("classification", "MultilabelF1Score")(num_labels=n, average="macro", **kw),
    "accuracy": lambda n, **kw: _metric("classification", "MultilabelAccuracy")(num_labels=n, average="micro", **kw),
}
