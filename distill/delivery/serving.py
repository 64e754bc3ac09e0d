"""The CPU serving path: an export's ONNX variants (fp32, graph-optimised fp32, dynamic and static int8), written
into its onnx/ folder. Reading them back is distill.delivery.onnx's."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import datasets
import numpy as np
import onnx
import onnxruntime
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quantize_dynamic,
    quantize_static,
)
from torch import Tensor

from distill.atomic import atomic_directory
from distill.delivery.batching import task_batches
from distill.delivery.folder import CARD_NAME, ONNX_DIR, read_card
from distill.delivery.loading import load_model
from distill.delivery.model_card import hub_name, write_model_card
from distill.delivery.onnx import export_onnx, feed
from distill.errors import DistillError
from distill.export_format import onnx_network
from distill.task import Task

FILES = {
    "fp32": "model.onnx",
    "optimized": "model_optimized.onnx",
    "dynamic_int8": "model_dynamic_int8.onnx",
    "static_int8": "model_static_int8.onnx",
}
CALIBRATION_ROWS = 256  # min-max ranges: on SST-2, 1024 rows widened them and scored 0.7 points lower
QUANTIZED = ("MatMul", "Gemm", "Gather")
CALIBRATION_BATCH = 16


class _CalibrationRows(CalibrationDataReader):
    """Training batches fed to the float graph so static quantization can fix each activation's range."""

    def __init__(self, batches: list[dict[str, Tensor]], names: list[str]) -> None:
        self.feeds = iter([feed(names, b) for b in batches])

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self.feeds, None)


def _self_contained(path: Path) -> None:
    """torch.export's exporter writes the weights beside the graph (model.onnx.data); one file under protobuf's
    2 GB limit is what servers, the quantizers and optimum expect, and its size is the variant's real size."""
    graph = onnx.load(str(path))  # reads the external weights in
    if graph.ByteSize() < 2**31:
        onnx.save(graph, str(path))
        for data in path.parent.glob(f"{path.name}*.data"):
            data.unlink()


def _without_shapes(source: Path, target: Path) -> None:
    """The exporter records intermediate shapes from its sample batch; the quantizers re-infer them."""
    graph = onnx.load(str(source))
    del graph.graph.value_info[:]
    onnx.save(graph, str(target))


def _optimise(source: Path, target: Path) -> None:
    """onnxruntime's extended graph fusions (attention, LayerNorm, GELU, MatMul+Add), saved as a file so a server
    loads the fused graph as it is."""
    options = onnxruntime.SessionOptions()
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    options.optimized_model_filepath = str(target)
    onnxruntime.InferenceSession(str(source), options, providers=["CPUExecutionProvider"])


def _quantize_static(source: Path, target: Path, batches: list[dict[str, Tensor]]) -> None:
    """int8 weights and activations with ranges fixed on training rows: a row's answer then never depends on
    the rows batched with it (dynamic int8 takes one range per batch). MatMul and Gemm on weights (the Linear
    layers, which hold the time) and Gather on weights (the embedding tables, which hold the size) are quantized;
    the rest, LayerNorm and softmax among it, where 8 bits lose accuracy, stays in float."""
    graph = onnx.load(str(source)).graph
    weights = {tensor.name for tensor in graph.initializer}
    names = [i.name for i in graph.input if i.name not in weights]  # the graph's own inputs, read once
    # only nodes that read a weight: a Gather or MatMul on activations (shapes, attention scores) stays in float
    weighted = [node.name for node in graph.node if node.op_type in QUANTIZED and set(node.input) & weights]
    quantize_static(
        str(source),
        str(target),
        _CalibrationRows(batches, names),
        quant_format=QuantFormat.QDQ,
        op_types_to_quantize=list(QUANTIZED),
        nodes_to_quantize=weighted,
        per_channel=True,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        calibrate_method=CalibrationMethod.MinMax,
    )


def export_onnx_variants(folder: Path, task: Task, calibration: datasets.Dataset, max_length: int) -> list[Path]:
    """Write `folder/onnx/`: the ONNX graph (checked against PyTorch), its graph-optimised copy, dynamic int8 and
    static int8 calibrated on `calibration` (training rows), with the tokenizer, the card, and the Hugging Face
    config where the export has one (so optimum's ORTModel classes load the folder).

    Raises:
        DistillError: there are no calibration rows, or no exporter reproduces the model.
    """
    if len(calibration) == 0:
        raise DistillError("static int8 needs calibration rows, and the training split gave none: check data")
    model, tokenizer = load_model(folder)
    batches = task_batches(task, tokenizer, calibration, CALIBRATION_BATCH, max_length)
    with atomic_directory(folder / ONNX_DIR) as scratch, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the quantizers warn about every tensor they leave in float
        export_onnx(onnx_network(model), tokenizer, scratch / FILES["fp32"], task.is_pair)
        _self_contained(scratch / FILES["fp32"])
        _optimise(scratch / FILES["fp32"], scratch / FILES["optimized"])
        _without_shapes(scratch / FILES["fp32"], scratch / "unshaped.onnx")
        quantize_dynamic(
            str(scratch / "unshaped.onnx"), str(scratch / FILES["dynamic_int8"]), weight_type=QuantType.QInt8
        )
        _quantize_static(scratch / "unshaped.onnx", scratch / FILES["static_int8"], batches)
        (scratch / "unshaped.onnx").unlink()
        tokenizer.save_pretrained(scratch)
        for name in (CARD_NAME, "config.json"):
            if (folder / name).is_file():
                shutil.copy2(folder / name, scratch / name)
        if card := read_card(folder):
            write_model_card(scratch, card, None, "student-onnx-fp32", name=hub_name(folder / ONNX_DIR))
    return [folder / ONNX_DIR / name for name in FILES.values()]
