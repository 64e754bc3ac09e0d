"""Loading any exported model: a plugin's own format first, Hugging Face format otherwise."""

from __future__ import annotations

import json
from pathlib import Path

import torch
import transformers
from safetensors import safe_open
from safetensors.torch import load_file
from torch import nn
from transformers import AutoConfig, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from distill.architecture import architecture_of
from distill.compression import rebuild
from distill.errors import DistillError
from distill.hf import check_remote_code
from distill.registry import get_plugin_manager, registered, task_from_spec
from distill.student import STUDENT_META, Student, StudentClassifier
from distill.task import Task

CARD_NAME = "card.json"
STRUCTURE_NAME = "distill_structure.json"  # modules a compression method put in place of the family's own


def _registered_family(folder: Path) -> type[Student]:
    family = json.loads((folder / STUDENT_META).read_text())["family"]
    families = {config.student_class.family: config.student_class for config, _ in registered("students").values()}
    if family not in families:
        raise DistillError(
            f"{folder} holds a {family!r} student, and no installed plugin provides that family: "
            f"install it (`distill plugins` lists what is installed)"
        )
    return families[family]


def card_task(folder: Path) -> Task | None:
    """The task an export was trained for, from its card (None when there is no card, or it names no task)."""
    card = model_folder(folder) / CARD_NAME
    if not card.is_file():
        return None
    written = json.loads(card.read_text())
    spec = written.get("task_spec") or written.get("task")  # cards written before task specs name a preset
    return task_from_spec(spec) if spec else None


def card_max_length(folder: Path, default: int) -> int:
    """The truncation length an export was trained at (its card's data.max_length), else `default`."""
    card = model_folder(folder) / CARD_NAME
    if not card.is_file():
        return default
    return json.loads(card.read_text()).get("config", {}).get("data", {}).get("max_length") or default


ONNX_MODEL = "model.onnx"


def serving():
    """distill's ONNX serving module, which needs the `onnx` extra.

    Raises:
        DistillError: onnxruntime or onnx is not installed.
    """
    try:
        from distill.delivery import serving
    except ImportError as error:
        raise DistillError(f"ONNX needs {error.name}, which is not installed: pip install 'distill[onnx]'") from None
    return serving


def model_folder(path: str | Path) -> Path:
    """The folder holding a model's card and tokenizer: the path itself, or the folder of an ONNX file."""
    path = Path(path)
    return path.parent if path.suffix == ".onnx" else path


def export_variants_in(folder: Path) -> dict[str, Path]:
    """The copies an export holds beside its own weights, by the name a report gives them: each subfolder
    (`int8`), and each ONNX file of its onnx/ folder (`onnx-fp32` for model.onnx, `onnx-static_int8` for
    model_static_int8.onnx)."""
    found: dict[str, Path] = {}
    for sub in sorted(p for p in Path(folder).iterdir() if p.is_dir() and not p.name.startswith(".")):
        if (sub / ONNX_MODEL).is_file():
            for file in sorted(sub.glob("*.onnx")):
                found[f"{sub.name}-{file.stem.removeprefix('model').lstrip('_') or 'fp32'}"] = file
        else:
            found[sub.name] = sub
    return found


def variant_base(variant: Path, base: str) -> Path:
    """The folder an export variant (such as `int8/`) was made from, which it names relative to itself.

    Raises:
        DistillError: it names a folder that is not above the variant (the variant itself, a folder inside it, or
            a sibling), which could load in a circle.
    """
    resolved, own = (Path(variant) / base).resolve(), Path(variant).resolve()
    if resolved not in own.parents:
        raise DistillError(
            f"{variant} names {base!r} as the export it was made from, which is not a folder above it: a variant's "
            f'base is the export folder that holds it (".."); re-export the variant from its export'
        )
    return resolved


def require_weights(folder: Path, weights: str, pickled: str, method: str) -> Path:
    """The safetensors file an export variant keeps its weights in.

    Raises:
        DistillError: it is missing; when the variant still holds the pickle an older distill wrote, which is never
            loaded, the message says so. Either way it says how to re-export the variant with `method`.
    """
    if (folder / weights).is_file():
        return folder / weights
    old = f" (its {pickled} is a pickle, which distill no longer loads)" if (folder / pickled).exists() else ""
    raise DistillError(
        f"{folder} has no {weights}{old}: remove {folder} and re-export it with "
        f"`distill export --model {folder.parent} --variants [{method}]`"
    )


def load_model(folder: str | Path, trust_remote_code: bool = False) -> tuple[nn.Module, PreTrainedTokenizerBase]:
    """The model in `folder` (eval mode) and its tokenizer. `folder` may also be an ONNX file of an export
    (`student/onnx/model_static_int8.onnx`), or its onnx/ folder (which serves model.onnx). Nothing in the folder
    runs as code: a folder that ships Python for transformers (auto_map) is refused unless `trust_remote_code`.

    Raises:
        DistillError: the folder does not exist, ships code that is not trusted, or holds no model any installed
            plugin can read.
    """
    folder = Path(folder)
    if folder.suffix == ".onnx" or (folder / ONNX_MODEL).is_file():
        path = folder if folder.suffix == ".onnx" else folder / ONNX_MODEL
        if not path.is_file():
            raise DistillError(
                f"ONNX file {path} does not exist: `distill export --model EXPORT --onnx true` writes an export's"
            )
        check_remote_code(path.parent, "model", trust_remote_code)
        return serving().load_onnx(path), AutoTokenizer.from_pretrained(path.parent)
    if not folder.is_dir():
        problem = "is a file, not a folder" if folder.is_file() else "does not exist"
        raise DistillError(
            f"model folder {folder} {problem}: give a folder written by `distill fit` or "
            f"`distill export`, or a Hugging Face save_pretrained folder"
        )
    check_remote_code(folder, "model", trust_remote_code)
    loaded = get_plugin_manager().hook.distill_load_model(folder=folder)
    if loaded is None and (folder / STUDENT_META).is_file():
        loaded = StudentClassifier(_registered_family(folder).load(folder)), AutoTokenizer.from_pretrained(folder)
    if loaded is None:
        if not (folder / "config.json").is_file():
            raise DistillError(
                f"{folder} holds neither a Hugging Face model (config.json) nor a format of an "
                f"installed plugin (see `distill plugins`)"
            )
        task = card_task(folder)
        head = task.head if task is not None else "AutoModelForSequenceClassification"
        tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=trust_remote_code)
        loaded = load_transformer(folder, head, trust_remote_code), tokenizer
    model, tokenizer = loaded
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
    records = _structure_records(folder)
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


def _structure_records(folder: Path) -> list[dict]:
    path = folder / STRUCTURE_NAME
    return json.loads(path.read_text())["records"] if path.is_file() else []


def _not_shared(model: nn.Module, missing: list[str], saved: dict[str, torch.Tensor]) -> list[str]:
    """The missing keys that are not another name of a saved tensor (shared weights are saved once)."""
    tensors = model.state_dict(keep_vars=True)
    loaded = {id(tensors[key]) for key in saved if key in tensors}
    return [key for key in missing if id(tensors[key]) not in loaded]
