"""Cross-entropy on the gold labels: the `alpha * CE(hard labels)` part of the classic KD objective."""

from __future__ import annotations

from collections.abc import Mapping

import torch.nn.functional as F
from torch import Tensor

from distill import UNLABELLED, Features, LossTerm


class HardLabelCE(LossTerm):
    """Cross-entropy between the student's logits and the gold labels (MSE for regression tasks).

    Rows without a gold label (label -100, as in a transfer set) are skipped; a batch of only those adds 0.
    """

    name = "hard_labels"
    needs = frozenset({"logits"})
    teacher_needs = frozenset()

    def forward(self, student: Features, teacher: Features | None, batch: Mapping[str, Tensor]) -> Tensor:
        labelled = batch["labels"] != UNLABELLED
        if not labelled.any():
            return student.logits.sum() * 0.0
        logits, labels = student.logits[labelled], batch["labels"][labelled]
        if logits.shape[-1] == 1:
            return F.mse_loss(logits.squeeze(-1), labels.float())
        return F.cross_entropy(logits, labels)
