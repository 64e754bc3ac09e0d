"""Distillation from output logits (Hinton et al., 2015)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

import torch.nn.functional as F
from torch import Tensor

from distill import Anatomy, DistillError, Features, LossTerm, Ramp


class LogitsKD(LossTerm):
    """Match the teacher's output distribution.

    kind="kl":      T² · KL(softmax(t/T) ‖ softmax(s/T))   (Hinton et al.; the T² keeps gradients comparable)
    kind="soft_ce": T² · −Σ softmax(t/T) · log softmax(s/T)  (same gradients as kl, offset by the teacher entropy)
    kind="mse":     ‖s − t‖² on raw logits (Ba & Caruana 2014; Tang et al. 2019), the only choice for regression
    """

    name = "logits"
    needs = frozenset({"logits"})

    def __init__(
        self,
        weight: float = 1.0,
        temperature: float = 1.0,
        kind: Literal["kl", "soft_ce", "mse"] = "kl",
        temperature_schedule: Ramp | None = None,
        weight_schedule: Ramp | None = None,
    ) -> None:
        """Args:
        weight: weight of the term.
        temperature: softening temperature T (ignored by kind="mse").
        kind: "kl", "soft_ce" or "mse".
        temperature_schedule: T over training progress; overrides `temperature` when given.
        weight_schedule: multiplies `weight` over training progress.
        """
        super().__init__(weight, weight_schedule)
        if temperature <= 0:
            raise DistillError(f"LogitsKD temperature must be positive, got {temperature}")
        self.temperature = temperature
        self.kind = kind
        self.temperature_schedule = temperature_schedule

    def setup(self, student: Anatomy, teacher: Anatomy | None) -> None:
        if student.num_labels == 1 and self.kind != "mse":
            raise DistillError(f"LogitsKD kind={self.kind!r} needs class probabilities; use kind: mse for regression")

    def current_temperature(self) -> float:
        return self.temperature_schedule(self.progress) if self.temperature_schedule else self.temperature

    def scheduled(self) -> dict[str, float]:
        values = super().scheduled()
        return {**values, "temperature": self.current_temperature()} if self.temperature_schedule else values

    def forward(self, student: Features, teacher: Features | None, batch: Mapping[str, Tensor]) -> Tensor:
        s, t = student.logits, teacher.logits.to(student.logits.dtype)
        if self.kind == "mse":
            return F.mse_loss(s, t)
        temperature = self.current_temperature()
        log_p_student = F.log_softmax(s / temperature, dim=-1)
        p_teacher = F.softmax(t / temperature, dim=-1)
        if self.kind == "kl":
            loss = F.kl_div(log_p_student, p_teacher, reduction="batchmean")
        else:
            loss = -(p_teacher * log_p_student).sum(-1).mean()
        return loss * temperature**2
