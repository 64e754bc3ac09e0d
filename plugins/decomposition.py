"""Weight-matrix decomposition (Noach & Goldberg, 2020; Mao et al., 2020) and ALBERT's factorised embedding.

Each chosen Linear layer W (out × in) becomes two, in → r → out, initialised from W's truncated SVD
(W ≈ U_r S_r V_rᵀ, split as √S on both sides) and then fine-tuned under distillation, so the factors recover
what truncation lost. The word-embedding table (V × H) likewise becomes V × E followed by E × H. The export
holds the smaller layers themselves: its file shrinks, and at batch sizes where the matrix products dominate
the time falls with the rank.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import torch
from torch import Tensor, nn
from typing_extensions import override

from distill import (
    LAYER_TYPES,
    Compression,
    DistillError,
    ExportFormat,
    Stage,
    Student,
    hf_model,
    hookimpl,
    layer_linears,
    module_paths,
    replace_module,
)


class LowRankLinear(nn.Module):
    """in → rank → out: a Linear layer of rank `rank`, with the bias on the second factor."""

    def __init__(self, in_features: int, out_features: int, rank: int, bias: bool = True) -> None:
        super().__init__()
        self.first = nn.Linear(in_features, rank, bias=False)
        self.second = nn.Linear(rank, out_features, bias=bias)

    @property
    def in_features(self) -> int:
        return self.first.in_features

    @property
    def out_features(self) -> int:
        return self.second.out_features

    @property
    def rank(self) -> int:
        return self.first.out_features

    def forward(self, x: Tensor) -> Tensor:
        return self.second(self.first(x))

    @classmethod
    @torch.no_grad()
    def from_linear(cls, linear: nn.Linear, rank: int) -> LowRankLinear:
        """The best rank-`rank` approximation of `linear` (truncated SVD), bias kept."""
        factors = cls(linear.in_features, linear.out_features, rank, linear.bias is not None)
        u, s, vh = torch.linalg.svd(linear.weight.float(), full_matrices=False)
        root = s[:rank].sqrt()
        factors.first.weight.copy_(root[:, None] * vh[:rank])
        factors.second.weight.copy_(u[:, :rank] * root)
        if linear.bias is not None:
            factors.second.bias.copy_(linear.bias)
        return factors


class FactorisedEmbedding(nn.Module):
    """ALBERT's embedding: a V × E table, then an E × H projection."""

    def __init__(self, num_embeddings: int, rank: int, hidden: int, padding_idx: int | None = None) -> None:
        super().__init__()
        self.table = nn.Embedding(num_embeddings, rank, padding_idx=padding_idx)
        self.projection = nn.Linear(rank, hidden, bias=False)

    @property
    def num_embeddings(self) -> int:
        return self.table.num_embeddings

    @property
    def embedding_dim(self) -> int:
        return self.projection.out_features

    @property
    def padding_idx(self) -> int | None:
        return self.table.padding_idx

    def forward(self, ids: Tensor) -> Tensor:
        return self.projection(self.table(ids))

    @classmethod
    @torch.no_grad()
    def from_embedding(cls, embedding: nn.Embedding, rank: int) -> FactorisedEmbedding:
        factored = cls(embedding.num_embeddings, rank, embedding.embedding_dim, embedding.padding_idx)
        u, s, vh = torch.linalg.svd(embedding.weight.float(), full_matrices=False)
        factored.table.weight.copy_(u[:, :rank] * s[:rank])
        factored.projection.weight.copy_(vh[:rank].T)
        return factored


def _rank(weight: Tensor, keep: float, by: str) -> int:
    """The rank that keeps `keep` of the layer's parameters, or of its squared singular values ("energy")."""
    out_features, in_features = weight.shape
    if by == "parameters":
        return max(1, int(keep * out_features * in_features / (out_features + in_features)))
    energy = torch.linalg.svdvals(weight.detach().float()).square().cumsum(0)
    return int(torch.searchsorted(energy / energy[-1], torch.tensor(keep)).item()) + 1


@dataclass(eq=False)
class LowRankDecomposition(Compression):
    """Factorise the encoder's Linear layers by truncated SVD, and optionally the word embedding (ALBERT).

    Attributes:
        keep: per layer type ("attention" for q, k and v, "attention_output", "feed_forward_in",
            "feed_forward_out"), the share kept: of the layer's parameters (by: parameters) or of its squared
            singular values (by: energy). Types left out stay dense; a layer whose factors would not be smaller
            stays dense too.
        by: what `keep` measures. Energy ranks are read from the student's weights as built, so give such a
            student a deterministic start (init_from_teacher) if its checkpoints are to be reloaded.
        embedding_rank: E of a V × E table followed by an E × H projection; None leaves the embedding whole.
    """

    keep: dict[str, float] = field(default_factory=lambda: dict.fromkeys(LAYER_TYPES, 0.5))
    by: Literal["parameters", "energy"] = "parameters"
    embedding_rank: int | None = None

    stage: ClassVar[Stage] = Stage.STRUCTURE
    excludes: ClassVar[dict[str, str]] = {
        "HeadPruning": "head pruning slices dense projections; prune heads in a first run, then factorise its export",
        "NeuronPruning": "neuron pruning slices dense projections; prune in a first run, then factorise its export",
        "VocabularyPruning": "both rebuild the word embedding; prune the vocabulary in a first run",
        "WeightSqueezing": "squeezing maps the teacher's dense matrices into the student's dense layers",
    }

    def __post_init__(self) -> None:
        if unknown := sorted(set(self.keep) - set(LAYER_TYPES)):
            raise DistillError(f"LowRankDecomposition.keep: unknown layer types {unknown}; known: {list(LAYER_TYPES)}")
        if any(not 0.0 < share <= 1.0 for share in self.keep.values()):
            raise DistillError(f"LowRankDecomposition.keep shares must lie in (0, 1]; got {self.keep}")
        if self.embedding_rank is not None and self.embedding_rank < 1:
            raise DistillError("LowRankDecomposition.embedding_rank must be at least 1, or None")

    @override
    def configure_student(self, student: Student, teacher: Any, data: Any) -> None:
        model, architecture = hf_model(student, self.name)
        paths = module_paths(model)
        typed = [
            (kind, linear)
            for layer in architecture.layers(model)
            for kind, linears in layer_linears(architecture, layer).items()
            for linear in linears
        ]
        for kind, linear in typed:
            if kind in self.keep:
                self._factorise(model, paths[id(linear)], linear, self.keep[kind])
        table = architecture.embeddings(model)["word"]
        if self.embedding_rank is not None and isinstance(table, nn.Embedding):
            if self.embedding_rank >= table.embedding_dim:
                raise DistillError(
                    f"LowRankDecomposition.embedding_rank {self.embedding_rank} must be below the embedding width "
                    f"{table.embedding_dim}"
                )
            model.set_input_embeddings(FactorisedEmbedding.from_embedding(table, self.embedding_rank))

    def _factorise(self, model: nn.Module, path: str, linear: nn.Module, keep: float) -> None:
        if not isinstance(linear, nn.Linear):
            return  # already factorised (configure_student is idempotent)
        rank = _rank(linear.weight, keep, self.by)
        if rank * (linear.in_features + linear.out_features) < linear.in_features * linear.out_features:
            replace_module(model, path, LowRankLinear.from_linear(linear, rank))

    @override
    def structure(self, student: Student) -> dict[str, Any] | None:
        model = student.model
        ranks = {name: m.rank for name, m in model.named_modules() if isinstance(m, LowRankLinear)}
        table = model.get_input_embeddings()
        embedding = table.table.embedding_dim if isinstance(table, FactorisedEmbedding) else None
        return {"ranks": ranks, "embedding_rank": embedding} if ranks or embedding else None


class LowRankExport(ExportFormat):
    """Low-rank factors (and a factorised embedding) in a Hugging Face export."""

    structures: ClassVar[frozenset[str]] = frozenset({"LowRankDecomposition"})

    @classmethod
    @override
    def rebuild(cls, model: nn.Module, structure: str, settings: dict[str, Any]) -> None:
        for path, rank in settings["ranks"].items():
            dense = model.get_submodule(path)
            factors = LowRankLinear(dense.in_features, dense.out_features, rank, dense.bias is not None)
            replace_module(model, path, factors)
        if settings["embedding_rank"]:
            table = model.get_input_embeddings()
            model.set_input_embeddings(
                FactorisedEmbedding(
                    table.num_embeddings, settings["embedding_rank"], table.embedding_dim, table.padding_idx
                )
            )

    @classmethod
    @override
    def report_sections(cls, model: nn.Module) -> list[dict[str, Any]]:
        factored = [(name, m) for name, m in model.named_modules() if isinstance(m, LowRankLinear)]
        if not factored:
            return []
        data = {name: f"{m.in_features} → {m.rank} → {m.out_features}" for name, m in factored[:8]}
        if len(factored) > 8:
            data["…"] = f"{len(factored) - 8} more factorised layers"
        return [{"title": "Low-rank layers", "data": data}]


@hookimpl
def distill_register_compression() -> list[type]:
    return [LowRankDecomposition]


@hookimpl
def distill_register_export_formats() -> list[type]:
    return [LowRankExport]
