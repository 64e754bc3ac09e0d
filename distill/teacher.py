"""Teachers: what the students learn from. `Teacher` is a fine-tuned Hugging Face model with the task's head, run
without gradients in eval mode; other kinds (a file of soft labels, a causal LM, several teachers at once) derive
from `BaseTeacher` and arrive through the `distill_register_teachers` hook.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from distill.errors import DistillError
from distill.features import FEATURE_NAMES, Anatomy, Features, TransformerTap
from distill.hf import load_classifier, load_tokenizer
from distill.task import Task

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase


class BaseTeacher(nn.Module, ABC):
    """A teacher of any kind: frozen, in eval mode for good, answering a training batch with Features.

    Subclasses set, in `__init__`: `source` (what cards name), `anatomy` (its `provides` decides which losses it
    can serve), and `model` and `tokenizer`: the encoder whose vocabulary the data is tokenised with and whose
    layers students may copy, or None for a teacher that has none (the student then brings its tokenizer).
    """

    source: str
    anatomy: Anatomy
    model: nn.Module | None  # set by every subclass (a class default would hide a registered submodule)
    tokenizer: PreTrainedTokenizerBase | None
    cacheable: bool = True  # whether the teacher cache may keep its outputs (a table of them needs none)
    labels_new_rows: bool = True  # whether it answers any tokenised row, or only the training examples it read

    @classmethod
    def claims(cls, source: str) -> bool:
        """Whether a plain string `model.teacher` names a teacher of this kind (a soft-label file, say). The
        Hugging Face `Teacher` takes every string no registered kind claims."""
        return False

    @abstractmethod
    def forward(self, batch: Mapping[str, Tensor], needs: frozenset[str]) -> Features:
        """The features the losses read, for a training batch (its rows' `idx` say which examples they are)."""

    def prepare(self, data: Any) -> None:  # noqa: B027 (a hook)
        """Read what the teacher needs of the run's data once it is set up (the training examples a soft-label
        file must cover), before the first batch. Nothing by default.

        Raises:
            DistillError: the data and the teacher do not fit (rows missing, labels that differ).
        """

    def answer(self, batch: Mapping[str, Tensor]) -> Tensor | None:
        """The task output on a batch of any split (the dev check at fit start), or None when the teacher answers
        training rows only."""
        return None

    @property
    def served(self) -> nn.Module | None:
        """The teacher as the report card scores and times it, or None when it cannot run on dev inputs."""
        return None

    def folder(self) -> Path | None:
        """Where the teacher's weights are on disk, for the report card's size column; None when it has none."""
        return None

    def members(self) -> dict[str, BaseTeacher]:
        """The teachers inside this one, by name, each measured on the report card beside it (an ensemble's)."""
        return {}

    def fingerprint(self) -> str:
        """Changes whenever the teacher's answers could: it names the teacher cache's folder."""
        return teacher_digest(self.state_dict())

    def take_encoder(self, source: str | None, task: Task, trust_remote_code: bool = False) -> None:
        """Set `model` and `tokenizer` from an encoder folder or hub id that is never run (a teacher that is not an
        encoder names one, so the data has a tokenizer and students have layers to copy); None sets neither."""
        self.model, self.tokenizer = None, None
        if source is not None:
            model = load_classifier(source, "teacher", head=task.head, trust_remote_code=trust_remote_code)
            self.model = model.eval().requires_grad_(False)
            self.tokenizer = load_tokenizer(source, "teacher", trust_remote_code=trust_remote_code)

    def train(self, mode: bool = True) -> BaseTeacher:
        """Ignore Lightning's switch to train mode: dropout in the teacher would only add noise to its targets."""
        return super().train(False)


def teacher_digest(state: Mapping[str, Tensor]) -> str:
    """Changes whenever any teacher weight changes."""
    digest = hashlib.sha256()
    for name in sorted(state):
        digest.update(name.encode())
        digest.update(state[name].detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


class Teacher(BaseTeacher):
    """Wraps a fine-tuned model. It has no trainable parameters and stays in eval mode for good.

    Its outputs are checked against the task's labels by name, and put in the task's order when the teacher
    lists the same labels in another order.
    """

    def __init__(self, source: str, task: Task | None = None, trust_remote_code: bool = False) -> None:
        """Args:
        source: folder or hub id of the fine-tuned model.
        task: the task it teaches: it picks the head class and checks (and orders) the labels; None loads a
            sequence classifier as it is.
        trust_remote_code: run the Python code the folder or hub repository ships (auto_map), if any.
        """
        super().__init__()
        self.source, self.task = source, task
        head = task.head if task is not None else "AutoModelForSequenceClassification"
        if task is not None:
            task.adopt_teacher(source)
        trust = trust_remote_code
        self.model = load_classifier(source, "teacher", head=head, trust_remote_code=trust).eval().requires_grad_(False)
        self.tokenizer = load_tokenizer(source, "teacher", trust_remote_code=trust)
        config = self.model.config
        order = task.teacher_order(config.id2label, source) if task is not None else None
        if order is not None:
            reorder_head(self.model, order)
            config.id2label, config.label2id = task.head_config()["id2label"], task.head_config()["label2id"]
        self.tap = TransformerTap(self.model, role="teacher", read=task.read_output if task is not None else None)
        self.anatomy = Anatomy(
            family="teacher",
            provides=FEATURE_NAMES,
            num_layers=config.num_hidden_layers,
            hidden_size=config.hidden_size,
            num_heads=config.num_attention_heads,
            num_labels=task.output_width(config) if task is not None else config.num_labels,
        )
        self.eval()

    @property
    def served(self) -> nn.Module:
        """The teacher as the report card times and scores it (see `answering`)."""
        return answering(self.model, self.task)

    @property
    def num_labels(self) -> int:
        return self.model.config.num_labels

    @torch.no_grad()
    def forward(self, batch: Mapping[str, Tensor], needs: frozenset[str]) -> Features:
        return self.tap.run(self.model, batch, needs)

    @torch.no_grad()
    def answer(self, batch: Mapping[str, Tensor]) -> Tensor:
        return self.tap.run(self.model, batch, frozenset({"logits"})).logits

    def folder(self) -> Path:
        """The model folder, or the hub snapshot the model was loaded from."""
        from huggingface_hub import snapshot_download

        return Path(self.source) if Path(self.source).is_dir() else Path(snapshot_download(self.source))


def require_teacher_model(teacher: BaseTeacher | None, needs: str) -> BaseTeacher:
    """The teacher, checked to have a model whose layers and vocabulary a student can take; `needs` says who
    takes what (`BertStudent takes its sizes and vocabulary`).

    Raises:
        DistillError: there is no teacher, or it has no model of its own.
    """
    if teacher is None or teacher.model is None:
        raise DistillError(
            f"{needs} from the teacher's model: set model.teacher to a model folder or hub id (a teacher with no "
            f"model of its own, such as a soft-label file, names one with `tokenizer:`)"
        )
    return teacher


class TaskOutput(nn.Module):
    """A Hugging Face model that answers with its task's output (`model(input_ids, attention_mask) -> tensor`)."""

    def __init__(self, model: nn.Module, task: Task) -> None:
        super().__init__()
        self.model, self.task = model, task
        self.config = model.config  # what distill reads of a Hugging Face model: segment ids, positions

    def forward(self, input_ids: Tensor, attention_mask: Tensor, token_type_ids: Tensor | None = None) -> Tensor:
        extra = {} if token_type_ids is None else {"token_type_ids": token_type_ids}
        return self.task.read_output(
            self.model(input_ids=input_ids, attention_mask=attention_mask, **extra), attention_mask
        )


def answering(model: nn.Module, task: Task | None) -> nn.Module:
    """`model` as served for `task`: itself, or, when the task reads more than its logits (an embedding task
    pools), wrapped so that calling it returns the task's output."""
    if task is None or type(task).read_output is Task.read_output:
        return model
    return TaskOutput(model, task)


def check_vocabulary(model: nn.Module, tokenizer: PreTrainedTokenizerBase, source: str) -> None:
    """A tokenizer with more word pieces than the model has embedding rows would index past the table mid-run.

    Raises:
        DistillError: the tokenizer does not fit the weights.
    """
    table = model.get_input_embeddings()
    rows = getattr(table, "num_embeddings", None)
    if rows is not None and len(tokenizer) > rows:
        raise DistillError(
            f"teacher {source!r}: its tokenizer has {len(tokenizer)} word pieces but its embedding table only {rows} "
            f"rows, so they do not belong together: save the model with the tokenizer it was trained with"
        )


@torch.no_grad()
def reorder_head(model: nn.Module, order: list[int]) -> None:
    """Permute the output layer (the last Linear as wide as the label space) so output i is label `order[i]`.

    Raises:
        DistillError: the model has no such layer to permute.
    """
    width = len(order)
    head = next(
        (m for m in reversed(list(model.modules())) if isinstance(m, nn.Linear) and m.out_features == width), None
    )
    if head is None:
        raise DistillError(f"found no output layer of width {width} to put the teacher's labels in the task's order")
    index = torch.tensor(order)
    head.weight.copy_(head.weight[index])
    if head.bias is not None:
        head.bias.copy_(head.bias[index])
