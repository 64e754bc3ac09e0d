"""The BiLSTM student family (Tang et al., 2019, "Distilling task-specific knowledge from BERT into simple
neural networks"): embeddings, a bidirectional LSTM, max-pooling over time, and an MLP head."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
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
    reverse_within,
    segments,
)
from distill.tasks import GlueTask
from distill.teacher import Teacher


class BiLSTMModel(Student):
    """embedding (B, T, E) -> BiLSTM (B, T, 2H) -> max over time (B, 2H) -> [u; v; |u-v|; u*v] for pairs -> MLP.

    Each layer runs a forward LSTM over the padded batch (trailing padding cannot reach earlier outputs) and a
    forward LSTM over every row reversed within its own length: the maths of a packed bidirectional LSTM,
    without data-dependent packing, so the model also exports to ONNX and quantises to int8 LSTMs.
    """

    family = "bilstm"

    def __init__(
        self,
        vocab_size: int,
        num_labels: int,
        pair: bool,
        embedding_dim: int,
        hidden_size: int,
        num_layers: int,
        mlp_size: int,
        dropout: float,
        source_dim: int | None = None,
    ) -> None:
        super().__init__()
        self.architecture = dict(
            vocab_size=vocab_size,
            num_labels=num_labels,
            pair=pair,
            embedding_dim=embedding_dim,
            hidden_size=hidden_size,
            num_layers=num_layers,
            mlp_size=mlp_size,
            dropout=dropout,
            source_dim=source_dim,
        )
        self.pair = pair
        self.embedding = WordEmbedding(vocab_size, embedding_dim, source_dim)
        widths = [embedding_dim] + [2 * hidden_size] * (num_layers - 1)
        self.forward_lstms = nn.ModuleList(nn.LSTM(w, hidden_size, batch_first=True) for w in widths)
        self.backward_lstms = nn.ModuleList(nn.LSTM(w, hidden_size, batch_first=True) for w in widths)
        self.between_layers = nn.Dropout(dropout)
        width = 2 * hidden_size * (4 if pair else 1)
        self.head = nn.Sequential(
            nn.Dropout(dropout),
            nn.Linear(width, mlp_size),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(mlp_size, num_labels),
        )
        self.anatomy = Anatomy(self.family, frozenset({"logits", "pooled"}), hidden_size=width, num_labels=num_labels)

    def encode(self, ids: Tensor, mask: Tensor) -> Tensor:
        """(B, T) token ids -> (B, 2H) sentence vector."""
        lengths = mask.sum(1)
        states = self.embedding(ids)  # (B, T, E)
        for depth, (ahead, behind) in enumerate(zip(self.forward_lstms, self.backward_lstms, strict=True)):
            if depth:
                states = self.between_layers(states)
            backward = reverse_within(behind(reverse_within(states, lengths))[0], lengths)
            states = torch.cat([ahead(states)[0], backward], dim=-1)  # (B, T, 2H)
        return masked_max(states, mask)  # (B, 2H)

    def forward(self, batch: Mapping[str, Tensor], needs: frozenset[str]) -> Features:
        pooled = combine([self.encode(ids, mask) for ids, mask in segments(batch, self.pair)])
        return Features(logits=self.head(pooled), attention_mask=batch["attention_mask"], pooled=pooled)


@dataclass
class BiLSTMStudent(StudentConfig):
    """A BiLSTM over the teacher's vocabulary.

    Attributes:
        embedding_dim: width of the word vectors fed to the LSTM.
        hidden_size: LSTM width per direction.
        num_layers: stacked LSTM layers.
        mlp_size: hidden width of the classifier MLP.
        dropout: dropout in the head (and between LSTM layers).
        embedding_init: "teacher" starts from the teacher's word embeddings; "random" does not.
        reduction: how teacher embeddings reach `embedding_dim` when narrower: "pca" (a smaller table) or
            "linear" (the teacher-width table and a trainable projection).
    """

    student_class: ClassVar[type] = BiLSTMModel
    embedding_dim: int = 300
    hidden_size: int = 300
    num_layers: int = 1
    mlp_size: int = 400
    dropout: float = 0.1
    embedding_init: EmbeddingInit = "teacher"
    reduction: Reduction = "pca"

    def build(self, teacher: Teacher | None, task: GlueTask) -> BiLSTMModel:
        if teacher is None:
            raise DistillError("BiLSTMStudent takes its vocabulary from the teacher: set model.teacher")
        if min(self.embedding_dim, self.hidden_size, self.num_layers, self.mlp_size) < 1:
            raise DistillError("BiLSTMStudent sizes (embedding_dim, hidden_size, num_layers, mlp_size) must be >= 1")
        model = BiLSTMModel(
            vocab_size=teacher.model.config.vocab_size,
            num_labels=task.num_labels,
            pair=task.is_pair,
            embedding_dim=self.embedding_dim,
            hidden_size=self.hidden_size,
            num_layers=self.num_layers,
            mlp_size=self.mlp_size,
            dropout=self.dropout,
            source_dim=embedding_source_dim(teacher, self.embedding_init, self.reduction, self.embedding_dim),
        )
        if self.embedding_init == "teacher":
            model.embedding.init_from(teacher)
        return model


@hookimpl
def distill_register_students() -> list[type]:
    return [BiLSTMStudent]
