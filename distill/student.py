"""The student contract: a family's YAML config builds a Student module that returns Features."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from torch import Tensor, nn

from distill.features import Anatomy, Features

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from distill.teacher import Teacher


class Student(nn.Module, ABC):
    """A trainable model that fills as many Features as its family can (see `anatomy.provides`)."""

    anatomy: Anatomy
    tokenizer: PreTrainedTokenizerBase | None = None  # set only by students that bring their own vocabulary

    @abstractmethod
    def forward(self, batch: Mapping[str, Tensor], needs: frozenset[str]) -> Features:
        """Run on a padded batch and return the features named in `needs` (logits always)."""

    @abstractmethod
    def save(self, directory: Path) -> None:
        """Write a self-contained, reloadable model into the (new, empty) `directory`."""


class StudentConfig(ABC):
    """The YAML-facing description of a student family (`model.student.class_path`)."""

    family: ClassVar[str]

    @abstractmethod
    def build(self, teacher: Teacher | None, num_labels: int) -> Student:
        """Make the student, initialised from `teacher` where the family supports it.

        Raises:
            DistillError: the configuration cannot be built, or does not fit the teacher.
        """
