"""Built-in pruning: unstructured (magnitude, movement), structured (heads, neurons, layers), vocabulary."""

from __future__ import annotations

from typing import Any

from torch import nn

from distill import hookimpl
from distill.plugins._bert_layout import encoder_layers, head_size, heads_in
from distill.plugins.pruning.structured import HeadPruning, LayerPruning, NeuronPruning, slimmed_shapes
from distill.plugins.pruning.unstructured import MagnitudePruning, MovementPruning
from distill.plugins.pruning.vocabulary import VocabularyPruning

__all__ = ["HeadPruning", "LayerPruning", "MagnitudePruning", "MovementPruning", "NeuronPruning", "VocabularyPruning"]


@hookimpl
def distill_register_compression() -> list[type]:
    return [MagnitudePruning, MovementPruning, HeadPruning, NeuronPruning, LayerPruning, VocabularyPruning]


@hookimpl
def distill_report_sections(model: nn.Module) -> list[dict[str, Any]]:
    """Heads and feed-forward neurons left in each layer, for BERT-style models that were slimmed."""
    base = getattr(model, "base_model", None)
    if base is None or not hasattr(base, "encoder") or slimmed_shapes(model) is None:
        return []
    size = head_size(model)
    data = {
        f"layer {i} heads / neurons": f"{heads_in(layer, size)} / {layer.intermediate.dense.out_features}"
        for i, layer in enumerate(encoder_layers(model), start=1)
    }
    return [{"title": "Structure after pruning", "data": data}]
