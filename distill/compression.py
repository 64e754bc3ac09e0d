"""Compression methods: the objects named under `model.compression`.

A method is a Compression subclass that overrides the lifecycle methods it needs, as a Lightning Callback
overrides hooks; every one does nothing by default. The core calls them in stage order (structure, masks,
fake-quant, exits), in the declared order within a stage, and `finalize` in reverse; the distillation
losses act last, on whatever the methods made of the student. Per-step work belongs in the Lightning
callbacks a method returns from `callbacks`.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from enum import IntEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from torch import Tensor

from distill.errors import DistillError
from distill.features import Anatomy
from distill.student import Student

if TYPE_CHECKING:
    from lightning.pytorch import Callback, LightningDataModule

    from distill.loss import LossTerm
    from distill.teacher import Teacher


class Stage(IntEnum):
    """When a method acts on the student, relative to the others."""

    STRUCTURE = 0  # which layers, units and word pieces exist
    MASKS = 1  # which weights are zero
    FAKE_QUANT = 2  # how weights and activations are rounded
    EXITS = 3  # extra classifiers on top of the result


RENAMED_HOOKS = {  # the per-run pluggy hooks a compression method once implemented, and their methods now
    "distill_configure_student": "configure_student",
    "distill_loss_terms": "loss_terms",
    "distill_learning_rates": "learning_rates",
    "distill_served_logits": "served_logits",
    "distill_callbacks": "callbacks",
    "distill_finalize_student": "finalize",
    "distill_export_extras": "export_extras",
    "distill_export_variants": "export_variants",
}
READ_BY_FORMATS = (  # reading an export, once on the method and now on distill.ExportFormat
    "rebuild",
    "report_sections",
    "bench_variants",
    "onnx_network",
    "distill_report_sections",
    "distill_bench_variants",
)


class Compression:
    """Base of every compression method.

    Class attributes:
        stage: where the method acts in the compounding order.
        requires: student features it needs (e.g. "attentions" for head pruning).
        excludes: names of methods it cannot run with, each with the reason.

    `settled_at` is the fraction of training after which the method no longer changes the model's structure
    (a pruning schedule's end); checkpoints from before it are never selected as the best.
    """

    stage: ClassVar[Stage]
    requires: ClassVar[frozenset[str]] = frozenset()
    excludes: ClassVar[dict[str, str]] = {}
    settled_at: float = 0.0

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Refuse, when the plugin is imported, a method written for the earlier contract: its `distill_*`
        hook methods would otherwise be ignored without a word."""
        super().__init_subclass__(**kwargs)
        for name, value in vars(cls).items():
            if name in READ_BY_FORMATS:
                raise DistillError(
                    f"compression method {cls.__name__} defines {name}, which reading an export no longer calls on a "
                    f"method: move it to a distill.ExportFormat subclass registered with "
                    f"distill_register_export_formats (docs/plugins.md, 'Reading exports')"
                )
            if name.startswith("distill_") or hasattr(value, "distill_impl"):
                new = RENAMED_HOOKS.get(name)
                fix = f"rename it {new} and drop @hookimpl" if new else "no such lifecycle method exists"
                raise DistillError(
                    f"compression method {cls.__name__} defines {name}, a hook of the earlier plugin contract that "
                    f"is no longer called: {fix} (docs/plugins.md, 'Migrating from the hook methods')"
                )

    @property
    def name(self) -> str:
        return type(self).__name__

    # --- before training ------------------------------------------------------------------------------------

    def configure_student(self, student: Student, teacher: Teacher | None, data: LightningDataModule | None) -> None:
        """Prepare the student before the optimizers exist (Lightning's configure_model). Must be idempotent.

        Keep state in fixed-shape parameters and buffers (masks, gates), so checkpoints load before `data` is known.
        """

    def loss_terms(self, student: Student) -> list[LossTerm]:
        """Loss terms this method trains with (e.g. exit-ramp losses); called after `configure_student`."""
        return []

    def learning_rates(self, student: Student) -> dict[str, float]:
        """Learning rates for parts this method added, by attribute path within the student (e.g. "exit_ramps"):
        fresh heads on a trained student need more than the fine-tuning rate. Other parameters keep the run's."""
        return {}

    def callbacks(self) -> list[Callback]:
        """Lightning callbacks for per-step work (masks after each optimizer step, schedules), state included."""
        return []

    # --- validation -----------------------------------------------------------------------------------------

    def served_logits(self, student: Student, batch: Mapping[str, Tensor]) -> Tensor | None:
        """The logits the exported model will give on `batch`, where this method makes them differ from the
        student's own (early exit answers from a ramp); None leaves them. Validation scores these, so the best
        checkpoint is the best model as it will be served. The last method (in stage order) to answer wins: it
        serves the student as the earlier ones made it, so it must include their effect."""
        return None

    # --- export ---------------------------------------------------------------------------------------------

    def shortfall(self) -> str | None:
        """What this method set out to do in the run and did not (a pruning schedule the run ended before), said
        in the log and on the card; None when it reached its target."""
        return None

    def finalize(self, student: Student) -> None:
        """Make the method permanent before the student is saved: remove masks, gates and fake-quant, and cut
        pruned units out. Called in reverse stage order, so each method finds the student as it left it."""

    def structure(self, student: Student) -> dict[str, Any] | None:
        """What an ExportFormat's `rebuild` needs to re-create the modules this method put in place of the family's
        own (low-rank factors, a codebook, shared weights), which config.json cannot describe; None when it put
        none. Called on the finalized student; the export records it under the method's name, and loading replays
        it before the weights load."""
        return None

    def export_extras(self, student: Student, directory: Path) -> None:
        """Write what this method adds to the export folder after the student is saved (ramps, settings)."""

    def export_variants(self, directory: Path) -> list[Path]:
        """Further exports made from the saved folder (e.g. an int8 copy); returns their folders."""
        return []


def ordered(methods: Sequence[Compression]) -> list[Compression]:
    """Stage order, declared order within a stage."""
    return sorted(methods, key=lambda method: method.stage)


def check_combination(methods: Sequence[Compression], student: Anatomy) -> None:
    """Refuse, before any training, a method the student cannot host or two methods that cannot compound.

    Raises:
        DistillError: naming the method and the student, or both methods, and why.
    """
    for method in methods:
        if missing := method.requires - student.provides:
            raise DistillError(
                f"{method.name} needs a student with {sorted(missing)}; the {student.family} student provides only "
                f"{sorted(student.provides)}"
            )
    for first, second in itertools.combinations(methods, 2):
        reason = first.excludes.get(second.name) or second.excludes.get(first.name)
        if type(first) is type(second):
            reason = "the same method is named twice"
        if reason:
            raise DistillError(f"{first.name} and {second.name} cannot run together: {reason}")


def shortfalls(methods: Sequence[Compression]) -> list[str]:
    """What each method did not reach, by method name."""
    return [f"{method.name}: {note}" for method in ordered(methods) if (note := method.shortfall())]


def finalize(methods: Sequence[Compression], student: Student) -> None:
    """Finalize in reverse compounding order: the last method applied is undone first (fake-quant comes off
    before masked units are cut out of the weights)."""
    for method in reversed(ordered(methods)):
        method.finalize(student)


def served_logits(methods: Sequence[Compression], student: Student, batch: Mapping[str, Tensor]) -> Tensor | None:
    """The answer of the last method, in stage order, that changes what the export serves; None if none does."""
    return next(
        (
            logits
            for method in reversed(ordered(methods))
            if (logits := method.served_logits(student, batch)) is not None
        ),
        None,
    )


def structures(methods: Sequence[Compression], student: Student) -> list[dict[str, Any]]:
    """The structure records of the methods that replaced modules, in the order they were applied."""
    return [
        {"method": method.name, "settings": settings}
        for method in ordered(methods)
        if (settings := method.structure(student)) is not None
    ]


def export_variants(methods: Sequence[Compression], directory: Path) -> list[Path]:
    """Every method's further exports of the saved folder, in stage order."""
    return [path for method in ordered(methods) for path in method.export_variants(directory)]
