"""Fine-tune any pretrained Hugging Face encoder as a whole; this is how a user makes a teacher."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from distill import StudentConfig, Task, Teacher, hookimpl, load_classifier, load_tokenizer
from distill.students.transformer import TransformerStudent


@dataclass
class PretrainedStudent(StudentConfig):
    """A pretrained checkpoint (local folder or hub id) with a fresh head for the task; brings its own tokenizer.

    Attributes:
        model: folder saved with save_pretrained, or a hub id such as "bert-base-uncased".
    """

    student_class: ClassVar[type] = TransformerStudent
    model: str = "bert-base-uncased"

    def build(self, teacher: Teacher | None, task: Task) -> TransformerStudent:
        # A checkpoint whose head was trained for other labels gets a fresh head of the task's width.
        config = {**task.head_config(), "ignore_mismatched_sizes": True}
        model = load_classifier(self.model, "student", head=task.head, **config)
        student = TransformerStudent(model, family="pretrained", task=task)
        student.tokenizer = load_tokenizer(self.model, "student")
        return student


@hookimpl
def distill_register_students() -> list[type]:
    return [PretrainedStudent]
