"""Built-in pruning: unstructured (magnitude, movement), structured (heads, neurons, layers), vocabulary."""

from __future__ import annotations

from distill import hookimpl
from distill.plugins.pruning.structured import HeadPruning, LayerPruning, NeuronPruning, SlimmedExport
from distill.plugins.pruning.unstructured import MagnitudePruning, MovementPruning, SparseExport
from distill.plugins.pruning.vocabulary import VocabularyPruning

__all__ = ["HeadPruning", "LayerPruning", "MagnitudePruning", "MovementPruning", "NeuronPruning", "VocabularyPruning"]


@hookimpl
def distill_register_compression() -> list[type]:
    return [MagnitudePruning, MovementPruning, HeadPruning, NeuronPruning, LayerPruning, VocabularyPruning]


@hookimpl
def distill_register_export_formats() -> list[type]:
    return [SparseExport, SlimmedExport]
