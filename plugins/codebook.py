"""Compositional-code word embeddings (Shu & Nakayama, 2018; Prakash et al., 2020).

Each word piece is stored as M discrete codes, one per codebook of K vectors, and its embedding is rebuilt
from them: the sum of its M codewords ("additive", a residual quantisation of the table), or their
concatenation, each codebook covering a slice of the width ("product", product quantisation). With M = 8 and
K = 256 a word piece costs 8 bytes instead of 4·H, so the table shrinks by an order of magnitude.

The codes are chosen by k-means on the starting table (on the residuals, codebook after codebook, for the
additive kind) and stay fixed; the codebooks are then learned under distillation. `after_training` instead
quantises the trained table once at export (post-training, the product-quantisation variant by default).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch
from torch import Tensor, nn
from typing_extensions import override

from distill import Compression, DistillError, ExportFormat, Stage, Student, hf_model, hookimpl

Kind = Literal["additive", "product"]


class CodedEmbedding(nn.Module):
    """An embedding table rebuilt from codes (V × M, one byte each when K ≤ 256) and M codebooks of K vectors."""

    def __init__(
        self,
        num_embeddings: int,
        embedding_dim: int,
        codebooks: int,
        codewords: int,
        kind: Kind,
        padding_idx: int | None = None,
    ) -> None:
        super().__init__()
        if kind == "product" and embedding_dim % codebooks:
            raise DistillError(
                f"product codebooks split the width {embedding_dim} into {codebooks} equal slices: choose a "
                f"number of codebooks that divides it"
            )
        width = embedding_dim // codebooks if kind == "product" else embedding_dim
        self.kind, self.num_embeddings, self.embedding_dim, self.padding_idx = (
            kind,
            num_embeddings,
            embedding_dim,
            (padding_idx),
        )
        self.codewords = codewords
        code_type = torch.uint8 if codewords <= 256 else torch.int16
        self.register_buffer("codes", torch.zeros(num_embeddings, codebooks, dtype=code_type))
        self.register_buffer("offsets", torch.arange(codebooks) * codewords, persistent=False)
        self.codebooks = nn.Embedding(codebooks * codewords, width)  # an Embedding, so it counts as one

    def forward(self, ids: Tensor) -> Tensor:
        codes = (self.codes[ids].long() + self.offsets).reshape(-1, len(self.offsets))  # 2-D for int8 tables
        words = self.codebooks(codes).reshape(*ids.shape, *codes.shape[-1:], -1)  # (..., M, width)
        return words.sum(-2) if self.kind == "additive" else words.flatten(-2)

    @classmethod
    @torch.no_grad()
    def from_table(
        cls, table: nn.Embedding, codebooks: int, codewords: int, kind: Kind, iterations: int
    ) -> CodedEmbedding:
        """Codes and codebooks fitted to `table` by k-means (seeded, so the same table gives the same codes)."""
        coded = cls(table.num_embeddings, table.embedding_dim, codebooks, codewords, kind, table.padding_idx)
        rows = table.weight.detach().float()
        generator = torch.Generator().manual_seed(0)
        centres = []
        if kind == "product":
            for book, part in enumerate(rows.chunk(codebooks, dim=1)):
                centre, assigned = kmeans(part, codewords, iterations, generator)
                centres.append(centre)
                coded.codes[:, book] = assigned.to(coded.codes.dtype)
        else:
            residual = rows.clone()
            for book in range(codebooks):
                centre, assigned = kmeans(residual, codewords, iterations, generator)
                residual -= centre[assigned]
                centres.append(centre)
                coded.codes[:, book] = assigned.to(coded.codes.dtype)
        coded.codebooks.weight.copy_(torch.cat(centres))
        return coded


def _nearest(points: Tensor, centres: Tensor, chunk: int = 8192) -> Tensor:
    squared = centres.square().sum(1)
    return torch.cat([(squared - 2 * part @ centres.T).argmin(1) for part in points.split(chunk)])


def kmeans(points: Tensor, count: int, iterations: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """Lloyd's k-means from `count` distinct random points: (centres, each point's centre)."""
    if count > len(points):
        raise DistillError(f"EmbeddingCodebook needs codewords <= the {len(points)} rows of the table")
    centres = points[torch.randperm(len(points), generator=generator)[:count]].clone()
    for _ in range(iterations):
        assigned = _nearest(points, centres)
        sums = torch.zeros_like(centres).index_add_(0, assigned, points)
        counts = torch.bincount(assigned, minlength=count)
        used = counts > 0  # an empty cluster keeps its centre
        centres[used] = sums[used] / counts[used, None]
    return centres, _nearest(points, centres)


@dataclass(eq=False)
class EmbeddingCodebook(Compression):
    """Store the word embedding as compositional codes.

    Attributes:
        codebooks: M, the codes per word piece.
        codewords: K, the vectors per codebook (up to 256 keeps each code in one byte).
        kind: "additive" (a word is the sum of its M codewords) or "product" (their concatenation).
        after_training: quantise the trained table at export instead of learning the codebooks in training.
        iterations: k-means iterations per codebook.
    """

    codebooks: int = 8
    codewords: int = 256
    kind: Kind = "additive"
    after_training: bool = False
    iterations: int = 15

    stage: ClassVar[Stage] = Stage.STRUCTURE
    excludes: ClassVar[dict[str, str]] = {
        "VocabularyPruning": "both rebuild the word embedding; prune the vocabulary in a first run",
    }

    def __post_init__(self) -> None:
        if self.codebooks < 1 or not 2 <= self.codewords <= 32768 or self.iterations < 1:
            raise DistillError("EmbeddingCodebook needs codebooks >= 1, 2 <= codewords <= 32768 and iterations >= 1")

    def _code(self, student: Student) -> None:
        model, architecture = hf_model(student, self.name)
        table = architecture.embeddings(model)["word"]
        if isinstance(table, nn.Embedding):  # not coded yet (configure_student is idempotent)
            model.set_input_embeddings(
                CodedEmbedding.from_table(table, self.codebooks, self.codewords, self.kind, self.iterations)
            )

    @override
    def configure_student(self, student: Student, teacher: Any, data: Any) -> None:
        if not self.after_training:
            self._code(student)

    @override
    def finalize(self, student: Student) -> None:
        self._code(student)

    @override
    def structure(self, student: Student) -> dict[str, Any] | None:
        table = student.model.get_input_embeddings()
        return (
            {"codebooks": self.codebooks, "codewords": self.codewords, "kind": self.kind}
            if isinstance(table, CodedEmbedding)
            else None
        )


class CodedEmbeddingExport(ExportFormat):
    """A word embedding stored as codes and codebooks in a Hugging Face export."""

    structures: ClassVar[frozenset[str]] = frozenset({"EmbeddingCodebook"})

    @classmethod
    @override
    def rebuild(cls, model: nn.Module, structure: str, settings: dict[str, Any]) -> None:
        table = model.get_input_embeddings()
        model.set_input_embeddings(
            CodedEmbedding(
                table.num_embeddings,
                table.embedding_dim,
                settings["codebooks"],
                settings["codewords"],
                settings["kind"],
                table.padding_idx,
            )
        )

    @classmethod
    @override
    def report_sections(cls, model: nn.Module) -> list[dict[str, Any]]:
        table = getattr(model, "get_input_embeddings", lambda: None)()
        if not isinstance(table, CodedEmbedding):
            return []
        dense = table.num_embeddings * table.embedding_dim * 4
        books = table.codebooks.weight
        books = books() if callable(books) else books  # an int8 export's codebooks are a quantized table
        coded = table.codes.numel() * table.codes.element_size() + books.numel() * books.element_size()
        data = {
            "codes per word piece": table.codes.shape[1],
            "codewords per codebook": table.codewords,
            "kind": table.kind,
            "table bytes (float32 → coded)": f"{dense} → {coded} ({dense / coded:.1f}x smaller)",
        }
        return [{"title": "Word-embedding codebook", "data": data}]


@hookimpl
def distill_register_compression() -> list[type]:
    return [EmbeddingCodebook]


@hookimpl
def distill_register_export_formats() -> list[type]:
    return [CodedEmbeddingExport]
