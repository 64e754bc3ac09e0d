"""The CPU serving path: an export's ONNX files (fp32, graph-optimised fp32, and the copies installed methods make,
such as int8), written into its onnx/ folder. Reading them back is distill.delivery.onnx's."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import onnx
import onnxruntime

from distill.atomic import atomic_directory
from distill.delivery.batching import task_batches
from distill.delivery.folder import CARD_NAME, ONNX_DIR, read_card
from distill.delivery.loading import load_model
from distill.delivery.model_card import hub_name, write_model_card
from distill.delivery.onnx import export_onnx, feed
from distill.errors import DistillError
from distill.export_format import onnx_network, onnx_variants
from distill.lazy import lazy_module
from distill.task import Task

datasets = lazy_module("datasets")

FILES = {"fp32": "model.onnx", "optimized": "model_optimized.onnx"}  # the core's; methods add their copies
CALIBRATION_ROWS = 256  # min-max ranges: on SST-2, 1024 rows widened them and scored 0.7 points lower
CALIBRATION_BATCH = 16


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


def export_onnx_variants(folder: Path, task: Task, calibration: datasets.Dataset, max_length: int) -> list[Path]:
    """Write `folder/onnx/`: the ONNX graph (checked against PyTorch), its graph-optimised copy, and the copy of
    every installed OnnxVariant (int8 from the quantization plugin), those that calibrate on `calibration`
    (training rows); with the tokenizer, the card, and the Hugging Face config where the export has one (so
    optimum's ORTModel classes load the folder).

    Returns:
        The ONNX files written.

    Raises:
        DistillError: copies are installed and there are no calibration rows, or no exporter reproduces the model.
    """
    variants = onnx_variants()
    if variants and len(calibration) == 0:
        raise DistillError("ONNX copies calibrate on training rows, and the training split gave none: check data")
    model, tokenizer = load_model(folder)
    batches = task_batches(task, tokenizer, calibration, CALIBRATION_BATCH, max_length)
    files = [*FILES.values(), *(f"model_{variant.name}.onnx" for variant in variants)]
    with atomic_directory(folder / ONNX_DIR) as scratch, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the quantizers warn about every tensor they leave in float
        export_onnx(onnx_network(model), tokenizer, scratch / FILES["fp32"], task.is_pair)
        _self_contained(scratch / FILES["fp32"])
        _optimise(scratch / FILES["fp32"], scratch / FILES["optimized"])
        _without_shapes(scratch / FILES["fp32"], scratch / "unshaped.onnx")
        graph = onnx.load(str(scratch / "unshaped.onnx")).graph
        weights = {tensor.name for tensor in graph.initializer}
        names = [i.name for i in graph.input if i.name not in weights]  # the graph's own inputs
        feeds = [feed(names, batch) for batch in batches]
        for variant in variants:
            variant.write(scratch / "unshaped.onnx", scratch / f"model_{variant.name}.onnx", feeds)
        (scratch / "unshaped.onnx").unlink()
        tokenizer.save_pretrained(scratch)
        for name in (CARD_NAME, "config.json"):
            if (folder / name).is_file():
                shutil.copy2(folder / name, scratch / name)
        if card := read_card(folder):
            write_model_card(scratch, card, None, "student-onnx-fp32", name=hub_name(folder / ONNX_DIR))
    return [folder / ONNX_DIR / name for name in files]
