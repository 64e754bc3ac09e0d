"""The hooks installed packages answer, on one page.

A plugin is a module with functions marked `@distill.hookimpl`, found through the `distill.plugins`
entry-point group. Hooks are called with keyword arguments only, so new arguments never break old plugins.
"Contribute" hooks return lists that the caller flattens.

pluggy only discovers what is installed and collects what it registers. What a compression method does during
a run is a set of methods on its `distill.Compression` base class, called by the core in stage order.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from distill.architecture import Architecture
    from distill.augmentation import Augmentation
    from distill.compression import Compression
    from distill.export_format import ExportFormat, OnnxVariant
    from distill.loss import LossTerm
    from distill.reader import FileReader
    from distill.student import StudentConfig
    from distill.task import Task
    from distill.teacher import BaseTeacher

hookspec = pluggy.HookspecMarker("distill")
hookimpl = pluggy.HookimplMarker("distill")


# --- registration: names usable in YAML as soon as the plugin is pip-installed -------------------------------


@hookspec
def distill_register_tasks() -> list[type[Task]]:
    """Contribute Task subclasses; YAML names them under `data.task` (by class_path, or by a preset name that
    the class's `presets()` offers, such as `sst2`)."""


@hookspec
def distill_register_losses() -> list[type[LossTerm]]:
    """Contribute LossTerm subclasses; YAML names them by class name under `model.losses`."""


@hookspec
def distill_register_students() -> list[type[StudentConfig]]:
    """Contribute StudentConfig subclasses (student families); YAML names them under `model.student`."""


@hookspec
def distill_register_compression() -> list[type[Compression]]:
    """Contribute Compression subclasses; YAML names them under `model.compression`."""


@hookspec
def distill_register_architectures() -> list[type[Architecture]]:
    """Contribute Architecture subclasses: adapters that let distill read and reshape an encoder family (the
    `config.model_type` values each lists), as teacher and as student."""


@hookspec
def distill_register_export_formats() -> list[type[ExportFormat]]:
    """Contribute ExportFormat subclasses: ways of reading an export after fit (a folder layout to load, the
    modules a method leaves for `rebuild`, report sections, bench variants, an ONNX stand-in)."""


@hookspec
def distill_register_onnx_variants() -> list[type[OnnxVariant]]:
    """Contribute OnnxVariant subclasses: copies of an export's float ONNX graph for serving (int8), written into
    its onnx/ folder and measured beside the others."""


@hookspec
def distill_register_augmentations() -> list[type[Augmentation]]:
    """Contribute Augmentation subclasses: ways to grow the training split with rows the teacher labels;
    YAML names them under `data.augmentation`."""


@hookspec
def distill_register_readers() -> list[type[FileReader]]:
    """Contribute FileReader subclasses: file layouts beyond CSV, TSV, JSON, JSONL and Parquet that data.files
    and `distill predict` read (a task plugin brings the layout its task reads)."""


@hookspec
def distill_register_teachers() -> list[type[BaseTeacher]]:
    """Contribute BaseTeacher subclasses: kinds of teacher beyond a Hugging Face model (a soft-label file, a causal
    LM); YAML names them under `model.teacher` by class_path, or by a string their `claims` accepts."""
