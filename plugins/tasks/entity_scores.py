"""The token task's metric, in a module of its own so that torchmetrics is imported only when a run scores."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torchmetrics import Metric

from distill import UNLABELLED
from distill.plugins.tasks.tokens import entity_spans

SCORES = ("entity_f1", "entity_precision", "entity_recall", "token_accuracy")


class EntityScores(Metric):
    """Entity-level precision, recall and F1 over strict IOB2 spans, and token accuracy, on labelled positions.

    Counts are sums, so they add up across ranks; `which` picks the score this instance reports.
    """

    full_state_update = False
    higher_is_better = True

    def __init__(self, tags: list[str], which: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.tags, self.which = tags, which
        for state in ("hits", "predicted", "gold", "correct_tokens", "tokens"):
            self.add_state(state, default=torch.tensor(0), dist_reduce_fx="sum")

    def update(self, predictions: Tensor, labels: Tensor) -> None:
        for predicted, gold in zip(predictions.tolist(), labels.tolist(), strict=True):
            kept = [(p, g) for p, g in zip(predicted, gold, strict=True) if g != UNLABELLED]
            guessed = {*entity_spans([self.tags[p] for p, _ in kept])}
            truth = {*entity_spans([self.tags[g] for _, g in kept])}
            self.hits += len(guessed & truth)
            self.predicted += len(guessed)
            self.gold += len(truth)
            self.correct_tokens += sum(p == g for p, g in kept)
            self.tokens += len(kept)

    def compute(self) -> Tensor:
        precision = self.hits / self.predicted.clamp(min=1)
        recall = self.hits / self.gold.clamp(min=1)
        scores = {
            "entity_precision": precision,
            "entity_recall": recall,
            "entity_f1": 2 * precision * recall / (precision + recall).clamp(min=1e-12),
            "token_accuracy": self.correct_tokens / self.tokens.clamp(min=1),
        }
        return scores[self.which].float()
