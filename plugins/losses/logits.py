"""Distillation from output logits (Hinton et al., 2015)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from distill import Anatomy, DistillError, Features, LossTerm, Ramp


class LogitsKD(LossTerm):
    """Match the teacher's outputs, on the positions the task compares.

    kind="kl":      T² · KL(softmax(t/T) ‖ softmax(s/T))   (Hinton et al.; the T² keeps gradients comparable)
    kind="soft_ce": T² · −Σ softmax(t/T) · log softmax(s/T)  (same gradients as kl, offset by the teacher entropy)
    kind="bce":     T² · BCE(sigmoid(s/T), sigmoid(t/T)), averaged over labels: multi-label tasks, one sigmoid each
    kind="mse":     ‖s − t‖² on raw logits (Ba & Caruana 2014; Tang et al. 2019), the only choice for regression
    kind="auto":    kl for classification, bce for multi-label classification, mse for regression
    """

    name = "logits"
    needs = frozenset({"logits"})

    def __init__(
        self,
        weight: float = 1.0,
        temperature: float = 1.0,
        kind: Literal["auto", "kl", "soft_ce", "bce", "mse"] = "auto",
        temperature_schedule: Ramp | None = None,
        weight_schedule: Ramp | None = None,
    ) -> None:
        """Args:
        weight: weight of the term.
        temperature: softening temperature T (ignored by kind="mse").
        kind: "auto" (by the task's outputs), "kl", "soft_ce", "bce" or "mse".
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
        fits = {"kl": "softmax", "soft_ce": "softmax", "bce": "sigmoid"}
        output = self._output()
        if self.kind in fits and fits[self.kind] != output:
            raise DistillError(
                f"LogitsKD kind={self.kind!r} reads {fits[self.kind]} outputs, but this task's outputs are "
                f"{output}: use kind: {_KIND_FOR_OUTPUT[output]} (or auto)"
            )

    def _output(self) -> str:
        return self.task.output if self.task is not None else "softmax"

    def resolved_kind(self) -> str:
        """The kind in use: `kind`, or for "auto" the one the task's outputs call for."""
        return _KIND_FOR_OUTPUT[self._output()] if self.kind == "auto" else self.kind

    def current_temperature(self) -> float:
        return self.temperature_schedule(self.progress) if self.temperature_schedule else self.temperature

    def scheduled(self) -> dict[str, float]:
        values = super().scheduled()
        return {**values, "temperature": self.current_temperature()} if self.temperature_schedule else values

    def forward(self, student: Features, teacher: Features | None, batch: Mapping[str, Tensor]) -> Tensor:
        s, t = student.logits, teacher.logits.to(student.logits.dtype)
        if self.task is not None:
            s, t = self.task.compared(s, batch), self.task.compared(t, batch)
        kind = self.resolved_kind()
        if kind == "mse":
            return F.mse_loss(s, t)
        temperature = self.current_temperature()
        if kind == "bce":
            targets = torch.sigmoid(t / temperature)
            return F.binary_cross_entropy_with_logits(s / temperature, targets) * temperature**2
        log_p_student = F.log_softmax(s / temperature, dim=-1)
        p_teacher = F.softmax(t / temperature, dim=-1)
        if kind == "kl":
            loss = F.kl_div(log_p_student, p_teacher, reduction="batchmean")
        else:
            loss = -(p_teacher * log_p_student).sum(-1).mean()
        return loss * temperature**2


_KIND_FOR_OUTPUT = {"softmax": "kl", "sigmoid": "bce", "score": "mse"}
