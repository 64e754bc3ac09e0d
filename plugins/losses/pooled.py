"""Distillation from the teacher's final [CLS] representation, for students of any family."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

import torch.nn.functional as F
from torch import Tensor, nn

from distill import Anatomy, Features, LossTerm, Ramp


class PooledKD(LossTerm):
    """d(W·p_S, h_T[CLS]) between the student's sentence vector p_S (what its classifier reads) and the
    teacher's final [CLS] hidden state; d is MSE or 1 − cosine. W is a learned projection when the widths
    differ, never exported. It is the one intermediate signal a BiLSTM or CNN student can take.
    """

    name = "pooled"
    needs = frozenset({"pooled"})

    def __init__(
        self, weight: float = 1.0, kind: Literal["mse", "cosine"] = "mse", weight_schedule: Ramp | None = None
    ) -> None:
        """Args:
        weight: weight of the term.
        kind: "mse" or "cosine".
        weight_schedule: multiplies `weight` over training progress.
        """
        super().__init__(weight, weight_schedule)
        self.kind = kind
        self.projection: nn.Module = nn.Identity()

    def setup(self, student: Anatomy, teacher: Anatomy | None) -> None:
        if student.hidden_size != teacher.hidden_size:
            self.projection = nn.Linear(student.hidden_size, teacher.hidden_size)

    def forward(self, student: Features, teacher: Features | None, batch: Mapping[str, Tensor]) -> Tensor:
        mapped, target = self.projection(student.pooled), teacher.pooled
        if self.kind == "mse":
            return F.mse_loss(mapped, target)
        return (1 - F.cosine_similarity(mapped, target, dim=-1)).mean()
