"""The student contract: a family's YAML config builds a Student module that returns Features."""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from distill.features import Anatomy, Features

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from distill.task import Task
    from distill.teacher import Teacher

STUDENT_META = "distill_student.json"


class Student(nn.Module, ABC):
    """A trainable model that fills as many Features as its family can (see `anatomy.provides`).

    Families that are not Hugging Face models keep the keyword arguments that rebuild them, untrained,
    in `architecture`; the default `save` and `load` then need nothing else.
    """

    family: ClassVar[str]
    exported: ClassVar[bool] = True  # False: a means, not a model to serve (a search space); fit exports nothing
    anatomy: Anatomy
    architecture: dict[str, Any]
    tokenizer: PreTrainedTokenizerBase | None = None  # set only by students that bring their own vocabulary

    @abstractmethod
    def forward(self, batch: Mapping[str, Tensor], needs: frozenset[str]) -> Features:
        """Run on a padded batch and return the features named in `needs` (logits always)."""

    def save(self, directory: Path) -> None:
        """Write a reloadable model into the (new, empty) `directory`: weights and the architecture."""
        save_file({k: v.contiguous() for k, v in self.state_dict().items()}, str(Path(directory) / "model.safetensors"))
        meta = {"family": self.family, "architecture": self.architecture}
        (Path(directory) / STUDENT_META).write_text(json.dumps(meta, indent=2))

    @classmethod
    def load(cls, folder: Path) -> Student:
        """Rebuild the family's module from `folder` and load its weights."""
        meta = json.loads((Path(folder) / STUDENT_META).read_text())
        student = cls(**meta["architecture"])
        student.load_state_dict(load_file(str(Path(folder) / "model.safetensors")))
        return student

    def no_weight_decay(self) -> set[str]:
        """Names of parameters (relative to the student) that weight decay must leave alone."""
        return set()

    def run_artefacts(self) -> dict[str, dict[str, Any]]:
        """JSON files (name -> content) that `distill fit` writes into the run folder after training, beside or
        instead of the export: a search space writes the architecture it found."""
        return {}


class StudentClassifier(nn.Module):
    """Any student called like a Hugging Face classifier: `model(input_ids=..., attention_mask=...) -> logits`."""

    def __init__(self, student: Student) -> None:
        super().__init__()
        self.student = student

    def forward(self, input_ids: Tensor, attention_mask: Tensor, token_type_ids: Tensor | None = None) -> Tensor:
        batch = {"input_ids": input_ids, "attention_mask": attention_mask}
        if token_type_ids is not None:
            batch["token_type_ids"] = token_type_ids
        return self.student(batch, frozenset({"logits"})).logits


class StudentConfig(ABC):
    """The YAML-facing description of a student family (`model.student.class_path`)."""

    student_class: ClassVar[type[Student]]

    @abstractmethod
    def build(self, teacher: Teacher | None, task: Task) -> Student:
        """Make the student for `task`, initialised from `teacher` where the family supports it.

        Raises:
            DistillError: the configuration cannot be built, or does not fit the teacher.
        """
