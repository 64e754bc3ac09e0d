"""Outlier-aware low-bit weights (GOBO, Zadeh et al., 2020): 8, 6 or 4 bits, a few outliers kept in float.

A BERT weight matrix is nearly Gaussian with a thin tail of large weights. GOBO keeps the weights farthest from
the matrix's mean (the `outliers` fraction) exactly, as index and float value, and stores every other weight as
the index of one of 2^bits centroids that a one-dimensional k-means fits to those inliers: a non-uniform grid,
dense where the weights are. "Plain" quantisation, exported beside it for the comparison, is the usual
symmetric per-row uniform grid without outliers. The export variant `w<bits>/` packs the codes at `bits` bits
each: it shrinks the file, not the time, since the loader rebuilds float weights (common CPUs have no 4- or
6-bit kernels). `aware_training` rounds the weights the GOBO way during distillation (QAT), so the student
learns around its grid.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import Tensor, nn
from torch.nn.utils import parametrize
from transformers import AutoTokenizer, PreTrainedTokenizerBase
from typing_extensions import override

from distill import (
    Compression,
    DistillError,
    ExportFormat,
    Stage,
    Student,
    atomic_directory,
    hookimpl,
    load_model,
    require_weights,
    variant_base,
)

SETTINGS = "distill_lowbit.json"
WEIGHTS = "model_lowbit.safetensors"
PICKLED_WEIGHTS = "model_lowbit.pt"  # written before low-bit exports held no code; refused, never unpickled


def inlier_mask(weight: Tensor, outliers: float) -> Tensor:
    """All but the `outliers` fraction of weights farthest from the matrix's mean."""
    count = int(outliers * weight.numel())
    if count == 0:
        return torch.ones_like(weight, dtype=torch.bool)
    distance = (weight.detach() - weight.detach().mean()).abs()
    flat = distance.flatten()
    return distance <= flat.kthvalue(flat.numel() - count).values


def centroids(values: Tensor, count: int, start: Tensor | None = None, iterations: int = 25) -> Tensor:
    """Sorted centres of a one-dimensional k-means of `values`, started at their quantiles (or at `start`)."""
    values = values.detach().flatten().float()
    if start is None:
        sample = values[torch.randperm(len(values), generator=torch.Generator().manual_seed(0))[:200_000]]
        start = torch.quantile(sample, torch.linspace(0.5 / count, 1 - 0.5 / count, count))
    centres = start.clone()
    for _ in range(iterations):
        assigned = torch.bucketize(values, (centres[1:] + centres[:-1]) / 2)
        sums = torch.zeros(count).index_add_(0, assigned, values)
        counts = torch.bincount(assigned, minlength=count)
        centres = torch.where(counts > 0, sums / counts.clamp_min(1), centres).sort().values
    return centres


def _codes(weight: Tensor, centres: Tensor) -> Tensor:
    return torch.bucketize(weight.detach().float(), (centres[1:] + centres[:-1]) / 2)


def gobo(weight: Tensor, bits: int, outliers: float, start: Tensor | None = None, iterations: int = 25):
    """(`weight` as the export rebuilds it, the centroids): inliers snapped to 2^bits centroids, outliers exact."""
    inliers = inlier_mask(weight, outliers)
    centres = centroids(weight[inliers], 2**bits, start, iterations)
    return torch.where(inliers, centres[_codes(weight, centres)].to(weight.dtype), weight), centres


def _plain_codes(weight: Tensor, bits: int) -> tuple[Tensor, Tensor]:
    """The usual uniform grid: symmetric, one step per row, sized by the row's largest weight; (codes, steps)."""
    levels = 2 ** (bits - 1) - 1
    scale = weight.detach().abs().amax(1, keepdim=True).clamp_min(1e-8) / levels
    return (weight.detach() / scale).round().clamp(-levels, levels).long(), scale


def plain(weight: Tensor, bits: int) -> Tensor:
    """`weight` as the plain grid rebuilds it."""
    codes, scale = _plain_codes(weight, bits)
    return codes * scale


class FakeLowBit(nn.Module):
    """Parametrisation for QAT: the GOBO-rounded weight forward, the identity backward (straight-through). The
    centroids are refitted each step from the last step's, a few k-means iterations at a time."""

    def __init__(self, bits: int, outliers: float) -> None:
        super().__init__()
        self.bits, self.outliers = bits, outliers
        self.centres: Tensor | None = None

    def forward(self, weight: Tensor) -> Tensor:
        rounded, self.centres = gobo(weight, self.bits, self.outliers, self.centres, 25 if self.centres is None else 3)
        return weight + (rounded - weight).detach()


def _pack_bits(codes: Tensor, bits: int) -> Tensor:
    planes = ((codes.flatten().numpy().astype(np.int64)[:, None] >> np.arange(bits)) & 1).astype(np.uint8)
    return torch.from_numpy(np.packbits(planes.ravel()))


def _unpack_bits(packed: Tensor, bits: int, count: int) -> Tensor:
    planes = np.unpackbits(packed.numpy())[: count * bits].reshape(count, bits).astype(np.int64)
    return torch.from_numpy((planes << np.arange(bits)).sum(1))


def pack(weight: Tensor, bits: int, outliers: float | None) -> dict[str, Any]:
    """The matrix at `bits` bits a weight: GOBO codes, centroids and exact outliers, or (outliers None) the
    plain grid's codes and per-row steps."""
    weight = weight.detach().float()
    if outliers is None:
        codes, scale = _plain_codes(weight, bits)
        offset = 2 ** (bits - 1) - 1  # stored unsigned
        return {"codes": _pack_bits(codes + offset, bits), "shape": list(weight.shape), "scale": scale.flatten()}
    inliers = inlier_mask(weight, outliers)
    centres = centroids(weight[inliers], 2**bits)
    index = (~inliers).flatten().nonzero().flatten()
    return {
        "codes": _pack_bits(_codes(weight, centres), bits),
        "shape": list(weight.shape),
        "centroids": centres,
        "outlier_index": index.to(torch.int32),
        "outlier_value": weight.flatten()[index],
    }


def unpack(packed: dict[str, Any], bits: int) -> Tensor:
    rows, columns = packed["shape"]
    codes = _unpack_bits(packed["codes"], bits, rows * columns)
    if "scale" in packed:
        levels = 2 ** (bits - 1) - 1
        return (codes.view(rows, columns) - levels).float() * packed["scale"][:, None]
    weight = packed["centroids"][codes]
    weight[packed["outlier_index"].long()] = packed["outlier_value"]
    return weight.view(rows, columns)


def quantized_modules(model: nn.Module, embeddings: bool) -> dict[str, nn.Module]:
    kinds = (nn.Linear, nn.Embedding) if embeddings else (nn.Linear,)
    return {name: m for name, m in model.named_modules() if isinstance(m, kinds)}


@dataclass(eq=False)
class OutlierQuantization(Compression):
    """GOBO low-bit weights, as export variants `w<bits>/` (and `w<bits>-plain/`).

    Attributes:
        bits: widths to export (each 2 to 8).
        outliers: fraction of each matrix kept in float, the weights farthest from its mean (GOBO's 3σ rule
            keeps about 0.1 to 1%).
        plain: also export each width on the plain uniform grid, for the comparison.
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
            for outliers in (self.outliers, None) if self.plain else (self.outliers,):
                target = directory / (f"w{bits}" if outliers is not None else f"w{bits}-plain")
                with atomic_directory(target) as scratch:
                    tensors, shapes = flat_low_bit_state(low_bit_state(model, bits, outliers, self.embeddings))
                    save_file(tensors, scratch / WEIGHTS)
                    settings = {"base": "..", "bits": bits, "outliers": outliers, "shapes": shapes}
                    (scratch / SETTINGS).write_text(json.dumps(settings, indent=2))
                    tokenizer.save_pretrained(scratch)
                written.append(target)
        return written


@torch.no_grad()
def low_bit_state(model: nn.Module, bits: int, outliers: float | None, embeddings: bool) -> dict[str, Any]:
    """The model's state with every Linear (and embedding) weight packed (GOBO, or plain when `outliers` is
    None); the rest as it is."""
    packed = {
        f"{name}.weight": pack(m.weight.float(), bits, outliers)
        for name, m in quantized_modules(model, embeddings).items()
    }
    rest = {k: v for k, v in model.state_dict().items() if k not in packed}
    return {"packed": packed, "rest": rest}


def flat_low_bit_state(state: dict[str, Any]) -> tuple[dict[str, Tensor], dict[str, list[int]]]:
    """`low_bit_state` as plain tensors, which safetensors stores without code: `packed/<weight>/<part>` and
    `rest/<key>`, with each packed matrix's shape returned apart."""
    tensors = {f"rest/{key}": value.clone() for key, value in state["rest"].items()}
    shapes = {}
    for name, packed in state["packed"].items():
        shapes[name] = packed["shape"]
        tensors.update({f"packed/{name}/{part}": v.clone() for part, v in packed.items() if part != "shape"})
    return tensors, shapes


def nested_low_bit_state(tensors: dict[str, Tensor], shapes: dict[str, list[int]]) -> dict[str, Any]:
    """The inverse of `flat_low_bit_state`."""
    packed: dict[str, dict[str, Any]] = {name: {"shape": shape} for name, shape in shapes.items()}
    rest = {}
    for key, value in tensors.items():
        kind, _, name = key.partition("/")
        if kind == "rest":
            rest[name] = value
        else:
            weight, _, part = name.rpartition("/")
            packed[weight][part] = value
    return {"packed": packed, "rest": rest}


@hookimpl
def distill_register_compression() -> list[type]:
    return [OutlierQuantization]


class LowBitCopy(ExportFormat):
    """A `w<bits>/` copy: the float model of the folder it was made from, with its weights replaced by the ones
    rebuilt from the packed codes."""

    marker: ClassVar[str] = SETTINGS

    @classmethod
    @override
    def load(cls, folder: Path, trust_remote_code: bool) -> tuple[nn.Module, PreTrainedTokenizerBase]:
        weights = require_weights(folder, WEIGHTS, PICKLED_WEIGHTS, "OutlierQuantization")
        settings = json.loads((folder / SETTINGS).read_text())
        model, _ = load_model(variant_base(folder, settings["base"]), trust_remote_code)
        stored = nested_low_bit_state(load_file(weights), settings["shapes"])
        state = {**stored["rest"], **{k: unpack(v, settings["bits"]) for k, v in stored["packed"].items()}}
        model.load_state_dict(state)
        return model, AutoTokenizer.from_pretrained(folder)


@hookimpl
def distill_register_export_formats() -> list[type]:
    return [LowBitCopy]
