"""Distillation from attention maps: TinyBERT's MSE on scores, MiniLM's KL on distributions."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from torch import Tensor

from distill import Anatomy, DistillError, Features, LayerMap, LossTerm, Ramp, resolve_layer_map
from distill.plugins.losses._masking import key_log_probs, masked_kl, masked_mse


class AttentionKD(LossTerm):
    """Match the attention maps of mapped layers, padding masked out.

    kind="mse": mean squared error between raw scores q·kᵀ/√d (TinyBERT, Jiao et al., 2020).
    kind="kl":  KL(teacher ‖ student) between attention distributions (MiniLM, Wang et al., 2020).

    heads says what to do when the head counts differ:
    "strict" refuses; "group" averages consecutive teacher heads into as many groups as the student has heads
    (the teacher's head count must be a multiple); "mean" compares head-averaged maps.
    """

    name = "attention"
    needs = frozenset({"attentions"})

    def __init__(
        self,
        weight: float = 1.0,
        layers: LayerMap = "uniform",
        kind: Literal["mse", "kl"] = "kl",
        heads: Literal["strict", "group", "mean"] = "strict",
        weight_schedule: Ramp | None = None,
    ) -> None:
        """Args:
        weight: weight of the term.
        layers: "uniform", "last", or [student, teacher] pairs of encoder layers (1-based).
        kind: "mse" on scores or "kl" on distributions.
        heads: "strict", "group" or "mean" (see the class docstring).
        weight_schedule: multiplies `weight` over training progress.
        """
        super().__init__(weight, weight_schedule)
        self.layers, self.kind, self.heads = layers, kind, heads
        self.pairs: list[tuple[int, int]] = []

    def setup(self, student: Anatomy, teacher: Anatomy | None) -> None:
        self.pairs = resolve_layer_map(self.layers, student.num_layers, teacher.num_layers, self.name, False)
        s_heads, t_heads = student.num_heads, teacher.num_heads
        if s_heads != t_heads and self.heads == "strict":
            raise DistillError(
                f"loss 'attention': the student has {s_heads} heads and the teacher {t_heads}; set heads: group "
                f"(average teacher heads into {s_heads} groups) or heads: mean (compare head-averaged maps)"
            )
        if self.heads == "group" and t_heads % s_heads:
            raise DistillError(
                f"loss 'attention': heads: group needs the teacher's {t_heads} heads to be a multiple of the "
                f"student's {s_heads}; use heads: mean instead"
            )

    def _aligned(self, student: Tensor, teacher: Tensor) -> bool:
        return self.heads != "mean" and student.shape[1] == teacher.shape[1]

    def _align(self, student: Tensor, teacher: Tensor) -> tuple[Tensor, Tensor]:
        """Bring (B, heads, T, T) maps to a common head count."""
        if self.heads == "mean":
            return student.mean(1, keepdim=True), teacher.mean(1, keepdim=True)
        if student.shape[1] != teacher.shape[1]:  # "group": (B, s_heads, group, T, T) averaged over the group
            b, _, t, _ = teacher.shape
            teacher = teacher.view(b, student.shape[1], -1, t, t).mean(2)
        return student, teacher

    def forward(self, student: Features, teacher: Features | None, batch: Mapping[str, Tensor]) -> Tensor:
        mask = student.attention_mask
        total = 0.0
        for s, t in self.pairs:
            s_scores, t_scores = student.attention_scores(s), teacher.attention_scores(t)  # (B, heads, T, T)
            if self.kind == "mse":
                total = total + masked_mse(*self._align(s_scores, t_scores), mask)
                continue
            s_log, t_log = key_log_probs(s_scores, mask), key_log_probs(t_scores, mask)
            if not self._aligned(s_log, t_log):  # average distributions, not log-probabilities
                s_probs, t_probs = self._align(s_log.exp(), t_log.exp())
                s_log, t_log = s_probs.clamp_min(1e-12).log(), t_probs.clamp_min(1e-12).log()
            total = total + masked_kl(s_log, t_log, mask)
        return total / len(self.pairs)
