"""An example third-party plugin: everything it adds arrives through distill's public API and one entry point."""

from __future__ import annotations

from collections.abc import Mapping

import torch.nn.functional as F
from torch import Tensor

from distill import Features, LossTerm, hookimpl


class CosineLogitsKD(LossTerm):
    """1 − cosine similarity between student and teacher logits."""

    name = "cosine_logits"
    needs = frozenset({"logits"})

    def forward(self, student: Features, teacher: Features | None, batch: Mapping[str, Tensor]) -> Tensor:
        return (1 - F.cosine_similarity(student.logits, teacher.logits, dim=-1)).mean()


@hookimpl
def distill_register_losses() -> list[type]:
    return [CosineLogitsKD]
