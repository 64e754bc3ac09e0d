"""Built-in tasks: text classification, regression and multi-label classification, with GLUE as presets."""

from __future__ import annotations

from distill import hookimpl
from distill.plugins.tasks.sentence import MultiLabelClassification, Regression, TextClassification

__all__ = ["MultiLabelClassification", "Regression", "TextClassification"]


@hookimpl
def distill_register_tasks() -> list[type]:
    return [TextClassification, Regression, MultiLabelClassification]
