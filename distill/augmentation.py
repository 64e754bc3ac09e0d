"""Growing the training split: the plugin kind named under `data.augmentation`.

An augmentation adds rows to the tokenised training split that carry no gold label (UNLABELLED, which label
losses skip), so only the teacher teaches them, through the distillation losses. It works on the teacher's word
pieces, after tokenisation; the data module caches its result under a fingerprint of the split, the settings and
whatever else the augmentation reads from the teacher.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING

from distill.errors import DistillError

if TYPE_CHECKING:
    import datasets
    from transformers import PreTrainedTokenizerBase

    from distill.task import Task
    from distill.teacher import Teacher

UNLABELLED = -100  # the label of a row (or position) no gold label covers: label losses and metrics skip it


class Augmentation(ABC):
    """Base of every training-set augmentation. Subclasses are dataclasses of their settings."""

    def check(self, task: Task, own_tokenizer: bool) -> None:
        """Refuse, before any data is read, a task or student this augmentation cannot serve.

        Args:
            own_tokenizer: the student reads a vocabulary of its own, not the teacher's word pieces.

        Raises:
            DistillError: naming the augmentation, what it cannot serve and what to do instead.
        """
        if own_tokenizer:
            raise DistillError(
                f"data.augmentation {type(self).__name__} rewrites the teacher's word pieces, which a student with "
                f"its own tokenizer does not read: remove data.augmentation, or build the student on the teacher's "
                f"tokenizer"
            )

    def fingerprint(self, teacher: Teacher | None) -> str:
        """What, beyond its settings and the split, the result depends on (a digest of the teacher's embeddings);
        part of the cache key."""
        return ""

    @abstractmethod
    def grow(
        self, train: datasets.Dataset, tokenizer: PreTrainedTokenizerBase, teacher: Teacher | None, task: Task
    ) -> datasets.Dataset:
        """The training split followed by the new rows: the same columns, labels UNLABELLED, `idx` continuing
        from the split's last.

        Raises:
            DistillError: it needs a teacher and was given none.
        """
