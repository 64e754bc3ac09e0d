"""ONNX export of any loaded model, checked against PyTorch with onnxruntime before it is kept."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn
from transformers import PreTrainedTokenizerBase

from distill.errors import DistillError

INPUTS = ("input_ids", "attention_mask", "token_type_ids")
_SAMPLES = (("a gripping , funny and moving film .", "it is a film ."), ("dull", "nothing happens at all in it"))
_CHECK = (("the cast is superb but the plot drags on and on", "a plot ."), ("bad", "good"), ("fine", "fine too"))


class Logits(nn.Module):
    """`model(input_ids, attention_mask, token_type_ids) -> logits` for any distill or Hugging Face classifier."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: Tensor, attention_mask: Tensor, token_type_ids: Tensor) -> Tensor:
        output = self.model(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)
        return output.logits if hasattr(output, "logits") else output


def _encode(tokenizer: PreTrainedTokenizerBase, rows, pair: bool) -> dict[str, Tensor]:
    columns = list(zip(*rows, strict=True)) if pair else [[row[0] for row in rows]]
    encoded = tokenizer(*columns, padding=True, return_tensors="pt", return_token_type_ids=True)
    return {name: encoded[name] for name in INPUTS}


def export_onnx(
    model: nn.Module, tokenizer: PreTrainedTokenizerBase, path: Path, pair: bool, tolerance: float = 1e-4
) -> float:
    """Write `model` as ONNX (dynamic batch and length) and check onnxruntime against PyTorch on other inputs.

    Returns:
        The largest absolute difference between the two on the check batch.

    Raises:
        DistillError: the model cannot be traced, or onnxruntime disagrees with PyTorch beyond `tolerance`.
    """
    import onnxruntime

    wrapped = Logits(model).eval()
    sample = _encode(tokenizer, _SAMPLES, pair)
    batch, length = torch.export.Dim("batch"), torch.export.Dim("sequence")
    shapes = {name: {0: batch, 1: length} for name in INPUTS}
    with warnings.catch_warnings(), torch.inference_mode(False):
        warnings.simplefilter("ignore")
        try:
            torch.onnx.export(
                wrapped,
                tuple(sample[n] for n in INPUTS),
                str(path),
                dynamo=True,
                verbose=False,
                input_names=list(INPUTS),
                output_names=["logits"],
                dynamic_shapes=shapes,
            )
        except Exception as error:  # the exporter raises many types; all mean "this model did not trace"
            raise DistillError(f"ONNX export failed for {type(model).__name__}: {str(error).splitlines()[0]}") from None
    check = _encode(tokenizer, _CHECK, pair)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {name: check[name].numpy().astype(np.int64) for name in INPUTS})[0]
    with torch.no_grad():
        expected = wrapped(**check).numpy()
    difference = float(np.abs(got - expected).max())
    if difference > tolerance:
        raise DistillError(f"ONNX export of {type(model).__name__} differs from PyTorch by {difference:.2e}")
    return difference
