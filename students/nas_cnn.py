"""A CNN student found by differentiable architecture search (DARTS, Liu et al., 2019), as AdaBERT
(Chen et al., 2020) did for BERT compression: the search trains a supernet whose every edge mixes all
candidate operations, under a distillation loss plus beta times the expected cost of the architecture.

`distill fit` on NasCnnSearch trains the supernet and writes the derived genotype (the strongest operations);
NasCnnStudent builds that architecture and trains like any other student.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from distill import DistillError, Features, LossTerm, hookimpl
from distill.students._text import TextClassifier, TextStudentConfig, masked_max


def _conv(channels: int, kernel: int, dilation: int = 1) -> nn.Module:
    return nn.Sequential(
        nn.Conv1d(channels, channels, kernel, padding=dilation * (kernel // 2), dilation=dilation), nn.ReLU()
    )


class Zero(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return x * 0.0


# name -> (builder, parameters per channel², per position) ; every op maps (B, C, T) to (B, C, T)
OPERATIONS: dict[str, tuple[Callable[[int], nn.Module], int]] = {
    "conv3": (lambda c: _conv(c, 3), 3),
    "conv5": (lambda c: _conv(c, 5), 5),
    "conv7": (lambda c: _conv(c, 7), 7),
    "dil_conv3": (lambda c: _conv(c, 3, dilation=2), 3),
    "dil_conv5": (lambda c: _conv(c, 5, dilation=2), 5),
    "avg_pool3": (lambda c: nn.AvgPool1d(3, stride=1, padding=1, count_include_pad=False), 0),
    "max_pool3": (lambda c: nn.MaxPool1d(3, stride=1, padding=1), 0),
    "identity": (lambda c: nn.Identity(), 0),
    "zero": (lambda c: Zero(), 0),
}
NAMES = list(OPERATIONS)
GENOTYPE = "genotype.json"  # what a search run writes into its run folder


def edges_per_cell(nodes: int) -> int:
    """Node i (1..nodes) reads the cell input and every earlier node."""
    return nodes * (nodes + 1) // 2


class Cell(nn.Module):
    """Nodes h_i = Σ_j op_ij(h_j) over chosen edges j < i, h_0 the cell input; out = LayerNorm(h_0 + mean h_i).

    In the supernet every edge carries every operation, mixed by architecture weights.
    """

    def __init__(self, channels: int, edges: list[tuple[int, int, list[str]]]) -> None:
        super().__init__()
        self.edges = [(node, source) for node, source, _ in edges]
        self.ops = nn.ModuleList(
            nn.ModuleList(OPERATIONS[name][0](channels) for name in names) for _, _, names in edges
        )
        self.nodes = max(node for node, _ in self.edges)
        self.norm = nn.LayerNorm(channels)

    def forward(self, x: Tensor, mask: Tensor, weights: Tensor | None = None) -> Tensor:
        keep = mask.unsqueeze(1).to(x.dtype)  # (B, 1, T): padding stays zero between operations
        states = [x] + [torch.zeros_like(x) for _ in range(self.nodes)]
        for e, ((node, source), ops) in enumerate(zip(self.edges, self.ops, strict=True)):
            if weights is None:
                out = sum(op(states[source]) for op in ops)
            else:
                out = sum(w * op(states[source]) for w, op in zip(weights[e], ops, strict=True))
            states[node] = states[node] + out * keep
        mixed = x + sum(states[1:]) / self.nodes  # (B, C, T)
        return self.norm(mixed.transpose(1, 2)).transpose(1, 2) * keep


class _CellNetwork(TextClassifier):
    """embedding (B, T, E) -> stem (B, C, T) -> cells -> max over time (B, C) -> linear head.

    `sampled` holds the supernet's mixing weights during its forward pass (one architecture sample for both
    sentences of a pair); a derived network has one operation per edge and leaves it None.
    """

    provides: ClassVar[frozenset[str]] = frozenset({"logits", "pooled"})
    sampled: Tensor | None = None

    def __init__(self, channels: int, cell_edges: list[list[tuple[int, int, list[str]]]], **arguments: Any) -> None:
        """`arguments`: TextClassifier's, then the subclass's own (recorded in `architecture`)."""
        super().__init__(**arguments, channels=channels)
        embedding_dim, dropout, num_labels = (arguments[k] for k in ("embedding_dim", "dropout", "num_labels"))
        self.stem = nn.Linear(embedding_dim, channels)
        self.cells = nn.ModuleList(Cell(channels, edges) for edges in cell_edges)
        width = self.sentence_pair_width(channels, self.provides)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(width, num_labels))

    def encode(self, ids: Tensor, mask: Tensor) -> Tensor:
        x = self.stem(self.embedding(ids)).transpose(1, 2) * mask.unsqueeze(1)  # (B, C, T)
        for position, cell in enumerate(self.cells):
            x = cell(x, mask, None if self.sampled is None else self.sampled[position])
        return masked_max(x.transpose(1, 2), mask)  # (B, C)


class NasCnnSupernet(_CellNetwork):
    """The search space: `cells` cells of `nodes` nodes; every edge mixes all OPERATIONS."""

    family = "nas_cnn_search"
    exported = False  # the supernet mixes every operation; what it found is genotype.json
    provides = frozenset({"logits", "pooled", "expected_cost"})

    def __init__(
        self, channels: int, cells: int, nodes: int, temperature: float, gumbel: bool, cost: str, **common: Any
    ) -> None:
        """`common`: TextClassifier's arguments (vocabulary, labels, pair, word vectors, dropout)."""
        edges = [(node, source, NAMES) for node in range(1, nodes + 1) for source in range(node)]
        super().__init__(
            channels,
            [edges] * cells,
            **common,
            cells=cells,
            nodes=nodes,
            temperature=temperature,
            gumbel=gumbel,
            cost=cost,
        )
        self.alphas = nn.Parameter(1e-3 * torch.randn(cells, edges_per_cell(nodes), len(NAMES)))
        per_op = torch.tensor([float(OPERATIONS[name][1]) for name in NAMES])  # params or FLOPs per position ∝ k·C²
        self.register_buffer("op_cost", per_op / per_op.max(), persistent=False)
        self.temperature, self.gumbel = temperature, gumbel

    def op_weights(self) -> Tensor:
        """(cells, edges, ops) mixing weights: Gumbel-softmax samples while training, softmax otherwise."""
        if self.training and self.gumbel:
            return F.gumbel_softmax(self.alphas, tau=self.temperature, dim=-1)
        return F.softmax(self.alphas / self.temperature, dim=-1)

    def expected_cost(self) -> Tensor:
        """Expected cost of the sampled architecture as a fraction of the all-conv7 one (0..1)."""
        return (F.softmax(self.alphas, -1) * self.op_cost).sum(-1).mean()

    def forward(self, batch: Mapping[str, Tensor], needs: frozenset[str]) -> Features:
        self.sampled = self.op_weights()
        try:
            features = super().forward(batch, needs)
        finally:
            self.sampled = None
        features.extras["expected_cost"] = self.expected_cost()
        return features

    def no_weight_decay(self) -> set[str]:
        return {"alphas"}

    def run_artefacts(self) -> dict[str, dict[str, Any]]:
        """genotype.json, by DARTS's derivation: each node keeps its two strongest incoming edges, each edge its
        strongest operation other than zero."""
        weights = F.softmax(self.alphas, -1).detach()
        zero = NAMES.index("zero")
        nodes = self.architecture["nodes"]
        edges = [(node, source) for node in range(1, nodes + 1) for source in range(node)]
        cells = []
        for cell_weights in weights:
            chosen = []
            for node in range(1, nodes + 1):
                candidates = []
                for e, (n, source) in enumerate(edges):
                    if n == node:
                        strengths = cell_weights[e].clone()
                        strengths[zero] = -1.0
                        candidates.append((float(strengths.max()), source, NAMES[int(strengths.argmax())]))
                for _, source, op in sorted(candidates, reverse=True)[:2]:
                    chosen.append({"node": node, "from": source, "op": op})
            cells.append(chosen)
        genotype = {
            "channels": self.architecture["channels"],
            "cells": cells,
            "op_weights": [[[round(float(w), 4) for w in edge] for edge in cell] for cell in weights],
            "operations": NAMES,
        }
        return {GENOTYPE: genotype}


class NasCnnModel(_CellNetwork):
    """A derived architecture: each cell keeps only the edges and operations of its genotype."""

    family = "nas_cnn"

    def __init__(self, channels: int, cells: list[list[dict[str, Any]]], **common: Any) -> None:
        """`common`: TextClassifier's arguments (vocabulary, labels, pair, word vectors, dropout)."""
        cell_edges = [[(edge["node"], edge["from"], [edge["op"]]) for edge in cell] for cell in cells]
        super().__init__(channels, cell_edges, **common, cells=cells)


@dataclass
class NasCnnSearch(TextStudentConfig):
    """The search space: `distill fit` on it writes genotype.json, not an export (see TextStudentConfig for the
    word-vector settings).

    Attributes:
        channels: width of every cell.
        cells: cells stacked.
        nodes: intermediate nodes per cell.
        temperature: softmax temperature of the architecture weights.
        gumbel: sample the mixture with Gumbel-softmax while training (AdaBERT) instead of a plain softmax.
        cost: what the efficiency loss counts: "params" or "flops" (per position; for these operations both
            scale with kernel width times channels squared).
    """

    student_class: ClassVar[type] = NasCnnSupernet
    embedding_dim: int = 128
    channels: int = 128
    cells: int = 2
    nodes: int = 3
    temperature: float = 1.0
    gumbel: bool = True
    cost: Literal["params", "flops"] = "params"

    def family_arguments(self) -> dict[str, Any]:
        if min(self.channels, self.cells, self.nodes) < 1 or self.temperature <= 0:
            raise DistillError("NasCnnSearch needs channels, cells, nodes >= 1 and a positive temperature")
        return {
            "channels": self.channels,
            "cells": self.cells,
            "nodes": self.nodes,
            "temperature": self.temperature,
            "gumbel": self.gumbel,
            "cost": self.cost,
        }


@dataclass
class NasCnnStudent(TextStudentConfig):
    """The architecture a search found, trained from scratch (see TextStudentConfig for the word vectors).

    Attributes:
        genotype: the genotype.json a `distill fit` of NasCnnSearch wrote into its run folder.
    """

    student_class: ClassVar[type] = NasCnnModel
    genotype: str = "genotype.json"
    embedding_dim: int = 128

    def family_arguments(self) -> dict[str, Any]:
        path = Path(self.genotype)
        if not path.is_file():
            raise DistillError(
                f"genotype {self.genotype!r} does not exist: run `distill fit` on a NasCnnSearch config first "
                f"and point model.student.init_args.genotype at the genotype.json it writes"
            )
        genotype = json.loads(path.read_text())
        unknown = {edge["op"] for cell in genotype["cells"] for edge in cell} - set(OPERATIONS)
        if unknown:
            raise DistillError(f"genotype {self.genotype!r} uses unknown operations {sorted(unknown)}")
        return {"channels": genotype["channels"], "cells": genotype["cells"]}


class ArchitectureCost(LossTerm):
    """AdaBERT's efficiency loss: the supernet's expected cost (0..1), weighted by beta (the term's weight)."""

    name = "architecture_cost"
    needs = frozenset({"expected_cost"})
    teacher_needs = frozenset()

    def forward(self, student: Features, teacher: Features | None, batch: Mapping[str, Tensor]) -> Tensor:
        return student.extras["expected_cost"]


@hookimpl
def distill_register_students() -> list[type]:
    return [NasCnnSearch, NasCnnStudent]


@hookimpl
def distill_register_losses() -> list[type]:
    return [ArchitectureCost]
