"""Quantization: a real int8 export, and int8 fake-quantisation during distillation (QAT).

The int8 export uses `torch.ao.quantization.quantize_dynamic`: on this project's CPUs it measured 1.5-3.6x
faster than fp32, while torchao's int8 dynamic path was slower than fp32. It covers Linear layers, LSTMs
and (optionally) embedding tables, which go to 8 bits per row. QAT rounds weights the same way (symmetric,
per output channel) and activations the way dynamic quantisation will at run time (per tensor, the range
of each batch, fbgemm's 7-bit reduced range), so the int8 export stays close to the fake-quant model.
"""

from __future__ import annotations

import copy
import json
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
from safetensors.torch import load_file, save_file
from torch import Tensor, nn
from torch.ao.nn import quantized as quantized_nn
from torch.ao.nn.quantized import dynamic as quantized_dynamic
from torch.ao.quantization import (
    default_dynamic_qconfig,
    float_qparams_weight_only_qconfig,
    per_channel_dynamic_qconfig,
    quantize_dynamic,
)
from torch.nn.utils import parametrize
from transformers import AutoTokenizer, PreTrainedTokenizerBase
from typing_extensions import override

from distill import (
    Compression,
    DistillError,
    ExportFormat,
    OnnxVariant,
    Stage,
    Student,
    atomic_directory,
    hookimpl,
    load_model,
    require_weights,
    variant_base,
)

QUANTIZED = "distill_int8.json"
WEIGHTS = "model_int8.safetensors"
PICKLED_WEIGHTS = "model_int8.pt"  # written before int8 exports held no code; refused, never unpickled


def word_table(model: nn.Module) -> tuple[str, nn.Embedding] | None:
    """The largest embedding table (the word pieces): the one the export stores in 8 bits per row."""
    tables = [(name, m) for name, m in model.named_modules() if isinstance(m, nn.Embedding)]
    return max(tables, key=lambda item: item[1].num_embeddings, default=None)


def quantize(model: nn.Module, per_channel: bool, embeddings: bool) -> nn.Module:
    """An int8 copy of `model`: dynamic int8 Linear and LSTM layers, and optionally the word-embedding table in
    8 bits per row (the small position and segment tables stay float: they are a rounding error in size)."""
    spec: dict[type | str, Any] = {
        nn.Linear: per_channel_dynamic_qconfig if per_channel else default_dynamic_qconfig,
        nn.LSTM: default_dynamic_qconfig,
    }
    if embeddings and (table := word_table(model)):
        spec[table[0]] = float_qparams_weight_only_qconfig
    with warnings.catch_warnings():
        # torch.ao.quantization is deprecated in favour of torchao, whose int8 dynamic path measured slower than
        # fp32 on these CPUs; this path is the fast one, so its deprecation notices are expected here.
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.filterwarnings("ignore", message=".*quantize_per_(tensor|channel).*deprecated.*")
        return quantize_dynamic(copy.deepcopy(model), spec)


class FakeQuantWeight(nn.Module):
    """Parametrisation: the weight rounded to symmetric int8, per output channel or per tensor (straight-through)."""

    def __init__(self, per_channel: bool) -> None:
        super().__init__()
        self.per_channel = per_channel

    def forward(self, weight: Tensor) -> Tensor:
        if self.per_channel:
            scale = weight.detach().abs().amax(dim=1).clamp_min(1e-8) / 127
            zero = torch.zeros_like(scale, dtype=torch.int32)
            return torch.fake_quantize_per_channel_affine(weight, scale, zero, 0, -127, 127)
        scale = weight.detach().abs().max().clamp_min(1e-8).reshape(1) / 127
        return torch.fake_quantize_per_tensor_affine(weight, scale, torch.zeros(1, dtype=torch.int32), -127, 127)


class FakeQuantRows(nn.Module):
    """Parametrisation: each row rounded to 256 levels between its own minimum and maximum, the grid the export
    stores the word-embedding table on (straight-through)."""

    def forward(self, weight: Tensor) -> Tensor:
        low, high = weight.detach().amin(1, keepdim=True), weight.detach().amax(1, keepdim=True)
        scale = (high - low).clamp_min(1e-8) / 255
        rounded = torch.round((weight - low) / scale).clamp(0, 255) * scale + low
        return weight + (rounded - weight).detach()


def fake_quant_input(module: nn.Module, args: tuple) -> tuple:
    """Pre-hook: the input rounded as dynamic quantisation will round it (per tensor, uint8 reduced to 0..127)."""
    x = args[0]
    low, high = x.detach().min().clamp_max(0), x.detach().max().clamp_min(0)
    scale = ((high - low).clamp_min(1e-8) / 127).reshape(1)
    zero = torch.round(-low / scale).clamp(0, 127).to(torch.int32).reshape(1)
    return (torch.fake_quantize_per_tensor_affine(x, scale, zero, 0, 127), *args[1:])


@dataclass(eq=False)
class DynamicQuantization(Compression):
    """Post-training ("naive") int8: the export gets an `int8/` copy; training is unchanged.

    Attributes:
        per_channel: one weight scale per output channel (else one per tensor).
        embeddings: store embedding tables in 8 bits per row too.
    """

    per_channel: bool = True
    embeddings: bool = True

    stage: ClassVar[Stage] = Stage.FAKE_QUANT
    excludes: ClassVar[dict[str, str]] = {"QuantizationAwareTraining": "QAT already exports an int8 copy"}

    @override
    def export_variants(self, directory: Path) -> list[Path]:
        model, tokenizer = load_model(directory)
        quantized = quantize(model, self.per_channel, self.embeddings)
        target = directory / "int8"
        with atomic_directory(target) as scratch:
            tensors, layout = int8_tensors(quantized)
            save_file(tensors, scratch / WEIGHTS)
            settings = {"base": "..", "per_channel": self.per_channel, "embeddings": self.embeddings}
            (scratch / QUANTIZED).write_text(json.dumps({**settings, "quantized": layout}, indent=2))
            tokenizer.save_pretrained(scratch)
        return [target]


@dataclass(eq=False)
class QuantizationAwareTraining(DynamicQuantization):
    """Distil with int8 fake-quantisation of every Linear layer's weights and (optionally) inputs, and of the
    word-embedding table when the export stores it in 8 bits; export as DynamicQuantization does.

    Attributes:
        activations: also fake-quantise Linear inputs (weights always are).
        per_channel: per-channel weight scales.
        embeddings: 8-bit embedding tables in the export.
    """

    activations: bool = True

    excludes: ClassVar[dict[str, str]] = {"DynamicQuantization": "QAT already exports an int8 copy"}

    @override
    def configure_student(self, student: Student, teacher: Any, data: Any) -> None:
        for module in student.modules():
            if isinstance(module, nn.Linear) and not parametrize.is_parametrized(module, "weight"):
                parametrize.register_parametrization(module, "weight", FakeQuantWeight(self.per_channel))
                if self.activations:
                    module.__dict__["_distill_fake_quant"] = module.register_forward_pre_hook(fake_quant_input)
        table = word_table(student) if self.embeddings else None
        if table and not parametrize.is_parametrized(table[1], "weight"):
            parametrize.register_parametrization(table[1], "weight", FakeQuantRows())

    @override
    def finalize(self, student: Student) -> None:
        """Back to plain float weights (the export quantises them for real)."""
        for module in student.modules():
            if isinstance(module, nn.Linear | nn.Embedding) and parametrize.is_parametrized(module, "weight"):
                parametrize.remove_parametrizations(module, "weight", leave_parametrized=False)
                if handle := module.__dict__.pop("_distill_fake_quant", None):
                    handle.remove()


@hookimpl
def distill_register_compression() -> list[type]:
    return [DynamicQuantization, QuantizationAwareTraining]


class Int8Copy(ExportFormat):
    """An `int8/` copy: its float model comes from the folder it was made from, is quantised, and takes the
    stored int8 codes."""

    marker: ClassVar[str] = QUANTIZED

    @classmethod
    @override
    def load(cls, folder: Path, trust_remote_code: bool) -> tuple[nn.Module, PreTrainedTokenizerBase]:
        weights = require_weights(folder, WEIGHTS, PICKLED_WEIGHTS, "DynamicQuantization")
        settings = json.loads((folder / QUANTIZED).read_text())
        base, _ = load_model(variant_base(folder, settings["base"]), trust_remote_code)
        model = quantize(base, settings["per_channel"], settings["embeddings"])
        load_int8_tensors(model, load_file(weights), settings["quantized"])
        return model, AutoTokenizer.from_pretrained(folder)


@hookimpl
def distill_register_export_formats() -> list[type]:
    return [Int8Copy]


QUANTIZED_OPS = ("MatMul", "Gemm", "Gather")


class DynamicInt8Onnx(OnnxVariant):
    """onnxruntime's dynamic int8: int8 weights, each activation's range taken per batch (so a row's answer can
    depend on its batch mates, which the report card then scores row by row)."""

    name = "dynamic_int8"

    @override
    def write(self, graph: Path, target: Path, calibration: Sequence[Mapping[str, Any]]) -> None:
        from onnxruntime.quantization import QuantType, quantize_dynamic  # the `onnx` extra, only when asked

        quantize_dynamic(str(graph), str(target), weight_type=QuantType.QInt8)


class StaticInt8Onnx(OnnxVariant):
    """int8 weights and activations with ranges fixed on training rows: a row's answer then never depends on the
    rows batched with it. MatMul and Gemm on weights (the Linear layers, which hold the time) and Gather on weights
    (the embedding tables, which hold the size) are quantized; the rest, LayerNorm and softmax among it, where 8
    bits lose accuracy, stays in float."""

    name = "static_int8"

    @override
    def write(self, graph: Path, target: Path, calibration: Sequence[Mapping[str, Any]]) -> None:
        import onnx  # the `onnx` extra, only when asked
        from onnxruntime.quantization import (
            CalibrationDataReader,
            CalibrationMethod,
            QuantFormat,
            QuantType,
            quantize_static,
        )

        class Rows(CalibrationDataReader):
            def __init__(self) -> None:
                self.feeds = iter(calibration)

            def get_next(self) -> Mapping[str, Any] | None:
                return next(self.feeds, None)

        network = onnx.load(str(graph)).graph
        weights = {tensor.name for tensor in network.initializer}
        # only nodes that read a weight: a Gather or MatMul on activations (shapes, attention scores) stays in float
        weighted = [node.name for node in network.node if node.op_type in QUANTIZED_OPS and set(node.input) & weights]
        quantize_static(
            str(graph),
            str(target),
            Rows(),
            quant_format=QuantFormat.QDQ,
            op_types_to_quantize=list(QUANTIZED_OPS),
            nodes_to_quantize=weighted,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax,
        )


@hookimpl
def distill_register_onnx_variants() -> list[type]:
    return [DynamicInt8Onnx, StaticInt8Onnx]


def int8_tensors(model: nn.Module) -> tuple[dict[str, Tensor], dict[str, dict[str, Any]]]:
    """Every weight of a quantised model as plain tensors, which safetensors stores without code: a quantised
    weight as its integer codes (`name`) with its scales and zero points, everything else as it is.

    Returns:
        (the tensors, the layout: per quantised weight, its dtype and its per-tensor or per-channel parameters).
    """
    tensors: dict[str, Tensor] = {}
    layout: dict[str, dict[str, Any]] = {}
    quantized = {name: _get_weights(module) for name, module in model.named_modules()}
    for prefix, weights in quantized.items():
        for key, value in (weights or {}).items():
            name = f"{prefix}.{key}" if prefix else key
            if value is None:
                continue
            if value.is_quantized:
                layout[name] = _encode(name, value, tensors)
            else:
                tensors[name] = value.clone()
    owned = tuple(f"{prefix}." for prefix, weights in quantized.items() if weights is not None)
    for name, value in model.state_dict().items():
        if isinstance(value, Tensor) and not value.is_quantized and not name.startswith(owned):
            tensors[name] = value.clone()
    return tensors, layout


def load_int8_tensors(model: nn.Module, tensors: dict[str, Tensor], layout: dict[str, dict[str, Any]]) -> None:
    """Put what `int8_tensors` stored back into a model that `quantize` built with the same settings.

    Raises:
        DistillError: the stored tensors are not the ones this model holds.
    """
    expected = set(int8_tensors(model)[0])
    if expected != set(tensors):
        missing, unexpected = sorted(expected - set(tensors))[:3], sorted(set(tensors) - expected)[:3]
        raise DistillError(
            f"the int8 weights do not fit the model of their base folder (missing {missing}, unexpected "
            f"{unexpected}): re-export the int8 copy from its base"
        )
    values = {
        name: _decode(name, tensors, layout[name]) if name in layout else value for name, value in tensors.items()
    }
    used: set[str] = set()
    for prefix, module in model.named_modules():
        if (weights := _get_weights(module)) is not None:
            names = {key: f"{prefix}.{key}" if prefix else key for key in weights}
            _set_weights(module, {key: values.get(name) for key, name in names.items()})
            used.update(names.values())
    with torch.no_grad():  # the float rest goes in place: a quantised module's loader would want its own keys
        for name, value in values.items():
            if name not in used and not name.endswith(_QPARAMS):
                owner, _, attribute = name.rpartition(".")
                getattr(model.get_submodule(owner), attribute).copy_(value)


_QPARAMS = (".scales", ".zero_points")  # stored beside a quantised weight's codes


def _get_weights(module: nn.Module) -> dict[str, Tensor | None] | None:
    """A quantised module's weights and biases by name (None for any other module)."""
    if isinstance(module, quantized_dynamic.Linear):
        weight, bias = module._weight_bias()
        return {"weight": weight, "bias": bias}
    if isinstance(module, quantized_dynamic.LSTM):
        stored = module._weight_bias()
        return {**stored["weight"], **stored["bias"]}
    if isinstance(module, quantized_nn.Embedding):
        return {"weight": module.weight()}
    return None


def _set_weights(module: nn.Module, weights: dict[str, Tensor | None]) -> None:
    if isinstance(module, quantized_dynamic.Linear):
        module.set_weight_bias(weights["weight"], weights["bias"])
    elif isinstance(module, quantized_dynamic.LSTM):
        module.set_weight_bias(weights)
    else:
        module.set_weight(weights["weight"])


def _encode(name: str, value: Tensor, tensors: dict[str, Tensor]) -> dict[str, Any]:
    tensors[name] = value.int_repr()
    if value.qscheme() in (torch.per_tensor_affine, torch.per_tensor_symmetric):
        return {"scale": value.q_scale(), "zero_point": value.q_zero_point()}
    tensors[f"{name}.scales"] = value.q_per_channel_scales()
    tensors[f"{name}.zero_points"] = value.q_per_channel_zero_points()
    return {"axis": value.q_per_channel_axis()}


def _decode(name: str, tensors: dict[str, Tensor], spec: dict[str, Any]) -> Tensor:
    codes = tensors[name]
    if "axis" not in spec:
        return torch._make_per_tensor_quantized_tensor(codes, spec["scale"], spec["zero_point"])
    scales, zero_points = tensors[f"{name}.scales"], tensors[f"{name}.zero_points"]
    return torch._make_per_channel_quantized_tensor(codes, scales, zero_points, spec["axis"])
