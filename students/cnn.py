"""The CNN student family (Kim, 2014, "Convolutional neural networks for sentence classification"):
parallel 1-D convolutions of several widths over word vectors, max-pooled over time."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from distill import DistillError, hookimpl
from distill.students._text import TextClassifier, TextStudentConfig, masked_max


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


class CNNModel(TextClassifier):
    """embedding (B, T, E) -> K parallel conv branches (B, C, T) -> max over time (B, K*C) -> linear head."""

    family = "cnn"

    def __init__(self, kernel_sizes: list[int], channels: int, depth: int, **common: Any) -> None:
        """`common`: TextClassifier's arguments (vocabulary, labels, pair, word vectors, dropout)."""
        super().__init__(**common, kernel_sizes=list(kernel_sizes), channels=channels, depth=depth)
        embedding_dim, dropout, num_labels = (common[k] for k in ("embedding_dim", "dropout", "num_labels"))
        self.branches = nn.ModuleList(ConvBranch(embedding_dim, channels, k, depth) for k in kernel_sizes)
        width = self.sentence_pair_width(channels * len(kernel_sizes))
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(width, num_labels))

    def encode(self, ids: Tensor, mask: Tensor) -> Tensor:
        """Padded positions are zeroed before convolving, so padding cannot leak into real positions."""
        words = (self.embedding(ids) * mask.unsqueeze(-1)).transpose(1, 2)  # (B, E, T)
        pooled = [masked_max(branch(words).transpose(1, 2), mask) for branch in self.branches]  # K x (B, C)
        return torch.cat(pooled, dim=-1)


@dataclass
class CNNStudent(TextStudentConfig):
    """Kim's CNN over the teacher's vocabulary (see TextStudentConfig for the word-vector settings).

    Attributes:
        kernel_sizes: one parallel branch per width.
        channels: filters per branch.
        depth: convolutions stacked in each branch (1 is Kim's original).
    """

    student_class: ClassVar[type] = CNNModel
    kernel_sizes: list[int] = field(default_factory=lambda: [3, 4, 5])
    channels: int = 100
    depth: int = 1

    def family_arguments(self) -> dict[str, Any]:
        if not self.kernel_sizes or min(self.kernel_sizes) < 1 or min(self.channels, self.depth) < 1:
            raise DistillError("CNNStudent needs at least one kernel size, and kernel sizes, channels, depth >= 1")
        return {"kernel_sizes": self.kernel_sizes, "channels": self.channels, "depth": self.depth}


@hookimpl
def distill_register_students() -> list[type]:
    return [CNNStudent]
