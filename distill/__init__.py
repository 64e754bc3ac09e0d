"""distill: knowledge distillation for BERT-style Transformers, on PyTorch Lightning, extended by plugins.

Everything a plugin needs is importable from here; the built-ins under students/ and plugins/ use nothing else.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# Where each public name lives. They are imported on first use (PEP 562), so a command that needs few of them
# (`distill --help`, `distill plugins`) does not pay for torch, Lightning and transformers all at once.
_PUBLIC = {
    "Architecture": "distill.architecture",
    "lazy_module": "distill.lazy",
    "Attention": "distill.architecture",
    "Record": "distill.architecture",
    "architecture_of": "distill.architecture",
    "find_family": "distill.architecture",
    "segment_ids": "distill.architecture",
    "slice_linear": "distill.architecture",
    "atomic_directory": "distill.atomic",
    "Compression": "distill.compression",
    "Stage": "distill.compression",
    "require_weights": "distill.delivery.folder",
    "variant_base": "distill.delivery.folder",
    "load_model": "distill.delivery.loading",
    "load_transformer": "distill.delivery.loading",
    "sparsity": "distill.delivery.measure",
    "pca_basis": "distill.embeddings",
    "reduce_to": "distill.embeddings",
    "DistillError": "distill.errors",
    "ExportFormat": "distill.export_format",
    "OnnxVariant": "distill.export_format",
    "Anatomy": "distill.features",
    "FEATURE_NAMES": "distill.features",
    "Features": "distill.features",
    "TransformerTap": "distill.features",
    "head_logits": "distill.hf",
    "load_classifier": "distill.hf",
    "load_tokenizer": "distill.hf",
    "hookimpl": "distill.hookspecs",
    "LayerMap": "distill.layers",
    "resolve_layer_map": "distill.layers",
    "LossTerm": "distill.loss",
    "FileReader": "distill.reader",
    "Ramp": "distill.schedule",
    "DataFiles": "distill.sources",
    "load_table": "distill.sources",
    "file_format": "distill.sources",
    "row_place": "distill.sources",
    "DataSource": "distill.sources",
    "HubDataset": "distill.sources",
    "Student": "distill.student",
    "StudentConfig": "distill.student",
    "LAYER_TYPES": "distill.surgery",
    "add_between_layers": "distill.surgery",
    "between_layers": "distill.surgery",
    "hf_model": "distill.surgery",
    "layer_linears": "distill.surgery",
    "module_paths": "distill.surgery",
    "readable": "distill.surgery",
    "replace_module": "distill.surgery",
    "GROUP": "distill.task",
    "Preset": "distill.task",
    "Task": "distill.task",
    "Teacher": "distill.teacher",
    "BaseTeacher": "distill.teacher",
    "require_teacher_model": "distill.teacher",
    "Ensemble": "distill.teachers",
    "build_teacher": "distill.teachers",
    "TaskOutput": "distill.teacher",
    "STUDENT_PREFIX": "distill.training.tokenizations",
    "STUDENT_META": "distill.student",
    "StudentClassifier": "distill.student",
    "UNLABELLED": "distill.augmentation",
    "Augmentation": "distill.augmentation",
}

if TYPE_CHECKING:  # type checkers and IDEs see ordinary imports
    from distill.architecture import (
        Architecture,
        Attention,
        Record,
        architecture_of,
        find_family,
        segment_ids,
        slice_linear,
    )
    from distill.atomic import atomic_directory
    from distill.augmentation import UNLABELLED, Augmentation
    from distill.compression import Compression, Stage
    from distill.delivery.folder import require_weights, variant_base
    from distill.delivery.loading import load_model, load_transformer
    from distill.delivery.measure import sparsity
    from distill.embeddings import pca_basis, reduce_to
    from distill.errors import DistillError
    from distill.export_format import ExportFormat, OnnxVariant
    from distill.features import FEATURE_NAMES, Anatomy, Features, TransformerTap
    from distill.hf import head_logits, load_classifier, load_tokenizer
    from distill.hookspecs import hookimpl
    from distill.layers import LayerMap, resolve_layer_map
    from distill.loss import LossTerm
    from distill.reader import FileReader
    from distill.schedule import Ramp
    from distill.sources import DataFiles, DataSource, HubDataset, file_format, load_table, row_place
    from distill.student import STUDENT_META, Student, StudentClassifier, StudentConfig
    from distill.surgery import (
        LAYER_TYPES,
        add_between_layers,
        between_layers,
        hf_model,
        layer_linears,
        module_paths,
        readable,
        replace_module,
    )
    from distill.task import GROUP, Preset, Task
    from distill.teacher import BaseTeacher, TaskOutput, Teacher, require_teacher_model
    from distill.teachers import Ensemble, build_teacher
    from distill.training.tokenizations import STUDENT_PREFIX


def __getattr__(name: str) -> Any:
    if name not in _PUBLIC:
        raise AttributeError(f"module 'distill' has no attribute {name!r}")
    value = getattr(importlib.import_module(_PUBLIC[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_PUBLIC])


__version__ = "0.1.0"
__all__ = [
    "LAYER_TYPES",
    "add_between_layers",
    "between_layers",
    "hf_model",
    "layer_linears",
    "module_paths",
    "readable",
    "replace_module",
    "FEATURE_NAMES",
    "GROUP",
    "STUDENT_META",
    "STUDENT_PREFIX",
    "UNLABELLED",
    "Anatomy",
    "Architecture",
    "Attention",
    "Augmentation",
    "BaseTeacher",
    "Compression",
    "DistillError",
    "Ensemble",
    "ExportFormat",
    "Features",
    "FileReader",
    "DataFiles",
    "DataSource",
    "HubDataset",
    "LayerMap",
    "LossTerm",
    "OnnxVariant",
    "Preset",
    "Record",
    "Ramp",
    "Stage",
    "Student",
    "StudentClassifier",
    "StudentConfig",
    "Task",
    "TaskOutput",
    "Teacher",
    "TransformerTap",
    "architecture_of",
    "atomic_directory",
    "build_teacher",
    "file_format",
    "find_family",
    "hookimpl",
    "head_logits",
    "load_classifier",
    "lazy_module",
    "load_table",
    "load_model",
    "load_tokenizer",
    "load_transformer",
    "pca_basis",
    "reduce_to",
    "require_weights",
    "require_teacher_model",
    "resolve_layer_map",
    "row_place",
    "segment_ids",
    "slice_linear",
    "sparsity",
    "variant_base",
]
