"""Distillation from encoder outputs through a learned projection (TinyBERT, Jiao et al., 2020)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

import torch.nn.functional as F
from torch import Tensor, nn

from distill import Anatomy, Features, LayerMap, LossTerm, Ramp, resolve_layer_map


class HiddenStatesKD(LossTerm):
    """Match mapped hidden states, the embedding output included:  mean over pairs of d(W·h_S, h_T).

    d is the mean squared error (TinyBERT) or 1 − cosine similarity, over real (non-padding) tokens only.
    W is a learned linear projection per layer pair when the widths differ, the identity otherwise;
    it trains with the student and is never exported.
    """

    name = "hidden_states"
    needs = frozenset({"hidden_states"})

    def __init__(
        self,
        weight: float = 1.0,
        layers: LayerMap = "uniform",
        kind: Literal["mse", "cosine"] = "mse",
        weight_schedule: Ramp | None = None,
    ) -> None:
        """Args:
        weight: weight of the term.
        layers: "uniform" (embeddings and every k-th teacher layer), "last", or [student, teacher] pairs.
        kind: "mse" or "cosine".
        weight_schedule: multiplies `weight` over training progress.
        """
        super().__init__(weight, weight_schedule)
        self.layers = layers
        self.kind = kind
        self.pairs: list[tuple[int, int]] = []
        self.projections = nn.ModuleList()

    def setup(self, student: Anatomy, teacher: Anatomy | None) -> None:
        self.pairs = resolve_layer_map(self.layers, student.num_layers, teacher.num_layers, self.name, True)
        width_in, width_out = student.hidden_size, teacher.hidden_size
        project = width_in != width_out
        self.projections = nn.ModuleList(
            nn.Linear(width_in, width_out) if project else nn.Identity() for _ in self.pairs
        )

    def teacher_layers(self) -> frozenset[int]:
        return frozenset(t for _, t in self.pairs)

    def forward(self, student: Features, teacher: Features | None, batch: Mapping[str, Tensor]) -> Tensor:
        mask = student.attention_mask.unsqueeze(-1).float()  # (B, T, 1)
        total = 0.0
        for (s, t), projection in zip(self.pairs, self.projections, strict=True):
            mapped, target = projection(student.hidden_states[s]), teacher.hidden_states[t]  # (B, T, H_teacher)
            if self.kind == "mse":
                total = total + ((mapped - target).pow(2) * mask).sum() / (mask.sum() * target.shape[-1])
            else:
                distance = 1 - F.cosine_similarity(mapped, target, dim=-1).unsqueeze(-1)
                total = total + (distance * mask).sum() / mask.sum()
        return total / len(self.pairs)
