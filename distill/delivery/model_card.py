"""The Hugging Face model card of an export (README.md), so a folder can be published as it is, and the upload."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import huggingface_hub
import yaml

from distill.atomic import write_text_atomic
from distill.delivery.folder import CARD_NAME, PIPELINES, card_dataset
from distill.delivery.report import table_markdown
from distill.errors import DistillError
from distill.hf import looks_like_path
from distill.registry import task_from_spec

README = "README.md"


def _metadata(card: dict[str, Any], name: str, metrics: dict[str, float]) -> dict[str, Any]:
    spec = card.get("task_spec") or card.get("task")  # a card written outside distill fit may name no task
    task = task_from_spec(spec) if spec else None
    pipeline = card.get("pipeline_tag") or (PIPELINES.get(task.head) if task else None)
    dataset = card_dataset(card)
    teacher = str(card.get("teacher") or "")
    meta: dict[str, Any] = {"tags": ["distill", "knowledge-distillation", *([task.name] if task else [])]}
    if teacher and not looks_like_path(teacher):  # a local teacher folder is no hub id to link to
        meta["base_model"] = teacher
    if dataset is not None:
        meta["datasets"] = [dataset.path]
    if pipeline:
        meta["pipeline_tag"] = pipeline
    if metrics and task:
        result: dict[str, Any] = {
            "task": {"type": pipeline or task.name},
            "dataset": {
                "name": f"{dataset.path} {dataset.name or ''}".strip() if dataset else f"{task.name} (own files)",
                "type": dataset.path if dataset else task.name,
                "split": "validation",
                **({"config": dataset.name} if dataset and dataset.name else {}),
            },
            "metrics": [{"type": key, "value": round(float(value), 4)} for key, value in metrics.items()],
        }
        meta["model-index"] = [{"name": name, "results": [result]}]
    return meta


def model_card(
    card: dict[str, Any], name: str, rows: list[dict[str, Any]] | None = None, model: str = "student"
) -> str:
    """README.md for an export: YAML metadata (base model = the teacher, datasets, task, the dev metrics with
    their values) and, when the report card measured it, its table against the teacher.

    Args:
        card: the export's card.json.
        name: the model's name on the hub (the repository name).
        rows: the report card's rows, if it was measured; their metrics are the ones stated.
        model: the row that is this folder's model (`student`, `student-int8`, `student-onnx-static_int8`).
    """
    row = next((r for r in rows or [] if r["model"] == model), None)
    if row is not None:
        metrics = {key.removeprefix("dev_"): value for key, value in row.items() if key.startswith("dev_")}
    elif model == "student":  # the card's metrics are the PyTorch student's, no variant's
        metrics = {k: v for k, v in (card.get("dev_metrics") or {}).items() if isinstance(v, int | float)}
    else:
        metrics = {}
    meta = _metadata(card, name, metrics)
    teacher = card.get("teacher") or "its teacher"
    parts = [
        "---",
        yaml.safe_dump(meta, sort_keys=False).strip(),
        "---",
        "",
        f"# {name}",
        "",
        f"A {card.get('student_family', 'student')} model distilled with distill from `{teacher}` for "
        f"{card.get('task', 'its task')}.",
    ]
    if rows:
        parts += [
            "",
            f"Measured against the teacher in one process on the validation split (this folder is `{model}`):",
            "",
            table_markdown(rows),
        ]
    elif metrics:
        stated = ", ".join(f"{key} {value:.4f}" for key, value in metrics.items())
        parts += ["", f"Validation metrics at the end of training: {stated}."]
    else:
        parts += ["", "Not measured yet: `distill bench` scores and times it against the teacher."]
    parts += ["", "Label a file with it: `distill predict --model <this folder> --input rows.csv`."]
    return "\n".join(parts) + "\n"


def hub_name(folder: Path) -> str:
    """The name a card gives an export: its run's for <run>/student, its export's for a variant subfolder."""
    folder = Path(folder)
    if folder.name == "student":
        return folder.parent.name
    return f"{hub_name(folder.parent)}-{folder.name}" if (folder.parent / CARD_NAME).is_file() else folder.name


def write_model_card(
    folder: Path, card: dict[str, Any], rows: list[dict[str, Any]] | None, model: str, name: str | None = None
) -> None:
    """README.md into `folder` (named after it unless `name` is given, as for a scratch folder)."""
    write_text_atomic(Path(folder) / README, model_card(card, name or hub_name(folder), rows, model))


def push_to_hub(folder: Path, repo: str, private: bool = False) -> str:
    """Upload an export folder as it is (its README.md is the model card) to a hub repository.

    Returns:
        The URL of the commit.

    Raises:
        DistillError: the folder has no model card, or the hub refused or could not be reached.
    """
    if not (Path(folder) / README).is_file():
        raise DistillError(f"{folder} has no {README} model card: export it with this distill version first")
    api = huggingface_hub.HfApi()
    try:
        api.create_repo(repo, private=private, exist_ok=True)
        commit = api.upload_folder(
            folder_path=str(folder), repo_id=repo, commit_message="distill export", ignore_patterns=[".*"]
        )
    except Exception as error:  # offline mode, HTTP and auth errors differ in type; each means "not pushed"
        raise DistillError(
            f"could not push {folder} to {repo} ({type(error).__name__}: {str(error).splitlines()[0][:200]}): "
            f"log in with `hf auth login` and check the network"
        ) from None
    return str(getattr(commit, "commit_url", commit))
