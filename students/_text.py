"""Helpers for sentence encoders that are not Transformers: one sentence or a pair, pooled to vectors."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch
from torch import Tensor, nn

from distill import (
    Anatomy,
    DistillError,
    Features,
    Student,
    StudentConfig,
    Task,
    Teacher,
    reduce_to,
    require_teacher_model,
)

EmbeddingInit = Literal["teacher", "random"]
Reduction = Literal["pca", "linear"]


def segments(batch: Mapping[str, Tensor], pair: bool) -> list[tuple[Tensor, Tensor]]:
    """(token ids, mask) of each sentence, left-aligned: the batch itself, or its two segments for a pair.

    Pairs arrive tokenised together ([CLS] a [SEP] b [SEP]) for the teacher; token_type_ids split them, so
    students share the teacher's data and cache.
    """
    ids, mask = batch["input_ids"], batch["attention_mask"].bool()
    if not pair:
        return [(ids, mask)]
    parts = []
    positions = torch.arange(ids.shape[1], device=ids.device)
    for segment in (0, 1):
        keep = mask & (batch["token_type_ids"] == segment)
        key = positions + (~keep).long() * ids.shape[1]  # kept tokens first, in order; unique keys sort stably
        order = key.sort(dim=1).indices
        parts.append((ids.gather(1, order), keep.gather(1, order)))
    return parts


def reverse_within(states: Tensor, lengths: Tensor) -> Tensor:
    """Each row of (B, T, C) reversed within its own length; padding stays at the end. Its own inverse."""
    positions = torch.arange(states.shape[1], device=states.device).unsqueeze(0)  # (1, T)
    source = torch.where(positions < lengths.unsqueeze(1), lengths.unsqueeze(1) - 1 - positions, positions)
    return states.gather(1, source.unsqueeze(-1).expand_as(states))


def combine(vectors: list[Tensor]) -> Tensor:
    """One sentence vector u, or [u; v; |u − v|; u ⊙ v] for a pair (Conneau et al., 2017)."""
    if len(vectors) == 1:
        return vectors[0]
    u, v = vectors
    return torch.cat([u, v, (u - v).abs(), u * v], dim=-1)


def masked_max(states: Tensor, mask: Tensor) -> Tensor:
    """Max over real positions of (B, T, C) states; an all-padding row pools to zeros."""
    pooled = states.masked_fill(~mask.unsqueeze(-1), torch.finfo(states.dtype).min).amax(1)
    return torch.where(mask.any(1, keepdim=True), pooled, torch.zeros_like(pooled))


class WordEmbedding(nn.Module):
    """Embeddings over the teacher's vocabulary; with `source_dim`, a table of that width and a trainable
    linear reduction to `dim` (the "linear" reduction)."""

    def __init__(self, vocab_size: int, dim: int, source_dim: int | None = None) -> None:
        super().__init__()
        self.table = nn.Embedding(vocab_size, source_dim or dim, padding_idx=0)
        self.reduce = nn.Linear(source_dim, dim, bias=False) if source_dim else nn.Identity()

    def forward(self, ids: Tensor) -> Tensor:
        return self.reduce(self.table(ids))

    @torch.no_grad()
    def init_from(self, teacher: Teacher) -> None:
        """Start from the teacher's word embeddings, PCA-reduced to the table's width when narrower."""
        words = teacher.model.get_input_embeddings().weight
        self.table.weight.copy_(reduce_to(words, self.table.embedding_dim))


def embedding_source_dim(teacher: Teacher | None, init: EmbeddingInit, reduction: Reduction, dim: int) -> int | None:
    """The table width for a "linear" reduction from the teacher's embeddings, else None (table of `dim`)."""
    if init == "teacher" and reduction == "linear" and teacher is not None:
        width = teacher.model.get_input_embeddings().weight.shape[1]
        return width if width != dim else None
    return None


class TextClassifier(Student):
    """The shape the non-Transformer families share: embed each sentence, encode it to one vector (the family's
    `encode`), join the two vectors of a pair, classify. `architecture` holds every constructor argument."""

    def __init__(
        self,
        vocab_size: int,
        num_labels: int,
        pair: bool,
        embedding_dim: int,
        dropout: float,
        source_dim: int | None,
        per_token: bool = False,
        **family: Any,
    ) -> None:
        super().__init__()
        self.architecture = dict(
            vocab_size=vocab_size,
            num_labels=num_labels,
            pair=pair,
            embedding_dim=embedding_dim,
            dropout=dropout,
            source_dim=source_dim,
            per_token=per_token,
            **family,
        )
        self.pair, self.per_token = pair, per_token
        self.embedding = WordEmbedding(vocab_size, embedding_dim, source_dim)

    serves_tokens: ClassVar[bool] = False  # a family that can label every token (its `token_states`)

    def sentence_pair_width(self, width: int, provides: frozenset[str] = frozenset({"logits", "pooled"})) -> int:
        """Record the anatomy for sentence vectors of `width`; returns the classifier's input width."""
        if self.per_token:  # a pair (a question and its context) is read as the one sequence it was tokenised as
            provides = frozenset({"logits"})
        joined = width * (4 if self.pair and not self.per_token else 1)
        self.anatomy = Anatomy(self.family, provides, hidden_size=joined, num_labels=self.architecture["num_labels"])
        return joined

    @abstractmethod
    def encode(self, ids: Tensor, mask: Tensor) -> Tensor:
        """(B, T) token ids and mask -> (B, width) sentence vectors."""

    def token_states(self, ids: Tensor, mask: Tensor) -> Tensor:
        """(B, T) token ids and mask -> (B, T, width) states, for families that set `serves_tokens`."""
        raise NotImplementedError(f"the {self.family} family labels sentences, not tokens")

    def forward(self, batch: Mapping[str, Tensor], needs: frozenset[str]) -> Features:
        if self.per_token:  # one label per word piece, from the states at each position
            states = self.token_states(batch["input_ids"], batch["attention_mask"].bool())
            return Features(logits=self.head(states), attention_mask=batch["attention_mask"])
        pooled = combine([self.encode(ids, mask) for ids, mask in segments(batch, self.pair)])
        return Features(logits=self.head(pooled), attention_mask=batch["attention_mask"], pooled=pooled)


@dataclass
class TextStudentConfig(StudentConfig):
    """Settings every non-Transformer family shares. Subclasses add their sizes and return them from
    `family_arguments`.

    Attributes:
        embedding_dim: width of the word vectors.
        dropout: dropout before the classifier (and between recurrent layers).
        embedding_init: "teacher" starts from the teacher's word embeddings; "random" does not.
        reduction: how teacher embeddings reach `embedding_dim` when narrower: "pca" (a smaller table) or
            "linear" (the teacher-width table and a trainable projection).
    """

    embedding_dim: int = 300
    dropout: float = 0.1
    embedding_init: EmbeddingInit = "teacher"
    reduction: Reduction = "pca"

    @abstractmethod
    def family_arguments(self) -> dict[str, Any]:
        """The family's own constructor arguments (checked here: raise DistillError when unbuildable)."""

    def build(self, teacher: Teacher | None, task: Task) -> TextClassifier:
        if task.per_token and not self.student_class.serves_tokens:
            raise DistillError(
                f"{type(self).__name__} predicts one label per example; task {task.name} needs one per token: "
                f"use BertStudent, PretrainedStudent or BiLSTMStudent"
            )
        require_teacher_model(teacher, f"{type(self).__name__} takes its vocabulary")
        if self.embedding_dim < 1:
            raise DistillError(f"{type(self).__name__}.embedding_dim must be at least 1")
        model = self.student_class(
            vocab_size=teacher.model.config.vocab_size,
            num_labels=task.num_labels,
            pair=task.is_pair,
            per_token=task.per_token,
            embedding_dim=self.embedding_dim,
            dropout=self.dropout,
            source_dim=embedding_source_dim(teacher, self.embedding_init, self.reduction, self.embedding_dim),
            **self.family_arguments(),
        )
        if self.embedding_init == "teacher":
            model.embedding.init_from(teacher)
        return model
