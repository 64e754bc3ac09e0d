"""Checkpoints a user names (`--ckpt_path`, `--checkpoint`) are checked before anything runs or is written."""

from __future__ import annotations

from pathlib import Path

import torch

from distill.errors import DistillError


def check_checkpoint(path: str | Path, flag: str) -> Path:
    """The checkpoint at `path`, after proving it is a whole checkpoint written by `distill fit`.

    It is memory-mapped, so the check reads the archive's index, not its tensors.

    Args:
        path: what the user gave.
        flag: the option it came from, for the message.

    Raises:
        DistillError: it does not exist, cannot be read (truncated or corrupt), or is not distill's.
    """
    checkpoint = Path(path).expanduser()
    fix = "give a .ckpt that `distill fit` wrote (runs/<run>/checkpoints/last.ckpt or best-step=N.ckpt)"
    if not checkpoint.is_file():
        raise DistillError(f"{flag} {path}: no such file: {fix}")
    try:
        state = torch.load(checkpoint, map_location="cpu", mmap=True, weights_only=False)
    except Exception as error:  # torch raises a different type for each kind of damage
        raise DistillError(
            f"{flag} {path} cannot be read ({type(error).__name__}: {str(error).splitlines()[0][:120]}): the file "
            f"is truncated or corrupt; {fix}"
        ) from None
    if not isinstance(state, dict) or not {"state_dict", "hyper_parameters"} <= state.keys():
        raise DistillError(f"{flag} {path} is not a distill training checkpoint: {fix}")
    return checkpoint
