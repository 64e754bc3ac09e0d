"""Loading any exported model: an installed plugin's format first, then the core's (ONNX, a student family's own
folder, Hugging Face)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import torch
import transformers
from safetensors import safe_open
from safetensors.torch import load_file
from torch import nn
from transformers import AutoConfig, AutoTokenizer

from distill.architecture import architecture_of
from distill.delivery.folder import card_task, model_folder, structure_records
from distill.delivery.onnx import OnnxFile
from distill.errors import DistillError
from distill.export_format import ExportFormat, export_formats, rebuild
from distill.hf import check_remote_code
from distill.registry import registered
from distill.student import STUDENT_META, StudentClassifier
from distill.teacher import answering

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase


class StudentFolder(ExportFormat):
    """A student of a family that is not a Hugging Face model (its meta file names the family)."""

    marker = STUDENT_META

    @classmethod
    def load(cls, folder: Path, trust_remote_code: bool) -> tuple[nn.Module, PreTrainedTokenizerBase]:
        family = json.loads((folder / STUDENT_META).read_text())["family"]
        families = {config.student_class.family: config.student_class for config, _ in registered("students").values()}
        if family not in families:
            raise DistillError(
                f"{folder} holds a {family!r} student, and no installed plugin provides that family: "
                f"install it (`distill plugins` lists what is installed)"
            )
        return StudentClassifier(families[family].load(folder)), AutoTokenizer.from_pretrained(folder)


class TransformersFolder(ExportFormat):
    """A Hugging Face save_pretrained folder, with the head the card's task names, narrower layers and the modules
    compression methods put in (their structure records) included."""

    marker = "config.json"

    @classmethod
    def load(cls, folder: Path, trust_remote_code: bool) -> tuple[nn.Module, PreTrainedTokenizerBase]:
        task = card_task(folder)
        head = task.head if task is not None else "AutoModelForSequenceClassification"
        tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=trust_remote_code)
        return answering(load_transformer(folder, head, trust_remote_code), task), tokenizer


CORE_FORMATS = (OnnxFile, StudentFolder, TransformersFolder)  # asked after the installed formats, in this order


def load_model(folder: str | Path, trust_remote_code: bool = False) -> tuple[nn.Module, PreTrainedTokenizerBase]:
    """The model in `folder` (eval mode) and its tokenizer. `folder` may also be an ONNX file of an export
    (`student/onnx/model_static_int8.onnx`), or its onnx/ folder (which serves model.onnx). Nothing in the folder
    runs as code: a folder that ships Python for transformers (auto_map) is refused unless `trust_remote_code`.

    Raises:
        DistillError: the folder does not exist, ships code that is not trusted, or holds no model any installed
            plugin can read.
    """
    folder = Path(folder)
    if folder.suffix == ".onnx" and not folder.is_file():
        raise DistillError(
            f"ONNX file {folder} does not exist: `distill export --model EXPORT --onnx true` writes an export's"
        )
    if not folder.is_dir() and folder.suffix != ".onnx":
        problem = "is a file, not a folder" if folder.is_file() else "does not exist"
        raise DistillError(
            f"model folder {folder} {problem}: give a folder written by `distill fit` or "
            f"`distill export`, or a Hugging Face save_pretrained folder"
        )
    check_remote_code(model_folder(folder), "model", trust_remote_code)
    reader = next((cls for cls in (*export_formats(), *CORE_FORMATS) if cls.recognises(folder)), None)
    if reader is None:
        raise DistillError(
            f"{folder} holds neither a Hugging Face model (config.json) nor a format of an "
            f"installed plugin (see `distill plugins`)"
        )
    model, tokenizer = reader.load(folder, trust_remote_code)
    return model.eval(), tokenizer


def _narrower_than_config(folder: Path, head: type) -> bool:
    """True when a saved tensor's shape differs from the one its config implies (read from headers and a
    weightless model on the meta device, so nothing is loaded twice)."""
    weights = folder / "model.safetensors"
    if not weights.is_file():
        return False
    with safe_open(str(weights), framework="pt") as saved:
        shapes = {key: list(saved.get_slice(key).get_shape()) for key in saved.keys()}
    with torch.device("meta"):
        model = head.from_config(AutoConfig.from_pretrained(folder))
    expected = {key: list(tensor.shape) for key, tensor in model.state_dict().items()}
    return any(key in expected and expected[key] != shape for key, shape in shapes.items())


def load_transformer(
    folder: Path, head: str = "AutoModelForSequenceClassification", trust_remote_code: bool = False
) -> PreTrainedModel:
    """A Hugging Face model with the task's head (a transformers Auto class name) from `folder`, also when its
    saved layers are narrower than config.json says, or hold modules a compression method put in.

    Per-layer widths (heads and neurons a structured pruning removed) cannot be written in a config such as
    BertConfig. When the saved tensors differ from the config's shapes, the model is built from its config and
    each Linear and Embedding is resized to the saved tensor before loading; attention infers its head count
    from the projection width. Modules a method replaced (low-rank factors, codebooks, shared weights) are
    re-created first from the export's structure records.
    """
    auto = getattr(transformers, head)
    records = structure_records(folder)
    if not records and not _narrower_than_config(folder, auto):
        return auto.from_pretrained(folder, trust_remote_code=trust_remote_code)
    model = auto.from_config(AutoConfig.from_pretrained(folder, trust_remote_code=trust_remote_code))
    rebuild(model, records)
    state = load_file(str(folder / "model.safetensors"))
    for name, module in model.named_modules():
        weight = state.get(f"{name}.weight")
        if weight is None or not isinstance(module, nn.Linear | nn.Embedding) or weight.shape == module.weight.shape:
            continue
        if isinstance(module, nn.Linear):
            module.out_features, module.in_features = weight.shape
            module.bias = nn.Parameter(torch.empty(weight.shape[0])) if module.bias is not None else None
        else:
            module.num_embeddings = weight.shape[0]
        module.weight = nn.Parameter(torch.empty(weight.shape))
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = _not_shared(model, missing, state)
    if missing or unexpected:
        raise DistillError(f"{folder}: weights do not match the model (missing {missing}, unexpected {unexpected})")
    architecture = architecture_of(model, f"model in {folder}")
    for layer in architecture.layers(model):
        architecture.sync(model, layer)  # cached head counts follow the narrower weights
    return model


def _not_shared(model: nn.Module, missing: list[str], saved: dict[str, torch.Tensor]) -> list[str]:
    """The missing keys that are not another name of a saved tensor (shared weights are saved once)."""
    tensors = model.state_dict(keep_vars=True)
    loaded = {id(tensors[key]) for key in saved if key in tensors}
    return [key for key in missing if id(tensors[key]) not in loaded]
