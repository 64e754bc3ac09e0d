"""The frozen teacher: any Hugging Face model with the task's head, run without gradients in eval mode."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from distill.errors import DistillError
from distill.features import FEATURE_NAMES, Anatomy, Features, TransformerTap
from distill.hf import load_classifier, load_tokenizer
from distill.task import Task

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase


class Teacher(nn.Module):
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

    def train(self, mode: bool = True) -> Teacher:
        """Ignore Lightning's switch to train mode: dropout in the teacher would only add noise to its targets."""
        return super().train(False)

    @torch.no_grad()
    def forward(self, batch: Mapping[str, Tensor], needs: frozenset[str]) -> Features:
        return self.tap.run(self.model, batch, needs)


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
