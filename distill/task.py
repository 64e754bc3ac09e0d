"""The task contract: what a task reads, how it is tokenised, which head it needs, and how it is scored and served.

A task arrives through the `distill_register_tasks` hook and is named in YAML by class_path (or by one of its
presets, such as `sst2`). The core only calls the methods below, so a token-level task (NER, extractive QA) fits
the same contract: its logits are (batch, tokens, labels), and `compared` picks the positions that count.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from torch import Tensor

from distill.errors import DistillError
from distill.hf import head_logits
from distill.sources import DataFiles, DataSource, HubDataset

if TYPE_CHECKING:  # imported where used: torchmetrics alone costs 2 s of start-up
    import datasets
    from torchmetrics import MetricCollection
    from transformers import PreTrainedTokenizerBase

Output = Literal["softmax", "sigmoid", "score", "embedding"]
# A column `read` may add to the training split: rows sharing a group id (>= 0) are the texts of one example (a
# query with its positive and negative passages). Training batches keep a group's rows together and in order.
GROUP = "group"
GENERIC_LABEL = "LABEL_{}"  # what transformers calls labels nobody named
_PROBLEM_TYPES = {
    "softmax": "single_label_classification",
    "sigmoid": "multi_label_classification",
    "score": "regression",
    "embedding": None,
}


@dataclass(frozen=True)
class Preset:
    """A task by name (`data.task: sst2`): the task's arguments and where its data lives by default.

    Attributes:
        init_args: the task class's arguments.
        files: split -> file name inside `data.data_dir`, a folder in the preset's own layout.
        column_names: names for those files' columns when they have no header line.
        hub: where the data is on the hub when `data.data_dir` is not given.
    """

    init_args: dict[str, Any]
    files: dict[str, str]
    column_names: list[str] | None = None
    hub: HubDataset | None = None

    def source(self, data_dir: Path | None) -> DataSource:
        """The preset's files in `data_dir`, else its hub dataset."""
        if data_dir is not None:
            paths = {split: str(data_dir / name) for split, name in self.files.items()}
            return DataFiles(**paths, column_names=self.column_names)
        if self.hub is None:
            raise DistillError("this preset has no hub dataset: set data.data_dir to a folder holding its files")
        return self.hub


class Task(ABC):
    """One kind of problem, end to end: examples, label space, head, label loss, compared logits, metrics and
    predictions. Subclasses are usually dataclasses, whose fields are the YAML init_args.

    `labels` lists the label names in the order of the head's outputs; None means the task has none (regression).
    Tasks that discover their labels from the training split set them in `read`.
    """

    name: str
    labels: Sequence[str] | None
    text_columns: Sequence[str]
    head: ClassVar[str] = "AutoModelForSequenceClassification"  # the transformers class an export loads with
    output: ClassVar[Output] = "softmax"  # what the model's output is, which decides the losses that can read it
    per_token: ClassVar[bool] = False  # logits are (batch, tokens, labels): sentence-level students cannot serve it
    split_into_words: ClassVar[bool] = False  # a text column holds a list of words, not a string

    @classmethod
    def presets(cls) -> dict[str, Preset]:
        """Ready-made settings by name (`data.task: <name>`)."""
        return {}

    # --- examples ---------------------------------------------------------------------------------------------

    @abstractmethod
    def read(self, source: DataSource, split: str, limit: int | None = None) -> datasets.Dataset:
        """The split's examples in the columns `encode` reads, with `labels` and `idx` (the row number).

        Reading "train" fixes the label space when it was not given. Raises DistillError naming the source,
        the row and the key for a missing column, an unparsable or unseen label, or an empty split.
        """

    def read_unlabelled(self, source: DataSource, split: str, limit: int | None = None) -> datasets.Dataset:
        """The split's texts in `read`'s columns, every label UNLABELLED: a corpus the teacher labels.

        Raises:
            DistillError: the task cannot learn from rows without labels (this default), or as `read` does.
        """
        raise DistillError(
            f"task {self.name} cannot train on unlabelled text, since its examples need labels to be read: "
            f"remove data.corpus"
        )

    def load_columns(
        self, source: DataSource, split: str, columns: Mapping[str, str], limit: int | None
    ) -> datasets.Dataset:
        """The split's first `limit` rows, checked: `columns` maps each column `read` needs to the init_arg that
        names it, so a missing one is refused naming the key to fix, with the columns there are.

        Raises:
            DistillError: a column is missing, or the split has no rows.
        """
        raw = source.load(split)
        if missing := [c for c in columns if c not in raw.column_names]:
            keys = ", ".join(dict.fromkeys(columns.values()))
            raise DistillError(
                f"{source.where(split)} has no column(s) {missing}; its columns are {raw.column_names}. "
                f"Name the right ones in data.task.init_args ({keys})"
            )
        if limit is not None:
            raw = raw.select(range(min(limit, len(raw))))
        if len(raw) == 0:
            raise DistillError(f"{source.where(split)} has no rows: give a file with at least one example")
        return raw

    def side_files(self) -> list[Path]:
        """Files the task reads beside its data source (an embedding task's passages): their contents key the
        tokenised cache with the data's, so editing one is never answered from a stale cache."""
        return []

    @abstractmethod
    def encode(self, rows: dict[str, list], tokenizer: PreTrainedTokenizerBase, max_length: int) -> dict[str, list]:
        """Tokenise a batch of rows (a `datasets.map` function); labels are carried along or aligned to tokens."""

    def notes(self, examples: datasets.Dataset, encoded: datasets.Dataset, max_length: int) -> list[str]:
        """What a user should know about how a split was encoded, such as how many examples max_length cut;
        the data module prints each note once, after tokenising."""
        return []

    def teacher_note(self, logits: Tensor, labels: Tensor) -> str | None:
        """A warning when a teacher's predictions on a few dev batches agree with the gold labels far less than
        chance would (a label list in another order than the teacher's, say); None when they look sound or the
        task cannot tell."""
        return None

    def collator(self, tokenizer: PreTrainedTokenizerBase) -> Any:
        """Pads a list of encoded rows into a batch."""
        from transformers import DataCollatorWithPadding

        return DataCollatorWithPadding(tokenizer)

    @property
    def is_pair(self) -> bool:
        """Whether an example is a pair of texts (the students' segment embeddings, the transfer set)."""
        return len(self.text_columns) == 2

    # --- head and teacher -------------------------------------------------------------------------------------

    @property
    def num_labels(self) -> int:
        return 1 if self.labels is None else len(self.labels)

    def head_config(self) -> dict[str, Any]:
        """The head's settings in a transformers config: output width, and the label names in both directions."""
        names = list(self.labels) if self.labels is not None else ["score"]
        return {
            "num_labels": self.num_labels,
            "id2label": dict(enumerate(names)),
            "label2id": {name: index for index, name in enumerate(names)},
            "problem_type": _PROBLEM_TYPES[self.output],
        }

    def adopt_teacher(self, source: str) -> None:  # noqa: B027 (a hook)
        """Take settings the teacher's folder or hub repository states (an embedding task's pooling) before any of
        its outputs is read. Nothing by default.

        Raises:
            DistillError: the teacher does not say what the task needs, and the task was not told either.
        """

    def read_output(self, output: Any, attention_mask: Tensor) -> Tensor:
        """The task's output from a Transformer's raw output: its logits by default; an embedding task pools
        the last hidden state here. Teacher and Transformer students are read through it."""
        return head_logits(output)

    def output_width(self, config: Any) -> int:
        """How wide `read_output` is for a model of this transformers config (its label count by default)."""
        return config.num_labels

    def export_files(self, folder: Path) -> None:  # noqa: B027 (a hook)
        """Files an export needs beyond the model's own so that its users' tools load it (an embedding task
        writes sentence-transformers' modules and pooling settings). Nothing by default."""

    def teacher_order(self, id2label: Mapping[int, str], teacher: str) -> list[int] | None:
        """Which teacher output answers for each of this task's labels: None when they already line up.

        A teacher whose labels were never named (LABEL_0, LABEL_1, ...) is checked by their number only.

        Raises:
            DistillError: the teacher predicts other labels than the data holds (both lists are named).
        """
        names = [id2label[i] for i in sorted(id2label)]
        ours = list(self.labels) if self.labels is not None else ["score"]
        unnamed = names == [GENERIC_LABEL.format(i) for i in range(len(names))]
        if len(names) == len(ours) and (unnamed or names == ours or self.labels is None):
            return None
        if not unnamed and sorted(names) == sorted(ours):
            return [names.index(label) for label in ours]
        raise DistillError(
            f"teacher {teacher!r} predicts {len(names)} label(s) {names}, but task {self.name} has "
            f"{len(ours)}: {ours}. Use a teacher fine-tuned on these labels (see configs/custom/teacher.yaml), "
            f"or give data.task.init_args.labels in the teacher's order if the names differ only in spelling"
        )

    # --- training and evaluation ------------------------------------------------------------------------------

    @abstractmethod
    def label_loss(self, logits: Tensor, labels: Tensor) -> Tensor:
        """The loss on gold labels; rows (or positions) labelled UNLABELLED are skipped, and none at all gives 0."""

    def compared(self, logits: Tensor, batch: Mapping[str, Tensor]) -> Tensor:
        """The logits the distillation losses compare, one row per scored position: (N, labels).
        A sentence-level task scores every example; a token-level task picks its tokens here."""
        return logits

    @abstractmethod
    def build_metrics(self, prefix: str, sync: bool = True) -> MetricCollection:
        """Fresh torchmetrics for this task, fed by `update_metrics`. They sync across ranks under DDP unless
        `sync` is off (a measurement one rank makes alone, such as the report card)."""

    @property
    @abstractmethod
    def main_metric(self) -> str:
        """The metric (a key of `build_metrics`, without prefix) checkpoints are selected on; higher is better."""

    def update_metrics(self, metrics: MetricCollection, logits: Tensor, batch: Mapping[str, Tensor]) -> None:
        """Feed one batch's predictions and gold labels to the metrics."""
        metrics.update(self.predictions(logits), batch["labels"])

    def agreement(self, outputs: Sequence[Tensor], teacher: Sequence[Tensor]) -> dict[str, float]:
        """How closely a model follows the teacher on the dev rows, by name (an embedding task's mean cosine): the
        report card shows it beside the metrics. Both are the models' outputs batch by batch, on the same rows in
        the same order. {} by default: the task has no such measure."""
        return {}

    @abstractmethod
    def predictions(self, logits: Tensor) -> Tensor:
        """What the metrics compare with the labels: class ids, 0/1 per label, or the score."""

    # --- serving ----------------------------------------------------------------------------------------------

    @abstractmethod
    def prediction_columns(
        self, logits: Tensor, batch: Mapping[str, Tensor], rows: Mapping[str, list]
    ) -> dict[str, list]:
        """What `distill predict` adds to each input row of one batch: column name -> one value per row.
        `batch` is the encoded batch and `rows` its input rows (a token-level task maps word pieces to words)."""

    def spec(self) -> dict[str, Any]:
        """The task with its label space fixed, as YAML would name it: it travels into checkpoints and cards.
        A dataclass task gets it from its fields; another task overrides this to return its init_args."""
        cls = type(self)
        arguments = dataclasses.asdict(self) if dataclasses.is_dataclass(self) else {}
        return {"class_path": f"{cls.__module__}.{cls.__qualname__}", "init_args": arguments}
