"""Extractive QA's metric, in a module of its own so that torchmetrics is imported only when a run scores."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

from distill.plugins.tasks.extractive_qa import join_windows, no_answer_wins

SCORES = ("exact_match", "f1", "has_answer_f1", "no_answer_accuracy")
_WINDOW_STATES = ("example", "score", "null", "exact", "f1", "unanswerable")


class AnswerScores(Metric):
    """SQuAD's exact match and F1 over examples, each scored on its best window; `which` picks the score.

    Windows are scored as they come (their best span's exact match and F1 against the gold texts); `compute`
    joins each example's windows: the best-scoring span, unless "no answer" (the lowest null score over its
    windows) beats it by more than the threshold. The states are tensors, so they gather across ranks.
    """

    full_state_update = False
    higher_is_better = True

    def __init__(self, which: str, no_answer: bool, threshold: float, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.which, self.no_answer, self.threshold = which, no_answer, threshold
        for state in _WINDOW_STATES:
            self.add_state(state, default=[], dist_reduce_fx="cat")

    def update(
        self, example: Tensor, score: Tensor, null: Tensor, exact: Tensor, f1: Tensor, unanswerable: Tensor
    ) -> None:
        for name, value in zip(_WINDOW_STATES, (example, score, null, exact, f1, unanswerable), strict=True):
            getattr(self, name).append(value.to(self.device))

    def compute(self) -> Tensor:
        if not self.example:
            return torch.tensor(0.0)
        example, score, null, exact, f1, unanswerable = (
            dim_zero_cat(getattr(self, name)).tolist() for name in _WINDOW_STATES
        )
        joined = join_windows(example, score, null, zip(exact, f1, unanswerable, strict=True))
        scored = {"exact_match": [], "f1": [], "has_answer_f1": [], "no_answer_accuracy": []}
        for score, null, (exact, f1, empty) in joined.values():
            if no_answer_wins(score, null, self.no_answer, self.threshold):
                exact = f1 = float(empty)  # "no answer" predicted
            scored["exact_match"].append(exact)
            scored["f1"].append(f1)
            scored["no_answer_accuracy" if empty else "has_answer_f1"].append(f1)
        values = scored[self.which]
        return torch.tensor(sum(values) / len(values) if values else 0.0)
