"""Attention in local groups by position (the decomposition of Cao et al., 2020, DeFormer).

In the chosen layers each word attends only to the words of its own group of `group` consecutive positions,
so those layers' attention costs T·group instead of T²; the layers above attend over the whole input and
join the groups up ([CLS] reads every group there). The groups run as one batched scaled-dot-product call
over (batch, heads, groups), so the saving is real wherever attention is a visible share of the time: long
inputs (hundreds of tokens), not SST-2's 25-token sentences, where the Linear layers dominate.

It works in every family whose attention goes through transformers' attention interface (BERT, RoBERTa,
ELECTRA, DistilBERT, ModernBERT); DeBERTa's disentangled attention does not, and is refused.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from typing_extensions import override

from distill import Compression, DistillError, ExportFormat, Stage, Student, architecture_of, hf_model, hookimpl

NAME = "distill_local_groups"
_probe: set[int] | None = None  # while set, the modules whose attention ran through the local-group function


def _allowed(mask: Tensor | None, batch: int, length: int, device: torch.device) -> Tensor:
    """The (B, 1, T, T) boolean mask of the keys each query may see, from what the model passes."""
    if mask is None:
        return torch.ones(batch, 1, length, length, dtype=torch.bool, device=device)
    if mask.dtype != torch.bool:
        mask = mask > torch.finfo(mask.dtype).min / 2  # additive: 0 where allowed
    return mask[..., -length:, -length:].expand(batch, 1, length, length)


def local_group_attention(
    module: nn.Module,
    query: Tensor,
    key: Tensor,
    value: Tensor,
    attention_mask: Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    **kwargs: Any,
) -> tuple[Tensor, None]:
    """transformers' attention-interface call, restricted to groups of `module.local_group` positions."""
    if _probe is not None:
        _probe.add(id(module))
    group = module.local_group
    batch, heads, length, size = query.shape
    padded = length + (-length) % group
    allowed = _allowed(attention_mask, batch, length, query.device)
    allowed = allowed | torch.eye(length, dtype=torch.bool, device=query.device)  # no row left without a key
    if padded != length:
        pad = padded - length
        query, key, value = (F.pad(t, (0, 0, 0, pad)) for t in (query, key, value))
        allowed = F.pad(allowed, (0, pad, 0, pad)) | torch.eye(padded, dtype=torch.bool, device=query.device)
    groups = padded // group
    blocks = allowed.view(batch, 1, groups, group, groups, group).diagonal(dim1=2, dim2=4).permute(0, 1, 4, 2, 3)
    # heads x groups as one axis, so the call stays 4-D (what ONNX's attention takes)
    split = [t.reshape(batch, heads * groups, group, size) for t in (query, key, value)]
    blocks = blocks.expand(batch, heads, groups, group, group).reshape(batch, heads * groups, group, group)
    output = F.scaled_dot_product_attention(*split, attn_mask=blocks, dropout_p=dropout, scale=scaling)
    return output.reshape(batch, heads, padded, size)[:, :, :length].transpose(1, 2).contiguous(), None


def _attention_modules(model: nn.Module) -> list[nn.Module]:
    """Per layer, the module that holds the q/k/v projections and calls the attention interface."""
    architecture = architecture_of(model)
    holders = []
    for layer in architecture.layers(model):
        parts = architecture.attention(layer)
        projection = parts.fused if parts.fused is not None else parts.query
        holders.append(next(m for m in layer.modules() if any(c is projection for c in m.children())))
    return holders


def localise(model: nn.Module, layers: list[int], group: int) -> None:
    """Point the attention of the 1-based `layers` at the local-group function (each gets its own config copy)."""
    from transformers import AttentionInterface  # registered on first use: it loads transformers' modelling

    AttentionInterface.register(NAME, local_group_attention)
    holders = _attention_modules(model)
    for index in layers:
        holder = holders[index - 1]
        if getattr(holder, "config", None) is None:
            raise DistillError(
                f"LocalAttention: the {architecture_of(model).name} family's attention does not go through "
                f"transformers' attention interface, so it cannot be grouped"
            )
        holder.config = copy.copy(holder.config)
        holder.config._attn_implementation = NAME
        holder.local_group = group


@dataclass(eq=False)
class LocalAttention(Compression):
    """Attend within groups of consecutive positions in the lower layers.

    Attributes:
        group: positions per group.
        layers: 1-based layers that attend locally (DeFormer decomposes the lower ones); the others stay global.
    """

    group: int = 16
    layers: list[int] = field(default_factory=lambda: [1])

    stage: ClassVar[Stage] = Stage.STRUCTURE

    def __post_init__(self) -> None:
        if self.group < 1 or not self.layers:
            raise DistillError("LocalAttention needs group >= 1 and at least one layer")

    @override
    def configure_student(self, student: Student, teacher: Any, data: Any) -> None:
        model, architecture = hf_model(student, self.name)
        depth = len(architecture.layers(model))
        if any(not 1 <= i <= depth for i in self.layers):
            raise DistillError(f"LocalAttention.layers {self.layers} must lie in 1..{depth}")
        localise(model, self.layers, self.group)
        _check_it_runs(model, self.layers)

    @override
    def structure(self, student: Student) -> dict[str, Any] | None:
        return {"group": self.group, "layers": self.layers}


def _check_it_runs(model: nn.Module, layers: list[int]) -> None:
    """Refuse a family whose attention module keeps a config but never calls the interface with it."""
    global _probe
    _probe = set()
    try:
        with torch.no_grad():
            model(input_ids=torch.ones(1, 4, dtype=torch.long, device=model.device))
        reached = {id(_attention_modules(model)[i - 1]) for i in layers} <= _probe
    finally:
        _probe = None
    if not reached:
        raise DistillError(
            f"LocalAttention: the {architecture_of(model).name} family's attention does not go through "
            f"transformers' attention interface, so it cannot be grouped"
        )


class LocalAttentionExport(ExportFormat):
    """Layers whose attention is grouped into local windows."""

    structures: ClassVar[frozenset[str]] = frozenset({"LocalAttention"})

    @classmethod
    @override
    def rebuild(cls, model: nn.Module, structure: str, settings: dict[str, Any]) -> None:
        localise(model, settings["layers"], settings["group"])


@hookimpl
def distill_register_compression() -> list[type]:
    return [LocalAttention]


@hookimpl
def distill_register_export_formats() -> list[type]:
    return [LocalAttentionExport]
