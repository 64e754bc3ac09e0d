"""Built-in tasks: text classification, regression, multi-label, token classification, extractive QA and sentence
embeddings; GLUE and SQuAD as presets."""

from __future__ import annotations

from distill import hookimpl
from distill.plugins.tasks.embedding import SentenceEmbedding, SentenceTransformersFolder
from distill.plugins.tasks.extractive_qa import ExtractiveQA
from distill.plugins.tasks.readers import ConllReader, SquadReader
from distill.plugins.tasks.sentence import MultiLabelClassification, Regression, TextClassification
from distill.plugins.tasks.tokens import TokenClassification

__all__ = [
    "ConllReader",
    "ExtractiveQA",
    "MultiLabelClassification",
    "Regression",
    "SentenceEmbedding",
    "SquadReader",
    "TextClassification",
    "TokenClassification",
]


@hookimpl
def distill_register_tasks() -> list[type]:
    return [
        TextClassification,
        Regression,
        MultiLabelClassification,
        TokenClassification,
        ExtractiveQA,
        SentenceEmbedding,
    ]


@hookimpl
def distill_register_readers() -> list[type]:
    return [ConllReader, SquadReader]


@hookimpl
def distill_register_export_formats() -> list[type]:
    return [SentenceTransformersFolder]
