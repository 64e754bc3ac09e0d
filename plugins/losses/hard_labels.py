"""The task's own loss on the gold labels: the `alpha * CE(hard labels)` part of the classic KD objective."""

from __future__ import annotations

from collections.abc import Mapping

from torch import Tensor

from distill import Features, LossTerm


class HardLabelCE(LossTerm):
    """The task's loss between the student's logits and the gold labels: cross-entropy for classification, MSE
    for regression, binary cross-entropy per label for multi-label classification.

    Rows without a gold label (label -100, as in a transfer set) are skipped; a batch of only those adds 0.
    """

    name = "hard_labels"
    needs = frozenset({"logits"})
    teacher_needs = frozenset()

    def forward(self, student: Features, teacher: Features | None, batch: Mapping[str, Tensor]) -> Tensor:
        return self.task.label_loss(student.logits, batch["labels"])
