"""The loss-hook contract: every term of the training objective is a LossTerm."""

from __future__ import annotations

import dataclasses
from abc import abstractmethod
from collections.abc import Mapping
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from distill.errors import DistillError
from distill.features import Anatomy, Features
from distill.schedule import Ramp
from distill.task import Task


class LossTerm(nn.Module):
    """One named, weighted term of the objective: `weight(progress) * forward(student, teacher, batch)`.

    Subclasses declare the features they read in `needs` (from the student) and `teacher_needs` (from the
    teacher; None means the same as `needs`, an empty set means the term needs no teacher). Trainable parts,
    such as projections, are built in `setup` and trained with the student; they never reach the export.
    """

    name: ClassVar[str] = "loss"
    task: Task | None = None  # the run's task, set by the core before `setup`: its label loss, compared logits
    needs: ClassVar[frozenset[str]] = frozenset({"logits"})
    teacher_needs: ClassVar[frozenset[str] | None] = None
    # The task outputs (`Task.output`) a term that reads logits can compare: class scores by default; an
    # embedding loss names "embedding".
    reads_outputs: ClassVar[frozenset[str]] = frozenset({"softmax", "sigmoid", "score"})

    def __init__(self, weight: float = 1.0, weight_schedule: Ramp | None = None) -> None:
        """Args:
        weight: the term's weight in the objective.
        weight_schedule: multiplies `weight` over training progress (warm-up or decay); constant when None.
        """
        super().__init__()
        self.weight = weight
        self.weight_schedule = weight_schedule
        self.progress = 0.0  # fraction of training done; the module advances it before each step

    @property
    def from_teacher(self) -> frozenset[str]:
        """The teacher features this term reads."""
        return self.needs if self.teacher_needs is None else self.teacher_needs

    def teacher_layers(self) -> frozenset[int] | None:
        """The teacher layers whose hidden states this term reads, once `setup` has run (0 is the embedding
        output); None when it may read any. The teacher cache keeps only the layers some term reads."""
        return None

    def current_weight(self) -> float:
        scale = self.weight_schedule(self.progress) if self.weight_schedule else 1.0
        return self.weight * scale

    def scheduled(self) -> dict[str, float]:
        """Values that move with training progress, for the logger (the weight, when it has a schedule)."""
        return {"weight": self.current_weight()} if self.weight_schedule else {}

    def learning_rates(self) -> dict[str, float]:
        """Learning rates for this term's own trainable parts, by attribute path within the term (for example
        {"projections": 1e-3}): a fresh projection may want more than the student's fine-tuning rate. Parts
        not named here train at the run's `model.learning_rate`."""
        return {}

    def setup(self, student: Anatomy, teacher: Anatomy | None) -> None:
        """Check the models fit this term and build its trainable parts. Called once, before training.

        Raises:
            DistillError: the student or the teacher cannot serve this term (layer out of range, head mismatch).
        """

    def __call__(self, student: Features, teacher: Features | None, batch: Mapping[str, Tensor]) -> Tensor:
        """`forward` in float32 with autocast off, whatever the run's precision: softmax at a low temperature, KL
        and squared errors overflow or underflow in float16 (and lose digits in bfloat16), which is where
        distillation under mixed precision goes NaN. The features are cast up; the student's graph stays mixed."""
        with torch.autocast(student.logits.device.type, enabled=False):
            return super().__call__(in_float32(student), None if teacher is None else in_float32(teacher), batch)

    @abstractmethod
    def forward(self, student: Features, teacher: Features | None, batch: Mapping[str, Tensor]) -> Tensor:
        """The unweighted scalar loss."""


def in_float32(features: Features) -> Features:
    """The same features with every half-precision tensor in float32."""

    def up(value: Any) -> Any:
        if isinstance(value, Tensor):
            return value.float() if value.is_floating_point() and value.dtype != torch.float32 else value
        if isinstance(value, tuple):
            return tuple(up(item) for item in value)
        if isinstance(value, dict):
            return {key: up(item) for key, item in value.items()}
        return value

    fields = {field.name: up(getattr(features, field.name)) for field in dataclasses.fields(features)}
    return dataclasses.replace(features, **fields)


def check_task_output(term: LossTerm, task: Task) -> None:
    """Refuse a term that reads the models' outputs of a kind it cannot compare (class scores on an embedding
    task, or the reverse), before any training.

    Raises:
        DistillError: the term reads logits and the task's output is not one it names.
    """
    reads = "logits" in term.needs or "logits" in term.from_teacher
    if reads and task.output not in term.reads_outputs:
        raise DistillError(
            f"loss {term.name!r} compares {'/'.join(sorted(term.reads_outputs))} outputs, but task {task.name} "
            f"outputs {task.output}: choose losses made for {task.output} outputs (`distill plugins` lists the losses)"
        )
