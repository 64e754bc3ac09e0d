"""distill: knowledge distillation for BERT-style Transformers, on PyTorch Lightning, extended by plugins."""

from __future__ import annotations

from distill.compression import Compression, Stage
from distill.errors import DistillError
from distill.features import Anatomy, Features
from distill.hookspecs import hookimpl
from distill.loss import LossTerm
from distill.schedule import Ramp
from distill.student import Student, StudentConfig

__version__ = "0.1.0"
__all__ = [
    "Anatomy",
    "Compression",
    "DistillError",
    "Features",
    "LossTerm",
    "Ramp",
    "Stage",
    "Student",
    "StudentConfig",
    "hookimpl",
]
