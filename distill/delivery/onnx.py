"""ONNX in and out: exporting any loaded model (checked against PyTorch with onnxruntime before it is kept), and
reading an ONNX file of an export back as a model, the one export format the core itself owns."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from transformers import AutoTokenizer, PreTrainedTokenizerBase

from distill.delivery.folder import ONNX_MODEL, read_card
from distill.errors import DistillError
from distill.export_format import ExportFormat
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


def onnxruntime_module() -> Any:
    """onnxruntime, which the `onnx` extra installs.

    Raises:
        DistillError: it is not installed.
    """
    try:
        import onnxruntime
    except ImportError:
        raise DistillError("ONNX needs onnxruntime, which is not installed: pip install 'distill[onnx]'") from None
    return onnxruntime


def _difference(path: Path, wrapped: nn.Module, check: dict[str, Tensor]) -> float:
    session = onnxruntime_module().InferenceSession(str(path), providers=["CPUExecutionProvider"])
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


class OnnxClassifier(nn.Module):
    """One ONNX file in an onnxruntime session, called like the PyTorch model it came from (input ids, mask and,
    where the graph declares them, segment ids; logits out), so scoring, timing and `distill predict` serve it
    unchanged. It holds no torch parameters; `parameter_counts` are those of the model it was exported from.

    Moved to a CUDA device (`.to("cuda")`, as the report card does to time a GPU), it runs on onnxruntime-gpu's
    CUDA execution provider; where that is not installed, the move fails with a line that says so.
    """

    def __init__(self, path: Path, parameter_counts: dict[str, int] | None = None) -> None:
        super().__init__()
        self.path = Path(path)
        self.device = torch.device("cpu")
        self.session = self._session("CPUExecutionProvider")
        self.inputs = [i.name for i in self.session.get_inputs()]
        self.reads_token_types = "token_type_ids" in self.inputs
        self.parameter_counts = parameter_counts

    def _session(self, provider: str) -> Any:
        onnxruntime = onnxruntime_module()
        if provider not in onnxruntime.get_available_providers():
            raise RuntimeError(f"onnxruntime has no {provider} here: install onnxruntime-gpu for ONNX on a GPU")
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()  # timed beside PyTorch on the same threads
        # onnxruntime's idle threads otherwise spin for a while after each call, taking the cores from whatever
        # runs next (a server's other work, or the next model timed in the same process)
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        providers = [provider, "CPUExecutionProvider"] if provider != "CPUExecutionProvider" else [provider]
        return onnxruntime.InferenceSession(str(self.path), options, providers=providers)

    def to(self, *args: Any, **kwargs: Any) -> OnnxClassifier:
        """A session moves by its execution provider: CUDA's on a GPU, the CPU's otherwise."""
        device = torch._C._nn._parse_to(*args, **kwargs)[0]
        if device is not None and device.type != self.device.type:
            self.session = self._session("CUDAExecutionProvider" if device.type == "cuda" else "CPUExecutionProvider")
            self.device = device
        return self

    def forward(self, input_ids: Tensor, attention_mask: Tensor, token_type_ids: Tensor | None = None) -> Tensor:
        given = {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids}
        return torch.from_numpy(self.session.run(None, feed(self.inputs, given))[0]).to(self.device)


def feed(names: list[str], batch: dict[str, Tensor | None]) -> dict[str, np.ndarray]:
    """The graph's inputs as int64 arrays; segment ids a tokenizer did not give are all segment 0."""
    segments = batch.get("token_type_ids")
    given = {**batch, "token_type_ids": torch.zeros_like(batch["input_ids"]) if segments is None else segments}
    return {name: given[name].cpu().numpy().astype(np.int64) for name in names}


class OnnxFile(ExportFormat):
    """An ONNX file of an export (`student/onnx/model_static_int8.onnx`), or its onnx/ folder, which serves
    model.onnx; its parameter counts are those on the card beside it."""

    @classmethod
    def recognises(cls, folder: Path) -> bool:
        return folder.suffix == ".onnx" or (folder / ONNX_MODEL).is_file()

    @classmethod
    def load(cls, folder: Path, trust_remote_code: bool) -> tuple[nn.Module, PreTrainedTokenizerBase]:
        path = folder if folder.suffix == ".onnx" else folder / ONNX_MODEL
        classifier = OnnxClassifier(path, read_card(path).get("parameters"))
        return classifier, AutoTokenizer.from_pretrained(path.parent)
