"""Writing a trained student where a user can take it: atomically, with its tokenizer and its card."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from transformers import PreTrainedTokenizerBase

from distill.architecture import architecture_of
from distill.atomic import atomic_directory, write_json_atomic
from distill.compression import Compression, export_variants, ordered, structures
from distill.delivery.folder import STRUCTURE_NAME, read_card, write_card
from distill.delivery.loading import load_model
from distill.delivery.measure import count_parameters, weights_size_on_disk
from distill.delivery.model_card import hub_name, write_model_card
from distill.errors import DistillError
from distill.registry import plugin_versions
from distill.student import Student
from distill.task import Task


def export_student(
    student: Student,
    tokenizer: PreTrainedTokenizerBase,
    target: Path,
    card: dict[str, Any],
    methods: Sequence[Compression] = (),
    task: Task | None = None,
) -> dict[str, Any]:
    """Save the student, its tokenizer, what the compression methods add, the task's own files (see
    `Task.export_files`) and its card into `target`; then let the methods derive further variants (such as int8)
    from the saved folder.

    Returns:
        The card as written.
    """
    with atomic_directory(target) as scratch:
        student.save(scratch)
        if records := structures(methods, student):
            write_json_atomic(scratch / STRUCTURE_NAME, {"records": records})
        for method in ordered(methods):
            method.export_extras(student, scratch)
        (student.tokenizer or tokenizer).save_pretrained(scratch)
        if task is not None:
            task.export_files(scratch)
        card = {
            **card,
            "student_family": student.anatomy.family,
            "parameters": count_parameters(student),
            "size_on_disk_bytes": weights_size_on_disk(scratch),
            "plugins": plugin_versions(),
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        write_card(scratch, card)
        write_model_card(scratch, card, None, "student", name=hub_name(target))
    if variants := export_variants(methods, target):
        card["variants"] = {path.name: weights_size_on_disk(path) for path in variants}
        write_card(target, card)
    return card


def export_depth(source: Path, layers: int, target: Path) -> dict[str, Any]:
    """`distill export --model SOURCE --layers N --out TARGET`: the export cut to N of its encoder layers, spread
    over the depth (a LayerDrop student keeps its accuracy there). Its card keeps the source's task and training
    record; the source's dev metrics are left out, since they belong to the whole model.

    Raises:
        DistillError: the export is not a Transformer of a family distill reads, or holds modules a method
            put in (their records name layers by position).
    """
    if (Path(source) / STRUCTURE_NAME).is_file():
        raise DistillError(
            f"{source} holds modules a compression method put in ({STRUCTURE_NAME}), which name layers by "
            f"position: cut the depth of an export made without them"
        )
    model, tokenizer = load_model(source)
    architecture = architecture_of(model, f"model in {source}")
    kept = architecture.keep_depth(model, layers)
    written = read_card(source)
    with atomic_directory(target) as scratch:
        model.save_pretrained(scratch)
        tokenizer.save_pretrained(scratch)
        card = {
            **{k: v for k, v in written.items() if k not in ("dev_metrics", "variants", "checkpoint")},
            "cut_from": str(source),
            "layers_kept": [i + 1 for i in kept],
            "parameters": count_parameters(model),
            "size_on_disk_bytes": weights_size_on_disk(scratch),
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        write_card(scratch, card)
    return card
