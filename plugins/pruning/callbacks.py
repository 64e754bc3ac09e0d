"""The pruning methods' training callbacks, in a module of their own so that listing or loading a plugin does not
import Lightning."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from torch import Tensor, nn
from typing_extensions import override

from distill import hf_model
from distill.plugins.pruning.unstructured import cubic_sparsity, keep_largest, prunable

if TYPE_CHECKING:
    from distill.plugins.pruning.structured import _GatedPruning
    from distill.plugins.pruning.unstructured import MagnitudePruning


class GateScoring(Callback):
    """Scores gates by |∂L/∂gate| over `batches` training batches starting at `at`, then lets the method prune."""

    def __init__(self, method: _GatedPruning) -> None:
        self.method = method
        self.importance: list[Tensor] | None = None
        self.seen = 0
        self.done = False
        method.scored = 0

    @property
    @override
    def state_key(self) -> str:
        return f"GateScoring[{self.method.name}]"

    def _gates(self, pl_module: LightningModule) -> list[Tensor]:
        return self.method.gates(*hf_model(pl_module.student, self.method.name))

    @override
    def on_train_batch_start(self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int) -> None:
        scoring = not self.done and pl_module.progress() >= self.method.at
        for gate in self._gates(pl_module):
            gate.requires_grad_(scoring)

    @override
    def on_before_optimizer_step(self, trainer: Trainer, pl_module: LightningModule, optimizer: Any) -> None:
        gates = self._gates(pl_module)
        if self.done or gates[0].grad is None:
            return
        if self.importance is None:
            self.importance = [torch.zeros_like(g) for g in gates]
        for total, gate in zip(self.importance, gates, strict=True):
            total += gate.grad.abs()
            gate.grad = None
        self.seen += 1
        self.method.scored = self.seen
        if self.seen >= self.method.batches:
            with torch.no_grad():
                self.method.prune(gates, self.importance)
            for gate in gates:
                gate.requires_grad_(False)
            self.done = True
            pl_module.log(f"pruning/{self.method.name}_kept", float(sum(g.sum() for g in gates)))

    @override
    def state_dict(self) -> dict[str, Any]:
        return {"importance": self.importance, "seen": self.seen, "done": self.done}

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.importance, self.seen, self.done = state_dict["importance"], state_dict["seen"], state_dict["done"]
        self.method.scored = self.seen


class UnstructuredMasks(Callback):
    """Owns the masks (and movement scores): updates them on schedule, applies them after each step,
    logs sparsity, and keeps them in checkpoints."""

    def __init__(self, method: MagnitudePruning) -> None:
        self.method = method
        self.masks: dict[str, Tensor] = {}
        self.movement: dict[str, Tensor] = {}
        self.weights: dict[str, nn.Parameter] = {}

    @property
    @override
    def state_key(self) -> str:
        return f"UnstructuredMasks[{self.method.criterion}]"

    @override
    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.weights = prunable(pl_module.student)
        for name, weight in self.weights.items():
            self.masks.setdefault(name, torch.ones_like(weight, dtype=torch.bool))
            if self.method.criterion == "movement":
                self.movement.setdefault(name, torch.zeros_like(weight))
        self._apply()

    @override
    def on_before_optimizer_step(self, trainer: Trainer, pl_module: LightningModule, optimizer: Any) -> None:
        if self.method.criterion == "movement":
            for name, weight in self.weights.items():
                if weight.grad is not None:
                    self.movement[name] -= weight.grad.detach() * weight.detach()

    @override
    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs, batch, batch_idx) -> None:
        step = trainer.global_step
        if step % self.method.every == 0 or step >= trainer.estimated_stepping_batches:
            target = cubic_sparsity(pl_module.progress(), self.method.sparsity, self.method.begin, self.method.end)
            self.masks = keep_largest(self.method.scores(self.weights, self.movement), target, self.method.scope)
            pl_module.log("pruning/target_sparsity", target)
        self._apply()
        pl_module.log("pruning/sparsity", self.sparsity())

    @torch.no_grad()
    def _apply(self) -> None:
        for name, weight in self.weights.items():
            weight.mul_(self.masks[name])

    def sparsity(self) -> float:
        zeros = sum(int((~m).sum()) for m in self.masks.values())
        return zeros / max(sum(m.numel() for m in self.masks.values()), 1)

    @override
    def state_dict(self) -> dict[str, Any]:
        return {"masks": self.masks, "movement": self.movement}

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.masks, self.movement = state_dict["masks"], state_dict["movement"]
