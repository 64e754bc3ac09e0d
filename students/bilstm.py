"""The BiLSTM student family (Tang et al., 2019, "Distilling task-specific knowledge from BERT into simple
neural networks"): embeddings, a bidirectional LSTM, max-pooling over time, and an MLP head. For a token task the
MLP labels the LSTM's state at every position instead."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from distill import DistillError, hookimpl
from distill.students._text import TextClassifier, TextStudentConfig, masked_max, reverse_within


class BiLSTMModel(TextClassifier):
    """embedding (B, T, E) -> BiLSTM (B, T, 2H) -> max over time (B, 2H) -> [u; v; |u-v|; u*v] for pairs -> MLP.

    Each layer runs a forward LSTM over the padded batch (trailing padding cannot reach earlier outputs) and a
    forward LSTM over every row reversed within its own length: the maths of a packed bidirectional LSTM,
    without data-dependent packing, so the model also exports to ONNX and quantises to int8 LSTMs.
    """

    family = "bilstm"

    def __init__(self, hidden_size: int, num_layers: int, mlp_size: int, **common: Any) -> None:
        """`common`: TextClassifier's arguments (vocabulary, labels, pair, word vectors, dropout)."""
        super().__init__(**common, hidden_size=hidden_size, num_layers=num_layers, mlp_size=mlp_size)
        embedding_dim, dropout, num_labels = (common[k] for k in ("embedding_dim", "dropout", "num_labels"))
        widths = [embedding_dim] + [2 * hidden_size] * (num_layers - 1)
        self.forward_lstms = nn.ModuleList(nn.LSTM(w, hidden_size, batch_first=True) for w in widths)
        self.backward_lstms = nn.ModuleList(nn.LSTM(w, hidden_size, batch_first=True) for w in widths)
        self.between_layers = nn.Dropout(dropout)
        self.head = nn.Sequential(
            nn.Dropout(dropout),
            nn.Linear(self.sentence_pair_width(2 * hidden_size), mlp_size),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(mlp_size, num_labels),
        )

    serves_tokens = True

    def encode(self, ids: Tensor, mask: Tensor) -> Tensor:
        return masked_max(self.token_states(ids, mask), mask)  # (B, 2H)

    def token_states(self, ids: Tensor, mask: Tensor) -> Tensor:
        lengths = mask.sum(1)
        states = self.embedding(ids)  # (B, T, E)
        for depth, (ahead, behind) in enumerate(zip(self.forward_lstms, self.backward_lstms, strict=True)):
            if depth:
                states = self.between_layers(states)
            backward = reverse_within(behind(reverse_within(states, lengths))[0], lengths)
            states = torch.cat([ahead(states)[0], backward], dim=-1)
        return states  # (B, T, 2H)


@dataclass
class BiLSTMStudent(TextStudentConfig):
    """A BiLSTM over the teacher's vocabulary (see TextStudentConfig for the word-vector settings).

    Attributes:
        hidden_size: LSTM width per direction.
        num_layers: stacked LSTM layers.
        mlp_size: hidden width of the classifier MLP.
    """

    student_class: ClassVar[type] = BiLSTMModel
    hidden_size: int = 300
    num_layers: int = 1
    mlp_size: int = 400

    def family_arguments(self) -> dict[str, Any]:
        if min(self.hidden_size, self.num_layers, self.mlp_size) < 1:
            raise DistillError("BiLSTMStudent sizes (hidden_size, num_layers, mlp_size) must be at least 1")
        return {"hidden_size": self.hidden_size, "num_layers": self.num_layers, "mlp_size": self.mlp_size}


@hookimpl
def distill_register_students() -> list[type]:
    return [BiLSTMStudent]
