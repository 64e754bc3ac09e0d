"""The CNN student family (Kim, 2014, "Convolutional neural networks for sentence classification"):
parallel 1-D convolutions of several widths over word vectors, max-pooled over time."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar

import torch
from torch import Tensor, nn

from distill import hookimpl
from distill.errors import DistillError
from distill.features import Anatomy, Features
from distill.student import Student, StudentConfig
from distill.students._text import (
    EmbeddingInit,
    Reduction,
    WordEmbedding,
    combine,
    embedding_source_dim,
    masked_max,
    segments,
)
from distill.tasks import GlueTask
from distill.teacher import Teacher


class ConvBranch(nn.Module):
    """`depth` same-width convolutions of one kernel size, each followed by ReLU: (B, E, T) -> (B, C, T)."""

    def __init__(self, in_channels: int, channels: int, kernel_size: int, depth: int) -> None:
        super().__init__()
        layers = []
        for level in range(depth):
            layers += [
                nn.Conv1d(in_channels if level == 0 else channels, channels, kernel_size, padding=kernel_size // 2),
                nn.ReLU(),
            ]
        self.layers = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        length = x.shape[-1]
        for layer in self.layers:
            x = layer(x)[..., :length]  # even kernels pad one position too many
        return x


class CNNModel(Student):
    """embedding (B, T, E) -> K parallel conv branches (B, C, T) -> max over time (B, K*C) -> linear head."""

    family = "cnn"

    def __init__(
        self,
        vocab_size: int,
        num_labels: int,
        pair: bool,
        embedding_dim: int,
        kernel_sizes: list[int],
        channels: int,
        depth: int,
        dropout: float,
        source_dim: int | None = None,
    ) -> None:
        super().__init__()
        self.architecture = dict(
            vocab_size=vocab_size,
            num_labels=num_labels,
            pair=pair,
            embedding_dim=embedding_dim,
            kernel_sizes=list(kernel_sizes),
            channels=channels,
            depth=depth,
            dropout=dropout,
            source_dim=source_dim,
        )
        self.pair = pair
        self.embedding = WordEmbedding(vocab_size, embedding_dim, source_dim)
        self.branches = nn.ModuleList(ConvBranch(embedding_dim, channels, k, depth) for k in kernel_sizes)
        width = channels * len(kernel_sizes) * (4 if pair else 1)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(width, num_labels))
        self.anatomy = Anatomy(self.family, frozenset({"logits", "pooled"}), hidden_size=width, num_labels=num_labels)

    def encode(self, ids: Tensor, mask: Tensor) -> Tensor:
        """(B, T) token ids -> (B, K*C) sentence vector; padded positions are zeroed before convolving."""
        words = (self.embedding(ids) * mask.unsqueeze(-1)).transpose(1, 2)  # (B, E, T)
        pooled = [masked_max(branch(words).transpose(1, 2), mask) for branch in self.branches]  # K x (B, C)
        return torch.cat(pooled, dim=-1)

    def forward(self, batch: Mapping[str, Tensor], needs: frozenset[str]) -> Features:
        pooled = combine([self.encode(ids, mask) for ids, mask in segments(batch, self.pair)])
        return Features(logits=self.head(pooled), attention_mask=batch["attention_mask"], pooled=pooled)


@dataclass
class CNNStudent(StudentConfig):
    """Kim's CNN over the teacher's vocabulary.

    Attributes:
        embedding_dim: width of the word vectors.
        kernel_sizes: one parallel branch per width.
        channels: filters per branch.
        depth: convolutions stacked in each branch (1 is Kim's original).
        dropout: dropout before the classifier.
        embedding_init: "teacher" starts from the teacher's word embeddings; "random" does not.
        reduction: "pca" or "linear" (see BiLSTMStudent).
    """

    student_class: ClassVar[type] = CNNModel
    embedding_dim: int = 300
    kernel_sizes: list[int] = field(default_factory=lambda: [3, 4, 5])
    channels: int = 100
    depth: int = 1
    dropout: float = 0.1
    embedding_init: EmbeddingInit = "teacher"
    reduction: Reduction = "pca"

    def build(self, teacher: Teacher | None, task: GlueTask) -> CNNModel:
        if teacher is None:
            raise DistillError("CNNStudent takes its vocabulary from the teacher: set model.teacher")
        if not self.kernel_sizes or min(self.kernel_sizes) < 1 or min(self.channels, self.depth) < 1:
            raise DistillError("CNNStudent needs at least one kernel size, and kernel sizes, channels, depth >= 1")
        model = CNNModel(
            vocab_size=teacher.model.config.vocab_size,
            num_labels=task.num_labels,
            pair=task.is_pair,
            embedding_dim=self.embedding_dim,
            kernel_sizes=self.kernel_sizes,
            channels=self.channels,
            depth=self.depth,
            dropout=self.dropout,
            source_dim=embedding_source_dim(teacher, self.embedding_init, self.reduction, self.embedding_dim),
        )
        if self.embedding_init == "teacher":
            model.embedding.init_from(teacher)
        return model


@hookimpl
def distill_register_students() -> list[type]:
    return [CNNStudent]
