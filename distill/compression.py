"""Compression methods: the objects named under `model.compression`, each a pluggy plugin for one run.

A method implements any of the run hooks in distill.hookspecs as `@hookimpl` methods. The run's plugin
manager calls them in stage order (structure, masks, fake-quant, exits), and in the declared order within
a stage; the distillation losses act last, on whatever the methods made of the student.
"""

from __future__ import annotations

import itertools
from enum import IntEnum
from typing import ClassVar

import pluggy

from distill import hookspecs
from distill.errors import DistillError
from distill.features import Anatomy
from distill.student import Student


class Stage(IntEnum):
    """When a method acts on the student, relative to the others."""

    STRUCTURE = 0  # which layers, units and word pieces exist
    MASKS = 1  # which weights are zero
    FAKE_QUANT = 2  # how weights and activations are rounded
    EXITS = 3  # extra classifiers on top of the result


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

    @property
    def name(self) -> str:
        return type(self).__name__


def ordered(methods: list[Compression]) -> list[Compression]:
    """Stage order, declared order within a stage."""
    return sorted(methods, key=lambda method: method.stage)


def check_combination(methods: list[Compression], student: Anatomy) -> None:
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


def finalize(manager: pluggy.PluginManager, student: Student) -> None:
    """Call distill_finalize_student in reverse compounding order: the last method applied is undone first
    (fake-quant comes off before masked units are cut out of the weights)."""
    for implementation in manager.hook.distill_finalize_student.get_hookimpls():  # registration order = reverse
        implementation.function(student=student)


def run_plugin_manager(methods: list[Compression]) -> pluggy.PluginManager:
    """A plugin manager holding only this run's methods, so hooks call them in compounding order.

    pluggy calls the last registered implementation first, so methods are registered in reverse order.
    """
    manager = pluggy.PluginManager("distill")
    manager.add_hookspecs(hookspecs)
    for position, method in reversed(list(enumerate(ordered(methods)))):
        manager.register(method, name=f"{position}:{method.name}")
    return manager
