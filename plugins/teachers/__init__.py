"""Built-in teacher kinds beyond a Hugging Face model, registered like any third-party teacher."""

from __future__ import annotations

from distill import hookimpl
from distill.plugins.teachers.causal_lm import CausalLMTeacher
from distill.plugins.teachers.soft_labels import SoftLabels

__all__ = ["CausalLMTeacher", "SoftLabels"]


@hookimpl
def distill_register_teachers() -> list[type]:
    return [SoftLabels, CausalLMTeacher]
