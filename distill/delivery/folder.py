"""The export folder, distill's product: its file names, its card, and the rules for the copies inside it.

Everything after fit that reads or writes an export's own files goes through here. The card records, when the
export is written, all that later readers need (the task, max_length, the dataset, the pipeline tag), so
nothing after fit has to ask the training side how the export was made.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from distill.atomic import write_json_atomic
from distill.errors import DistillError
from distill.registry import find_preset, task_from_spec
from distill.sources import HubDataset
from distill.task import Task

CARD_NAME = "card.json"
STRUCTURE_NAME = "distill_structure.json"  # modules a compression method put in place of the family's own
ONNX_DIR = "onnx"
ONNX_MODEL = "model.onnx"
PIPELINES = {  # a task's head (the transformers Auto class its export loads with) -> the hub's pipeline tag
    "AutoModelForSequenceClassification": "text-classification",
    "AutoModelForTokenClassification": "token-classification",
    "AutoModelForQuestionAnswering": "question-answering",
}


def model_folder(path: str | Path) -> Path:
    """The folder holding a model's card and tokenizer: the path itself, or the folder of an ONNX file."""
    path = Path(path)
    return path.parent if path.suffix == ".onnx" else path


def task_card(task: Task, max_length: int | None = None, dataset: HubDataset | None = None) -> dict[str, Any]:
    """What a card says of the task and its data: the task's name, its labels (in the order of the outputs) and
    its full spec, from which `distill predict` and `distill bench` rebuild it; the truncation length; the hub
    dataset the rows came from or are a copy of (None for a user's own files); and the hub's pipeline tag."""
    return {
        "task": task.name,
        "labels": task.labels,
        "task_spec": task.spec(),
        "max_length": max_length,
        "dataset": {"path": dataset.path, "name": dataset.name} if dataset else None,
        "pipeline_tag": PIPELINES.get(task.head),
    }


def read_card(path: str | Path) -> dict[str, Any]:
    """The card of the export at `path` (a folder, or an ONNX file in one). A copy directly inside an export
    (`int8/`) that has no card of its own shares the export's. Empty when there is none.

    Raises:
        DistillError: the card is not valid JSON.
    """
    folder = model_folder(path)
    card = folder / CARD_NAME
    if not card.is_file():
        card = folder.parent / CARD_NAME
    return _read(card) if card.is_file() else {}


def _read(card: Path) -> dict[str, Any]:
    try:
        return json.loads(card.read_text())
    except json.JSONDecodeError as error:
        raise DistillError(f"{card} is not valid JSON ({error}): re-export the model") from None


def write_card(folder: Path, card: dict[str, Any]) -> None:
    write_json_atomic(Path(folder) / CARD_NAME, card)


def card_task(path: str | Path) -> Task | None:
    """The task an export was trained for, from its card (None when there is no card, or it names no task)."""
    card = read_card(path)
    spec = card.get("task_spec") or card.get("task")  # cards written before task specs name a preset
    return task_from_spec(spec) if spec else None


def card_max_length(path: str | Path, default: int) -> int:
    """The truncation length an export was trained at, else `default`."""
    card = read_card(path)
    return card.get("max_length") or card.get("config", {}).get("data", {}).get("max_length") or default


def card_dataset(card: dict[str, Any]) -> HubDataset | None:
    """The hub dataset an export was trained on. Cards written before it was recorded have it from their config's
    data.hub, or from their task preset's hub dataset."""
    if "dataset" in card:
        return HubDataset(**card["dataset"]) if card["dataset"] else None
    data = card.get("config", {}).get("data", {})
    if data.get("files"):
        return None
    if data.get("hub"):
        return HubDataset(**data["hub"])
    try:
        return find_preset(card["task"])[1].hub if isinstance(card.get("task"), str) else None
    except DistillError:  # a task class's name, not a preset
        return None


def export_variants_in(folder: Path) -> dict[str, Path]:
    """The copies an export holds beside its own weights, by the name a report gives them: each subfolder that
    holds weights (`int8`), and each ONNX file of its onnx/ folder (`onnx-fp32` for model.onnx, `onnx-static_int8`
    for model_static_int8.onnx). A subfolder of settings only (sentence-transformers' 1_Pooling) is none."""
    found: dict[str, Path] = {}
    for sub in sorted(p for p in Path(folder).iterdir() if p.is_dir() and not p.name.startswith(".")):
        if (sub / ONNX_MODEL).is_file():
            for file in sorted(sub.glob("*.onnx")):
                found[f"{sub.name}-{file.stem.removeprefix('model').lstrip('_') or 'fp32'}"] = file
        elif any(sub.glob("*.safetensors")) or any(sub.glob("*.pt")):
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


def structure_records(folder: Path) -> list[dict[str, Any]]:
    """The structure records an export holds (empty when no method put in modules of its own)."""
    path = Path(folder) / STRUCTURE_NAME
    return json.loads(path.read_text())["records"] if path.is_file() else []
