"""Unstructured pruning: individual weights of the student's Linear layers are zeroed by masks that follow
a gradual cubic sparsity schedule (Zhu & Gupta, 2017) and are enforced after every optimizer step.

Magnitude pruning keeps the largest |w|; movement pruning (Sanh et al., 2020) keeps the weights moving
away from zero, scored by S = −Σ_t w·∂L/∂w over training. The zeros are the export: no masks remain.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize
from typing_extensions import override

from distill import Compression, DistillError, ExportFormat, Stage, Student, sparsity

if TYPE_CHECKING:
    from lightning.pytorch import Callback


def cubic_sparsity(progress: float, target: float, begin: float, end: float) -> float:
    """Zhu & Gupta's schedule: 0 before `begin`, `target` after `end`, s·(1 − (1 − t)³) in between."""
    t = min(max((progress - begin) / (end - begin), 0.0), 1.0)
    return target * (1 - (1 - t) ** 3)


def prunable(student: Student) -> dict[str, nn.Parameter]:
    """Weights of every Linear layer except the output classifier (whose rows are the labels); for a layer
    that fake-quantisation parametrised, the underlying parameter."""
    num_labels = student.anatomy.num_labels
    return {
        f"{name}.weight": parametrize_original(module)
        for name, module in student.named_modules()
        if isinstance(module, nn.Linear) and module.out_features != num_labels
    }


def parametrize_original(module: nn.Module) -> nn.Parameter:
    if parametrize.is_parametrized(module, "weight"):
        return module.parametrizations.weight.original
    return module.weight


def keep_largest(scores: dict[str, Tensor], sparsity: float, scope: str) -> dict[str, Tensor]:
    """Boolean masks keeping the (1 − sparsity) highest-scoring weights, over all layers or per layer."""
    if sparsity <= 0:
        return {name: torch.ones_like(s, dtype=torch.bool) for name, s in scores.items()}
    if scope == "global":
        flat = torch.cat([s.flatten() for s in scores.values()])
        threshold = torch.kthvalue(flat, max(int(sparsity * flat.numel()), 1)).values
        return {name: s > threshold for name, s in scores.items()}
    return {
        name: s > torch.kthvalue(s.flatten(), max(int(sparsity * s.numel()), 1)).values for name, s in scores.items()
    }


@dataclass(eq=False)
class MagnitudePruning(Compression):
    """Unstructured magnitude pruning with a cubic schedule.

    Attributes:
        sparsity: final fraction of zero weights in the pruned layers.
        scope: "global" ranks all layers together; "layer" prunes each layer to the same sparsity.
        begin: fraction of training when pruning starts.
        end: fraction of training when the target is reached (and checkpoints become eligible as best).
        every: optimizer steps between mask updates.
    """

    sparsity: float = 0.5
    scope: Literal["global", "layer"] = "global"
    begin: float = 0.0
    end: float = 0.7
    every: int = 10

    stage: ClassVar[Stage] = Stage.MASKS
    criterion: ClassVar[str] = "magnitude"
    excludes: ClassVar[dict[str, str]] = {"MovementPruning": "both set unstructured masks on the same weights"}

    def __post_init__(self) -> None:
        if not 0.0 <= self.sparsity < 1.0 or not 0.0 <= self.begin < self.end <= 1.0:
            raise DistillError(f"{self.name} needs 0 <= sparsity < 1 and 0 <= begin < end <= 1")
        self.settled_at = self.end

    @override
    def callbacks(self) -> list[Callback]:
        from distill.plugins.pruning.callbacks import UnstructuredMasks  # Lightning is imported only to train

        return [UnstructuredMasks(self)]

    def scores(self, weights: dict[str, nn.Parameter], movement: dict[str, Tensor]) -> dict[str, Tensor]:
        return {name: w.detach().abs() for name, w in weights.items()}


@dataclass(eq=False)
class MovementPruning(MagnitudePruning):
    """Unstructured movement pruning (first-order, hard masks) with a cubic schedule; same settings as
    MagnitudePruning."""

    criterion: ClassVar[str] = "movement"
    excludes: ClassVar[dict[str, str]] = {"MagnitudePruning": "both set unstructured masks on the same weights"}

    def scores(self, weights: dict[str, nn.Parameter], movement: dict[str, Tensor]) -> dict[str, Tensor]:
        return movement


class SparseExport(ExportFormat):
    """A model whose Linear weights are mostly zeros."""

    @classmethod
    @override
    def report_sections(cls, model: nn.Module) -> list[dict[str, Any]]:
        """The fraction of zero weights per Linear layer, for models with more than 1% of them."""
        measured = sparsity(model)
        return [{"title": "Sparsity of the Linear weights", "data": measured}] if measured["overall"] > 0.01 else []
