"""The whole distill plugin API, on one page.

A plugin is a module (or object) with functions marked `@distill.hookimpl`, found through the
`distill.plugins` entry-point group. Call hooks with keyword arguments only, so that new arguments
never break old plugins. "Contribute" hooks return lists that the caller flattens.

Registration hooks are answered by installed plugin modules. Run hooks are answered by the compression
methods named in a config (`model.compression`), which a run registers on a manager of its own in
compounding order; per-step behaviour belongs in the Lightning callbacks they contribute.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path
    from typing import Any

    from lightning.pytorch import Callback, LightningDataModule
    from torch import Tensor, nn
    from transformers import PreTrainedTokenizerBase

    from distill.compression import Compression
    from distill.loss import LossTerm
    from distill.student import Student, StudentConfig
    from distill.teacher import Teacher

hookspec = pluggy.HookspecMarker("distill")
hookimpl = pluggy.HookimplMarker("distill")


# --- registration: names usable in YAML as soon as the plugin is pip-installed -------------------------------


@hookspec
def distill_register_losses() -> list[type[LossTerm]]:
    """Contribute LossTerm subclasses; YAML names them by class name under `model.losses`."""


@hookspec
def distill_register_students() -> list[type[StudentConfig]]:
    """Contribute StudentConfig subclasses (student families); YAML names them under `model.student`."""


@hookspec
def distill_register_compression() -> list[type[Compression]]:
    """Contribute Compression subclasses; YAML names them under `model.compression`."""


# --- student surgery (run hooks) -------------------------------------------------------------------------------


@hookspec
def distill_configure_student(student: Student, teacher: Teacher | None, data: LightningDataModule | None) -> None:
    """Prepare the student before the optimizers exist (Lightning's configure_model). Must be idempotent.

    Keep state in fixed-shape parameters and buffers (masks, gates), so checkpoints load before `data` is known.
    """


# --- training (run hooks) --------------------------------------------------------------------------------------


@hookspec
def distill_loss_terms(student: Student) -> list[LossTerm]:
    """Contribute loss terms this method trains with (e.g. exit-ramp losses); called after surgery."""


@hookspec
def distill_learning_rates(student: Student) -> dict[str, float]:
    """Learning rates for parts this method added, by attribute path within the student (e.g. "exit_ramps"):
    fresh heads on a trained student need more than the fine-tuning rate. Other parameters keep the run's."""


@hookspec(firstresult=True)
def distill_served_logits(student: Student, batch: Mapping[str, Tensor]) -> Tensor | None:
    """The logits the exported model will give on `batch`, where this method makes them differ from the student's
    own (early exit answers from a ramp). Validation scores these, so the best checkpoint is the best model as
    it will be served. Return None to leave the student's logits; the first non-None result is used."""


@hookspec
def distill_callbacks() -> list[Callback]:
    """Contribute Lightning callbacks for per-step work (masks after each optimizer step, schedules)."""


# --- export and report ------------------------------------------------------------------------------------------


@hookspec
def distill_finalize_student(student: Student) -> None:
    """Make the method permanent in the trained student before it is saved: remove masks, gates, fake-quant,
    and physically drop pruned units. Called in reverse compounding order, so each method finds the student
    as it left it."""


@hookspec
def distill_export_extras(student: Student, directory: Path) -> None:
    """Write what this method adds to an export folder after the student is saved (exit ramps, settings)."""


@hookspec
def distill_export_variants(directory: Path) -> list[Path]:
    """Contribute further exports made from the saved folder (e.g. an int8 copy); return their folders."""


@hookspec
def distill_report_sections(model: nn.Module) -> list[dict[str, Any]]:
    """Contribute report-card sections about a loaded export, measured after its evaluation: dicts with a
    "title" and a flat "data" mapping (e.g. heads kept per layer, the exit-layer histogram)."""


@hookspec
def distill_bench_variants(name: str, model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Contribute variants of a loaded model to measure beside it (e.g. early exit at several thresholds)."""


@hookspec(firstresult=True)
def distill_load_model(folder: Path) -> tuple[nn.Module, PreTrainedTokenizerBase] | None:
    """Load an exported model and its tokenizer if `folder` holds this plugin's format; else return None.

    Stops at the first non-None result. Folders saved in Hugging Face format need no plugin.
    """
