"""Lightning callbacks the core adds to every run."""

from __future__ import annotations

import time
from typing import Any

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from typing_extensions import override


class TrainingThroughput(Callback):
    """Training samples per second, counting only training batches (validation time left out)."""

    def __init__(self) -> None:
        self.samples = 0
        self.seconds = 0.0
        self._started = 0.0

    @override
    def on_train_batch_start(self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int) -> None:
        self._started = time.perf_counter()

    @override
    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        self.seconds += time.perf_counter() - self._started
        self.samples += len(batch["input_ids"])

    def summary(self, trainer: Trainer) -> dict[str, float]:
        """Samples over all ranks (each rank counts its own share), optimizer steps, their rate and, on a GPU,
        the most memory this rank held at once."""
        samples = self.samples * trainer.world_size
        rate = samples / self.seconds if self.seconds else 0.0
        device = trainer.strategy.root_device
        return {
            "samples": samples,
            "optimizer_steps": trainer.global_step,
            "seconds": round(self.seconds, 2),
            "samples_per_second": round(rate, 2),
            **({"peak_gpu_memory_bytes": torch.cuda.max_memory_allocated(device)} if device.type == "cuda" else {}),
        }

    @override
    def state_dict(self) -> dict[str, Any]:
        return {"samples": self.samples, "seconds": self.seconds}

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.samples, self.seconds = state_dict["samples"], state_dict["seconds"]


class ResumeRandomState(Callback):
    """Keeps the training random stream (dropout masks) exactly as an uninterrupted run draws it.

    The state travels in every checkpoint and is restored just before the first batch after a resume. Validation
    hands the stream back as the last training batch left it, so a checkpoint saved before a validation
    (`every_n_train_steps`) and one saved after it (the best) resume to the same draws.
    """

    def __init__(self) -> None:
        self._pending: dict[str, Any] | None = None  # loaded from a checkpoint, applied at the next batch
        self._after_batch: dict[str, Any] | None = None  # as the last training batch left it

    @override
    def state_dict(self) -> dict[str, Any]:
        return _random_state()

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._pending = state_dict

    @override
    def on_train_batch_start(self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int) -> None:
        if self._pending is not None:
            _set_random_state(self._pending)
            self._pending = None

    @override
    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        self._after_batch = _random_state()

    @override
    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self._after_batch is not None and not trainer.sanity_checking:
            _set_random_state(self._after_batch)


def _random_state() -> dict[str, Any]:
    state = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_random_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["cpu"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
