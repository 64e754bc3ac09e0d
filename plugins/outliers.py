"""Outlier-aware low-bit weights (GOBO, Zadeh et al., 2020): 8, 6 or 4 bits, a few outliers kept in float.

A BERT weight matrix is nearly Gaussian with a thin tail of large weights; a uniform grid wide enough for the
tail is too coarse for the rest. Here the largest `outliers` fraction of each matrix (by magnitude) is stored
exactly (index and float value) and the others on a symmetric per-row grid of 2^bits - 1 levels sized to the
inliers alone. The export variant `w<bits>/` packs the codes at `bits` bits each: it shrinks the file, not the
time, since the loader rebuilds float weights (common CPUs have no 4- or 6-bit kernels). `plain` exports the
same widths without outliers beside it, for the comparison; `aware_training` rounds the weights this way
during distillation (QAT) so the student learns around the grid.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize
from transformers import AutoTokenizer, PreTrainedTokenizerBase
from typing_extensions import override

from distill import Compression, DistillError, Stage, Student, atomic_directory, hookimpl, load_model

SETTINGS = "distill_lowbit.json"
WEIGHTS = "model_lowbit.pt"


def _inliers(weight: Tensor, outliers: float) -> Tensor:
    """Mask of the weights on the grid: all but the largest `outliers` fraction by magnitude."""
    count = int(outliers * weight.numel())
    if count == 0:
        return torch.ones_like(weight, dtype=torch.bool)
    magnitude = weight.detach().abs().flatten()
    threshold = magnitude.kthvalue(magnitude.numel() - count).values
    return weight.detach().abs() <= threshold


def _scales(weight: Tensor, inliers: Tensor, bits: int) -> Tensor:
    """Per-row step of the symmetric grid that spans the row's inliers."""
    levels = 2 ** (bits - 1) - 1
    return (weight.detach().abs() * inliers).amax(1, keepdim=True).clamp_min(1e-8) / levels


def fake_quantize(weight: Tensor, bits: int, outliers: float) -> Tensor:
    """`weight` as the export will rebuild it: inliers rounded to the grid, outliers exact."""
    inliers = _inliers(weight, outliers)
    scale, levels = _scales(weight, inliers, bits), 2 ** (bits - 1) - 1
    rounded = (weight / scale).round().clamp(-levels, levels) * scale
    return torch.where(inliers, rounded, weight)


class FakeLowBit(nn.Module):
    """Parametrisation for QAT: the rounded weight forward, the identity backward (straight-through)."""

    def __init__(self, bits: int, outliers: float) -> None:
        super().__init__()
        self.bits, self.outliers = bits, outliers

    def forward(self, weight: Tensor) -> Tensor:
        return weight + (fake_quantize(weight, self.bits, self.outliers) - weight).detach()


def pack(weight: Tensor, bits: int, outliers: float) -> dict[str, Any]:
    """The matrix as packed codes, per-row scales and exact outliers."""
    inliers = _inliers(weight, outliers)
    scale, levels = _scales(weight, inliers, bits), 2 ** (bits - 1) - 1
    codes = ((weight / scale).round().clamp(-levels, levels) + levels).to(torch.int64).flatten().numpy()
    bit_planes = ((codes[:, None] >> np.arange(bits)) & 1).astype(np.uint8)
    index = (~inliers).flatten().nonzero().flatten()
    return {
        "codes": torch.from_numpy(np.packbits(bit_planes.ravel())),
        "shape": list(weight.shape),
        "scale": scale.flatten().to(torch.float16),
        "outlier_index": index.to(torch.int32),
        "outlier_value": weight.flatten()[index].to(torch.float16),
    }


def unpack(packed: dict[str, Any], bits: int) -> Tensor:
    rows, columns = packed["shape"]
    count = rows * columns
    planes = np.unpackbits(packed["codes"].numpy())[: count * bits].reshape(count, bits).astype(np.int64)
    codes = torch.from_numpy((planes << np.arange(bits)).sum(1)) - (2 ** (bits - 1) - 1)
    weight = (codes.view(rows, columns).float() * packed["scale"].float()[:, None]).flatten()
    weight[packed["outlier_index"].long()] = packed["outlier_value"].float()
    return weight.view(rows, columns)


def quantized_modules(model: nn.Module, embeddings: bool) -> dict[str, nn.Module]:
    kinds = (nn.Linear, nn.Embedding) if embeddings else (nn.Linear,)
    return {name: m for name, m in model.named_modules() if isinstance(m, kinds)}


@dataclass(eq=False)
class OutlierQuantization(Compression):
    """Low-bit weights with float outliers, as export variants `w<bits>/` (and `w<bits>-plain/`).

    Attributes:
        bits: widths to export (each 2 to 8).
        outliers: fraction of each matrix kept in float (GOBO keeps about 0.1%).
        plain: also export each width without outliers, for comparison.
        embeddings: quantise the embedding tables too (they are most of a small student).
        aware_training: round the weights at the smallest width (with outliers) during distillation.
    """

    bits: list[int] = field(default_factory=lambda: [8, 6, 4])
    outliers: float = 0.001
    plain: bool = True
    embeddings: bool = True
    aware_training: bool = False

    stage: ClassVar[Stage] = Stage.FAKE_QUANT
    excludes: ClassVar[dict[str, str]] = {
        "QuantizationAwareTraining": "both round the weights in training; choose one grid",
        "WeightSqueezing": "both reparametrise the weights in training",
    }

    def __post_init__(self) -> None:
        if not self.bits or any(not 2 <= b <= 8 for b in self.bits) or not 0.0 <= self.outliers < 0.5:
            raise DistillError(f"OutlierQuantization needs bits in 2..8 and 0 <= outliers < 0.5; got {self}")

    @override
    def configure_student(self, student: Student, teacher: Any, data: Any) -> None:
        if not self.aware_training:
            return
        for module in quantized_modules(student, self.embeddings).values():
            if not parametrize.is_parametrized(module, "weight"):
                parametrize.register_parametrization(module, "weight", FakeLowBit(min(self.bits), self.outliers))

    @override
    def finalize(self, student: Student) -> None:
        for module in quantized_modules(student, self.embeddings).values():
            if parametrize.is_parametrized(module, "weight"):
                parametrize.remove_parametrizations(module, "weight", leave_parametrized=False)

    @override
    def export_variants(self, directory: Path) -> list[Path]:
        model, tokenizer = load_model(directory)
        written = []
        for bits in self.bits:
            for outliers in (self.outliers, 0.0) if self.plain else (self.outliers,):
                target = directory / (f"w{bits}" if outliers else f"w{bits}-plain")
                with atomic_directory(target) as scratch:
                    torch.save(low_bit_state(model, bits, outliers, self.embeddings), scratch / WEIGHTS)
                    settings = {"base": "..", "bits": bits, "outliers": outliers}
                    (scratch / SETTINGS).write_text(json.dumps(settings, indent=2))
                    tokenizer.save_pretrained(scratch)
                written.append(target)
        return written


@torch.no_grad()
def low_bit_state(model: nn.Module, bits: int, outliers: float, embeddings: bool) -> dict[str, Any]:
    """The model's state with every Linear (and embedding) weight packed; the rest as it is."""
    packed = {
        f"{name}.weight": pack(m.weight.float(), bits, outliers)
        for name, m in quantized_modules(model, embeddings).items()
    }
    rest = {k: v for k, v in model.state_dict().items() if k not in packed}
    return {"packed": packed, "rest": rest}


@hookimpl
def distill_register_compression() -> list[type]:
    return [OutlierQuantization]


@hookimpl
def distill_load_model(folder: Path) -> tuple[nn.Module, PreTrainedTokenizerBase] | None:
    """A `w<bits>/` variant: the float model of the folder it was made from, with its weights replaced by the
    ones rebuilt from the packed codes."""
    if not (folder / SETTINGS).is_file():
        return None
    settings = json.loads((folder / SETTINGS).read_text())
    model, _ = load_model(folder / settings["base"])
    stored = torch.load(folder / WEIGHTS, weights_only=False)
    state = {**stored["rest"], **{k: unpack(v, settings["bits"]) for k, v in stored["packed"].items()}}
    model.load_state_dict(state)
    return model, AutoTokenizer.from_pretrained(folder)
