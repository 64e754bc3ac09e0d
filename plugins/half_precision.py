"""Half-precision copies for GPU serving: the export's weights in bfloat16 or float16 (`bf16/`, `fp16/`), half the
bytes, served in that precision. On a GPU the tensor cores run them; the report card scores them wherever it is
written, so what the rounding costs in accuracy is measured even on a machine without a GPU.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Literal

import torch
from safetensors.torch import load_model as load_weights
from safetensors.torch import save_model
from torch import nn
from transformers import AutoTokenizer, PreTrainedTokenizerBase
from typing_extensions import override

from distill import (
    Compression,
    ExportFormat,
    Stage,
    atomic_directory,
    hookimpl,
    load_model,
    require_weights,
    variant_base,
)

SETTINGS = "distill_half.json"
WEIGHTS = "model_half.safetensors"
FOLDERS = {"bfloat16": "bf16", "float16": "fp16"}


@dataclass(eq=False)
class HalfPrecision(Compression):
    """Export a half-precision copy beside the float32 one; training is unchanged (train in bf16-mixed or
    16-mixed for a student that expects it).

    Attributes:
        dtype: "bfloat16" (float32's range, fewer digits: the safe choice) or "float16" (more digits, a range that
            large activations can overflow; what older GPUs run fastest).
    """

    dtype: Literal["bfloat16", "float16"] = "bfloat16"

    stage: ClassVar[Stage] = Stage.FAKE_QUANT

    @override
    def export_variants(self, directory: Path) -> list[Path]:
        model, tokenizer = load_model(directory)
        target = directory / FOLDERS[self.dtype]
        with atomic_directory(target) as scratch:
            save_model(copy.deepcopy(model).to(getattr(torch, self.dtype)), str(scratch / WEIGHTS))
            (scratch / SETTINGS).write_text(json.dumps({"base": "..", "dtype": self.dtype}, indent=2))
            tokenizer.save_pretrained(scratch)
        return [target]


class HalfCopy(ExportFormat):
    """A half-precision copy: the model of the export it was made from, in that precision, with the stored
    weights."""

    marker: ClassVar[str] = SETTINGS

    @classmethod
    @override
    def load(cls, folder: Path, trust_remote_code: bool) -> tuple[nn.Module, PreTrainedTokenizerBase]:
        weights = require_weights(folder, WEIGHTS, "model_half.pt", "HalfPrecision")
        settings = json.loads((folder / SETTINGS).read_text())
        model, _ = load_model(variant_base(folder, settings["base"]), trust_remote_code)
        model.to(getattr(torch, settings["dtype"]))
        load_weights(model, str(weights))
        return model, AutoTokenizer.from_pretrained(folder)


@hookimpl
def distill_register_compression() -> list[type]:
    return [HalfPrecision]


@hookimpl
def distill_register_export_formats() -> list[type]:
    return [HalfCopy]
