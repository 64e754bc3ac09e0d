"""ONNX export of any loaded model, checked against PyTorch with onnxruntime before it is kept."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn
from transformers import PreTrainedTokenizerBase

from distill.errors import DistillError
from distill.hf import head_logits, takes_token_types

INPUTS = ("input_ids", "attention_mask", "token_type_ids")
_SAMPLES = (("a gripping , funny and moving film .", "it is a film ."), ("dull", "nothing happens at all in it"))
_CHECK = (("the cast is superb but the plot drags on and on", "a plot ."), ("bad", "good"), ("fine", "fine too"))


class Logits(nn.Module):
    """`model(input_ids, attention_mask, token_type_ids) -> logits` for any distill or Hugging Face classifier;
    segment ids reach only a model that reads them (the graph then drops the unused input)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.segments = takes_token_types(model)

    def forward(self, input_ids: Tensor, attention_mask: Tensor, token_type_ids: Tensor) -> Tensor:
        extra = {"token_type_ids": token_type_ids} if self.segments else {}
        return head_logits(self.model(input_ids=input_ids, attention_mask=attention_mask, **extra))


def _encode(tokenizer: PreTrainedTokenizerBase, rows, pair: bool) -> dict[str, Tensor]:
    columns = list(zip(*rows, strict=True)) if pair else [[row[0] for row in rows]]
    encoded = tokenizer(*columns, padding=True, return_tensors="pt", return_token_type_ids=True)
    return {name: encoded[name] for name in INPUTS}


def _dynamo(wrapped: nn.Module, sample: dict[str, Tensor], path: Path) -> None:
    batch, length = torch.export.Dim("batch"), torch.export.Dim("sequence")
    torch.onnx.export(
        wrapped,
        tuple(sample[n] for n in INPUTS),
        str(path),
        dynamo=True,
        verbose=False,
        input_names=list(INPUTS),
        output_names=["logits"],
        dynamic_shapes={name: {0: batch, 1: length} for name in INPUTS},
    )


def _legacy(wrapped: nn.Module, sample: dict[str, Tensor], path: Path) -> None:
    torch.onnx.export(
        wrapped,
        tuple(sample[n] for n in INPUTS),
        str(path),
        dynamo=False,
        opset_version=17,
        input_names=list(INPUTS),
        output_names=["logits"],
        dynamic_axes={name: {0: "batch", 1: "sequence"} for name in INPUTS},
    )


def _difference(path: Path, wrapped: nn.Module, check: dict[str, Tensor]) -> float:
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    declared = [i.name for i in session.get_inputs()]  # an exporter may drop an input the model ignores
    got = session.run(None, {name: check[name].numpy().astype(np.int64) for name in declared})[0]
    with torch.no_grad():
        return float(np.abs(got - wrapped(**check).numpy()).max())


def export_onnx(
    model: nn.Module, tokenizer: PreTrainedTokenizerBase, path: Path, pair: bool, tolerance: float = 1e-4
) -> float:
    """Write `model` as ONNX (dynamic batch and length), kept only if onnxruntime agrees with PyTorch on inputs
    of other shapes. torch.export's exporter goes first; LSTMs, which it unrolls to the sample length, fall back
    to the TorchScript exporter and its native ONNX LSTM.

    Returns:
        The largest absolute difference between onnxruntime and PyTorch on the check batch.

    Raises:
        DistillError: no exporter produced a model that onnxruntime runs within `tolerance` of PyTorch.
    """
    wrapped = Logits(model).eval()
    sample, check = _encode(tokenizer, _SAMPLES, pair), _encode(tokenizer, _CHECK, pair)
    problems = []
    for exporter in (_dynamo, _legacy):
        with warnings.catch_warnings(), torch.inference_mode(False):
            warnings.simplefilter("ignore")
            try:
                exporter(wrapped, sample, path)
                difference = _difference(path, wrapped, check)
            except Exception as error:  # exporters and onnxruntime raise many types; each means "not this way"
                problems.append(f"{exporter.__name__.strip('_')}: {str(error).splitlines()[0][:200]}")
                continue
        if difference <= tolerance:
            return difference
        problems.append(f"{exporter.__name__.strip('_')}: differs from PyTorch by {difference:.2e}")
    path.unlink(missing_ok=True)
    raise DistillError(f"ONNX export of {type(model).__name__} failed ({'; '.join(problems)})")
