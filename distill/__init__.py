"""distill: knowledge distillation for BERT-style Transformers, on PyTorch Lightning, extended by plugins.

Everything a plugin needs is importable from here; the built-ins under students/ and plugins/ use nothing else.
"""

from __future__ import annotations

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
from distill.compression import Compression, Stage
from distill.delivery.folder import require_weights, variant_base
from distill.delivery.loading import load_model, load_transformer
from distill.delivery.measure import sparsity
from distill.embeddings import pca_basis, reduce_to
from distill.errors import DistillError
from distill.export_format import ExportFormat
from distill.features import FEATURE_NAMES, Anatomy, Features, TransformerTap
from distill.hf import head_logits, load_classifier, load_tokenizer
from distill.hookspecs import hookimpl
from distill.layers import LayerMap, resolve_layer_map
from distill.loss import LossTerm
from distill.reader import FileReader
from distill.schedule import Ramp
from distill.sources import DataFiles, DataSource, HubDataset
from distill.student import Student, StudentConfig
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
from distill.task import Preset, Task
from distill.teacher import Teacher
from distill.training.tokenizations import STUDENT_PREFIX
from distill.training.transfer import UNLABELLED

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
    "STUDENT_PREFIX",
    "UNLABELLED",
    "Anatomy",
    "Architecture",
    "Attention",
    "Compression",
    "DistillError",
    "ExportFormat",
    "Features",
    "FileReader",
    "DataFiles",
    "DataSource",
    "HubDataset",
    "LayerMap",
    "LossTerm",
    "Preset",
    "Record",
    "Ramp",
    "Stage",
    "Student",
    "StudentConfig",
    "Task",
    "Teacher",
    "TransformerTap",
    "architecture_of",
    "atomic_directory",
    "find_family",
    "hookimpl",
    "head_logits",
    "load_classifier",
    "load_model",
    "load_tokenizer",
    "load_transformer",
    "pca_basis",
    "reduce_to",
    "require_weights",
    "resolve_layer_map",
    "segment_ids",
    "slice_linear",
    "sparsity",
    "variant_base",
]
