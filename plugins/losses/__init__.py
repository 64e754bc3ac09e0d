"""Built-in loss hooks: one module per kind of loss, registered like any third-party loss."""

from __future__ import annotations

from distill import hookimpl
from distill.plugins.losses.attention import AttentionKD
from distill.plugins.losses.embedding import EmbeddingCosine, EmbeddingMSE, MarginMSE, SimilarityKD
from distill.plugins.losses.hard_labels import HardLabelCE
from distill.plugins.losses.hidden_states import HiddenStatesKD
from distill.plugins.losses.logits import LogitsKD
from distill.plugins.losses.pooled import PooledKD
from distill.plugins.losses.value_relation import ValueRelationKD

__all__ = [
    "AttentionKD",
    "EmbeddingCosine",
    "EmbeddingMSE",
    "HardLabelCE",
    "HiddenStatesKD",
    "LogitsKD",
    "MarginMSE",
    "PooledKD",
    "SimilarityKD",
    "ValueRelationKD",
]


@hookimpl
def distill_register_losses() -> list[type]:
    return [
        HardLabelCE,
        LogitsKD,
        HiddenStatesKD,
        AttentionKD,
        ValueRelationKD,
        PooledKD,
        EmbeddingMSE,
        EmbeddingCosine,
        MarginMSE,
        SimilarityKD,
    ]
