"""Checkpoints a user names (`--ckpt_path`, `--checkpoint`) are checked before anything runs or is written, and
every checkpoint is read without running code: a checkpoint is data that people share and download.

`torch.load(weights_only=True)` unpickles tensors, containers and plain values only. Anything else a checkpoint
needs must be listed in SAFE_GLOBALS, the one place distill allows more; distill's own checkpoints need nothing
there today. A checkpoint that needs any other global is refused, naming it, and never loaded the unsafe way.
"""

from __future__ import annotations

import pickle
import re
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.utilities.types import _PATH
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.plugins.io import TorchCheckpointIO
from typing_extensions import override

from distill.atomic import atomic_file
from distill.errors import DistillError

# Classes and functions (beyond tensors, containers and plain values) that distill's checkpoints may hold.
SAFE_GLOBALS: list[Any] = []
torch.serialization.add_safe_globals(SAFE_GLOBALS)

_FIX = "give a .ckpt that `distill fit` wrote (runs/<run>/checkpoints/last.ckpt or best-step=N.ckpt)"


def load_checkpoint(path: Path, flag: str) -> dict[str, Any]:
    """The checkpoint at `path`, read without running code (memory-mapped: the index, not the tensors).

    Raises:
        DistillError: it cannot be read, or it needs a global that distill does not allow.
    """
    try:
        return torch.load(path, map_location="cpu", mmap=True, weights_only=True)
    except pickle.UnpicklingError as error:
        needed = re.search(r"GLOBAL ([\w.]+)", str(error))  # torch: "Unsupported global: GLOBAL builtins.exec ..."
        name = needed.group(1) if needed else "a class or function"
        raise DistillError(
            f"{flag} {path} needs {name} to load, which could run code, so it is refused (distill loads "
            f"checkpoints with weights only): {_FIX}"
        ) from None
    except Exception as error:  # torch raises a different type for each kind of damage
        raise DistillError(
            f"{flag} {path} cannot be read ({type(error).__name__}: {str(error).splitlines()[0][:120]}): the file "
            f"is truncated or corrupt; {_FIX}"
        ) from None


def check_checkpoint(path: str | Path, flag: str, resume: bool = False) -> Path:
    """The checkpoint at `path`, after proving it is a whole, code-free checkpoint written by `distill fit`.

    Args:
        path: what the user gave.
        flag: the option it came from, for the message.
        resume: training continues from it, so it must hold the optimizer's state too.

    Raises:
        DistillError: it does not exist, cannot be read (truncated or corrupt), needs code, is not distill's, or
            holds weights only where training is to resume.
    """
    checkpoint = Path(path).expanduser()
    if not checkpoint.is_file():
        problem = "is a folder" if checkpoint.is_dir() else "no such file"
        raise DistillError(f"{flag} {path}: {problem}: {_FIX}")
    state = load_checkpoint(checkpoint, flag)
    if not isinstance(state, dict) or not {"state_dict", "hyper_parameters"} <= state.keys():
        raise DistillError(f"{flag} {path} is not a distill training checkpoint: {_FIX}")
    if resume and "optimizer_states" not in state:
        raise DistillError(
            f"{flag} {path} holds the student's weights only (a run's best checkpoint, which is what it exports), "
            f"so training cannot resume from it: give last.ckpt from the same folder"
        )
    return checkpoint


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint writer, made atomic: a checkpoint goes to a scratch file in its own folder, is
    flushed to disk, then renamed over the old one. A full disk or a kill mid-write keeps the last good
    `last.ckpt` (see distill.atomic)."""

    @override
    def save_checkpoint(self, checkpoint: dict[str, Any], path: _PATH, storage_options: Any | None = None) -> None:
        with atomic_file(Path(path)) as stream:
            torch.save(checkpoint, stream)


class RunCheckpoint(ModelCheckpoint):
    """ModelCheckpoint that tracks only checkpoints of this run: restored from another folder's checkpoint (a
    resume into a new run folder), it forgets that folder's best file instead of exporting it later."""

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(state_dict)
        if state_dict.get("dirpath", self.dirpath) != self.dirpath:
            self.best_model_path = ""
