"""GLUE tasks by name: where their text and labels live, and how they are scored."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torchmetrics import MetricCollection
from torchmetrics.classification import BinaryF1Score, MatthewsCorrCoef, MulticlassAccuracy
from torchmetrics.regression import PearsonCorrCoef, SpearmanCorrCoef

from distill.errors import DistillError


@dataclass(frozen=True)
class GlueTask:
    """One GLUE task: its TSV layout, its hub layout, its labels and its official metrics.

    `labels` lists the label strings in the order of the hub's class ids; None marks regression (STS-B).
    The first entry of `metrics` is the task's main metric (the one checkpoints are selected on).
    """

    name: str
    folder: str
    text_columns: tuple[str, ...]
    label_column: str
    labels: tuple[str, ...] | None
    metrics: tuple[str, ...]
    hub_text_columns: tuple[str, ...]
    dev_file: str = "dev.tsv"
    hub_dev_split: str = "validation"
    header: tuple[str, ...] | None = None  # column names for files that have no header line (CoLA)

    @property
    def num_labels(self) -> int:
        return 1 if self.labels is None else len(self.labels)

    @property
    def is_pair(self) -> bool:
        return len(self.text_columns) == 2

    @property
    def main_metric(self) -> str:
        return self.metrics[0]

    def build_metrics(self, prefix: str, sync: bool = True) -> MetricCollection:
        """Fresh torchmetrics objects for this task. They sync across ranks under DDP unless `sync` is off
        (a measurement that one rank makes alone, such as the report card)."""
        metrics = {name: _METRIC_FACTORIES[name](self.num_labels, sync_on_compute=sync) for name in self.metrics}
        return MetricCollection(metrics, prefix=prefix)

    def predictions(self, logits: torch.Tensor) -> torch.Tensor:
        """What the metrics compare with the labels: class ids, or the score for regression."""
        return logits.squeeze(-1) if self.labels is None else logits.argmax(-1)


_METRIC_FACTORIES = {
    "accuracy": lambda n, **kw: MulticlassAccuracy(num_classes=max(n, 2), average="micro", **kw),
    "f1": lambda n, **kw: BinaryF1Score(**kw),
    "mcc": lambda n, **kw: MatthewsCorrCoef(task="binary", **kw),
    "pearson": lambda n, **kw: PearsonCorrCoef(**kw),
    "spearman": lambda n, **kw: SpearmanCorrCoef(**kw),
}

_BINARY = ("0", "1")
_NLI2 = ("entailment", "not_entailment")

TASKS: dict[str, GlueTask] = {
    t.name: t
    for t in (
        GlueTask("sst2", "SST-2", ("sentence",), "label", _BINARY, ("accuracy",), ("sentence",)),
        GlueTask(
            "cola",
            "CoLA",
            ("sentence",),
            "label",
            _BINARY,
            ("mcc",),
            ("sentence",),
            header=("source", "label", "author_label", "sentence"),
        ),
        GlueTask(
            "mrpc",
            "MRPC",
            ("#1 String", "#2 String"),
            "Quality",
            _BINARY,
            ("f1", "accuracy"),
            ("sentence1", "sentence2"),
        ),
        GlueTask(
            "qqp",
            "QQP",
            ("question1", "question2"),
            "is_duplicate",
            _BINARY,
            ("accuracy", "f1"),
            ("question1", "question2"),
        ),
        GlueTask(
            "stsb",
            "STS-B",
            ("sentence1", "sentence2"),
            "score",
            None,
            ("pearson", "spearman"),
            ("sentence1", "sentence2"),
        ),
        GlueTask(
            "mnli",
            "MNLI",
            ("sentence1", "sentence2"),
            "gold_label",
            ("entailment", "neutral", "contradiction"),
            ("accuracy",),
            ("premise", "hypothesis"),
            dev_file="dev_matched.tsv",
            hub_dev_split="validation_matched",
        ),
        GlueTask("qnli", "QNLI", ("question", "sentence"), "label", _NLI2, ("accuracy",), ("question", "sentence")),
        GlueTask("rte", "RTE", ("sentence1", "sentence2"), "label", _NLI2, ("accuracy",), ("sentence1", "sentence2")),
    )
}


def get_task(name: str) -> GlueTask:
    """Look a task up by its GLUE name ("sst2", "SST-2" and "sst-2" all work).

    Raises:
        DistillError: the task is not a GLUE task this tool knows.
    """
    key = name.lower().replace("-", "")
    if key not in TASKS:
        raise DistillError(f"unknown task {name!r}: choose one of {', '.join(sorted(TASKS))} (data.task in the config)")
    return TASKS[key]
