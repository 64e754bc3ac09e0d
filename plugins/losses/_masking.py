"""Padding-aware reductions shared by the built-in attention-style losses."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def pair_mask(attention_mask: Tensor) -> Tensor:
    """(B, 1, T, T) mask of (query, key) pairs where both tokens are real."""
    tokens = attention_mask.bool()
    return (tokens[:, None, :, None] & tokens[:, None, None, :]).float()


def masked_mse(student: Tensor, teacher: Tensor, attention_mask: Tensor) -> Tensor:
    """Mean squared error over real (query, key) pairs of (B, heads, T, T) maps."""
    mask = pair_mask(attention_mask)
    squared = (student - teacher).pow(2) * mask
    return squared.sum() / (mask.sum() * student.shape[1])


def key_log_probs(scores: Tensor, attention_mask: Tensor) -> Tensor:
    """Log-softmax over real keys of (B, heads, T, T) scores; padded keys get probability 0."""
    padded_keys = ~attention_mask.bool()[:, None, None, :]
    return F.log_softmax(scores.masked_fill(padded_keys, torch.finfo(scores.dtype).min), dim=-1)


def masked_kl(student_log_probs: Tensor, teacher_log_probs: Tensor, attention_mask: Tensor) -> Tensor:
    """KL(teacher ‖ student) over keys, averaged over heads and real query positions."""
    per_row = (teacher_log_probs.exp() * (teacher_log_probs - student_log_probs)).sum(-1)  # (B, heads, T)
    queries = attention_mask.float()[:, None, :]
    return (per_row * queries).sum() / (queries.sum() * per_row.shape[1])
