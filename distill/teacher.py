"""The frozen teacher: any Hugging Face sequence classifier, run without gradients in eval mode."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from distill.features import FEATURE_NAMES, Anatomy, Features, TransformerTap
from distill.hf import load_classifier, load_tokenizer


class Teacher(nn.Module):
    """Wraps a fine-tuned classifier. It has no trainable parameters and stays in eval mode for good."""

    def __init__(self, source: str) -> None:
        super().__init__()
        self.source = source
        self.model = load_classifier(source, role="teacher").eval().requires_grad_(False)
        self.tokenizer = load_tokenizer(source, role="teacher")
        config = self.model.config
        self.tap = TransformerTap(self.model, head_size=config.hidden_size // config.num_attention_heads)
        self.anatomy = Anatomy(
            family="teacher",
            provides=FEATURE_NAMES,
            num_layers=config.num_hidden_layers,
            hidden_size=config.hidden_size,
            num_heads=config.num_attention_heads,
            num_labels=config.num_labels,
        )
        self.eval()

    @property
    def num_labels(self) -> int:
        return self.model.config.num_labels

    def train(self, mode: bool = True) -> Teacher:
        """Ignore Lightning's switch to train mode: dropout in the teacher would only add noise to its targets."""
        return super().train(False)

    @torch.no_grad()
    def forward(self, batch: Mapping[str, Tensor], needs: frozenset[str]) -> Features:
        return self.tap.run(self.model, batch, needs)
