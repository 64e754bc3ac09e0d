"""Losses for embedding tasks, which compare one vector per text (a task whose output is "embedding").

MSE and cosine compare each text's vectors through a learned projection when the widths differ (trained with the
student, never exported); the in-batch similarity KD compares each side's own cosine matrix, and margin-MSE each
side's own (query, positive, negative) margins, so widths never meet. `dims` applies a term at several leading
widths of the student's vector (Matryoshka training), averaged.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from distill import GROUP, Anatomy, DistillError, Features, LossTerm, Ramp


class _EmbeddingTerm(LossTerm):
    """Reads the student's and the teacher's vectors (the task's compared outputs) at each of `dims`."""

    reads_outputs = frozenset({"embedding"})
    projects = True  # whether student vectors narrower or wider than the teacher's go through a projection

    def __init__(self, weight: float = 1.0, dims: list[int] | None = None, weight_schedule: Ramp | None = None) -> None:
        super().__init__(weight, weight_schedule)
        self.dims = dims
        self.projections = nn.ModuleDict()

    def setup(self, student: Anatomy, teacher: Anatomy | None) -> None:
        widths = self.dims or [student.num_labels]
        if any(not 0 < d <= student.num_labels for d in widths):
            raise DistillError(
                f"loss {self.name!r}: dims {widths} must lie in 1..{student.num_labels}, the student's width"
            )
        self.widths = widths
        if self.projects:
            self.projections = nn.ModuleDict(
                {str(d): nn.Linear(d, teacher.num_labels) for d in widths if d != teacher.num_labels}
            )

    def compared(self, vectors: Tensor, batch: Mapping[str, Tensor]) -> Tensor:
        """The vectors as the task compares them (unit length where the teacher's are); as given without a task."""
        return vectors if self.task is None else self.task.compared(vectors, batch)

    def forward(self, student: Features, teacher: Features | None, batch: Mapping[str, Tensor]) -> Tensor:
        theirs = self.compared(teacher.logits, batch)
        total = 0.0
        for width in self.widths:
            mine = self.compared(student.logits[:, :width], batch)
            if str(width) in self.projections:
                mine = self.projections[str(width)](mine)
            total = total + self.distance(mine, theirs)
        return total / len(self.widths)

    def distance(self, student: Tensor, teacher: Tensor) -> Tensor:
        raise NotImplementedError


class EmbeddingMSE(_EmbeddingTerm):
    """Mean squared error between each text's student and teacher vectors (sentence-transformers' distillation
    loss), through a learned projection when the widths differ.

    Args:
        weight: the term's weight.
        dims: leading widths of the student's vector to apply the loss at (Matryoshka); None: the whole vector.
        weight_schedule: multiplies `weight` over training progress.
    """

    name = "embedding_mse"

    def distance(self, student: Tensor, teacher: Tensor) -> Tensor:
        return F.mse_loss(student, teacher)


class EmbeddingCosine(_EmbeddingTerm):
    """1 − cosine similarity of each text's student and teacher vectors, through a learned projection when the
    widths differ. Same arguments as EmbeddingMSE."""

    name = "embedding_cosine"

    def distance(self, student: Tensor, teacher: Tensor) -> Tensor:
        return (1 - F.cosine_similarity(student, teacher, dim=-1)).mean()


class SimilarityKD(_EmbeddingTerm):
    """In-batch similarity KD: each row of the student's batch cosine matrix against the teacher's, as
    T²·KL(teacher ‖ student) of their softmax at temperature T, each text's similarity to itself left out.
    It compares geometry, not coordinates, so it needs no projection.

    Args:
        weight: the term's weight.
        temperature: the softmax temperature on cosine similarities (in [-1, 1]), so small: 0.05 by default.
        dims: leading widths of the student's vector to apply the loss at (Matryoshka); None: the whole vector.
        weight_schedule: multiplies `weight` over training progress.
    """

    name = "similarity_kd"
    projects = False

    def __init__(
        self,
        weight: float = 1.0,
        temperature: float = 0.05,
        dims: list[int] | None = None,
        weight_schedule: Ramp | None = None,
    ) -> None:
        super().__init__(weight, dims, weight_schedule)
        if temperature <= 0:
            raise DistillError(f"SimilarityKD.temperature {temperature} must be above 0")
        self.temperature = temperature

    def distance(self, student: Tensor, teacher: Tensor) -> Tensor:
        if len(student) < 2:
            return student.sum() * 0.0
        t = self.temperature
        itself = torch.eye(len(student), dtype=torch.bool, device=student.device)
        ours = similarities(student).masked_fill(itself, float("-inf")) / t
        theirs = similarities(teacher).masked_fill(itself, float("-inf")) / t
        target = F.softmax(theirs, -1)
        kl = target * (F.log_softmax(theirs, -1) - F.log_softmax(ours, -1))
        return kl.masked_fill(itself, 0.0).sum(-1).mean() * t * t


class MarginMSE(_EmbeddingTerm):
    """Margin-MSE (Hofstätter et al., 2020) on (query, positive, negative) training rows: the squared error between
    the student's margin cos(q, p) − cos(q, n) and the teacher's, over every triplet whole in the batch. It needs
    the task's `group_columns` to name the three columns; a triplet split across two batches is skipped.

    Args:
        weight: the term's weight.
        dims: leading widths of the student's vector to apply the loss at (Matryoshka); None: the whole vector.
        weight_schedule: multiplies `weight` over training progress.
    """

    name = "margin_mse"
    projects = False

    def setup(self, student: Anatomy, teacher: Anatomy | None) -> None:
        columns = getattr(self.task, "group_columns", None) if self.task is not None else None
        if columns is None or len(columns) != 3:
            raise DistillError(
                f"loss {self.name!r} reads (query, positive, negative) training rows, but the task's group_columns "
                f"are {columns}: set data.task.init_args.group_columns to the three columns that hold them"
            )
        super().setup(student, teacher)

    def forward(self, student: Features, teacher: Features | None, batch: Mapping[str, Tensor]) -> Tensor:
        triplets = whole_groups(batch[GROUP], size=3)
        if not len(triplets):
            return student.logits.sum() * 0.0
        theirs = margins(self.compared(teacher.logits, batch), triplets)
        total = 0.0
        for width in self.widths:
            mine = margins(self.compared(student.logits[:, :width], batch), triplets)
            total = total + F.mse_loss(mine, theirs)
        return total / len(self.widths)


def whole_groups(groups: Tensor, size: int) -> Tensor:
    """(K, size) batch positions of each group that has all `size` of its rows in the batch, in their order."""
    ids, counts = groups.unique_consecutive(return_counts=True)
    starts = counts.cumsum(0) - counts
    keep = (ids >= 0) & (counts == size)
    return starts[keep].unsqueeze(1) + torch.arange(size, device=groups.device)


def margins(vectors: Tensor, triplets: Tensor) -> Tensor:
    """cos(query, positive) − cos(query, negative) for each (query, positive, negative) row of batch positions."""
    unit = F.normalize(vectors, dim=-1)
    query, positive, negative = unit[triplets].unbind(1)
    return (query * positive).sum(-1) - (query * negative).sum(-1)


def similarities(vectors: Tensor) -> Tensor:
    """(B, B) cosine similarities of a batch's vectors."""
    unit = F.normalize(vectors, dim=-1)
    return unit @ unit.T
