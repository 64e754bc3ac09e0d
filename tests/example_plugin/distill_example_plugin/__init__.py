"""An example third-party plugin: everything it adds arrives through distill's public API and one entry point."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from typing_extensions import override

from distill import Compression, ExportFormat, Features, LossTerm, Stage, Student, hookimpl


class CosineLogitsKD(LossTerm):
    """1 − cosine similarity between student and teacher logits."""

    name = "cosine_logits"
    needs = frozenset({"logits"})

    def forward(self, student: Features, teacher: Features | None, batch: Mapping[str, Tensor]) -> Tensor:
        return (1 - F.cosine_similarity(student.logits, teacher.logits, dim=-1)).mean()


@hookimpl
def distill_register_losses() -> list[type]:
    return [CosineLogitsKD]


class FreezeEmbeddings(Compression):
    """Keep the student's input embeddings as they start: a compression method in its simplest form."""

    stage = Stage.STRUCTURE

    @override
    def configure_student(self, student: Student, teacher: Any, data: Any) -> None:
        for module in student.modules():
            if isinstance(module, torch.nn.Embedding):
                module.weight.requires_grad_(False)


@hookimpl
def distill_register_compression() -> list[type]:
    return [FreezeEmbeddings]


class EmbeddingNorms(ExportFormat):
    """A report-card section on any loaded model with input embeddings: how long its word vectors are."""

    @classmethod
    @override
    def report_sections(cls, model: torch.nn.Module) -> list[dict[str, Any]]:
        table = getattr(model, "get_input_embeddings", lambda: None)()
        if not isinstance(table, torch.nn.Embedding):
            return []
        norms = table.weight.detach().norm(dim=-1)
        return [{"title": "Word-vector norms", "data": {"mean": round(float(norms.mean()), 4)}}]


@hookimpl
def distill_register_export_formats() -> list[type]:
    return [EmbeddingNorms]
