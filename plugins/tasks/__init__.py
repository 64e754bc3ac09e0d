"""Built-in tasks: text classification, regression, multi-label and token classification; GLUE as presets."""

from __future__ import annotations

from distill import hookimpl
from distill.plugins.tasks.sentence import MultiLabelClassification, Regression, TextClassification
from distill.plugins.tasks.tokens import TokenClassification

__all__ = ["MultiLabelClassification", "Regression", "TextClassification", "TokenClassification"]


@hookimpl
def distill_register_tasks() -> list[type]:
    return [TextClassification, Regression, MultiLabelClassification, TokenClassification]
