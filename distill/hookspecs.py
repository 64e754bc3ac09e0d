"""The whole distill plugin API, on one page.

A plugin is a module (or object) with functions marked `@distill.hookimpl`, found through the
`distill.plugins` entry-point group. Call hooks with keyword arguments only, so that new arguments
never break old plugins. "Contribute" hooks return lists that the caller flattens.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from pathlib import Path

    from torch import nn
    from transformers import PreTrainedTokenizerBase

    from distill.loss import LossTerm
    from distill.student import StudentConfig

hookspec = pluggy.HookspecMarker("distill")
hookimpl = pluggy.HookimplMarker("distill")


# --- registration: names usable in YAML as soon as the plugin is pip-installed -------------------------------


@hookspec
def distill_register_losses() -> list[type[LossTerm]]:
    """Contribute LossTerm subclasses; YAML names them by class name under `model.losses`."""


@hookspec
def distill_register_students() -> list[type[StudentConfig]]:
    """Contribute StudentConfig subclasses (student families); YAML names them under `model.student`."""


# --- export and report ------------------------------------------------------------------------------------------


@hookspec(firstresult=True)
def distill_load_model(folder: Path) -> tuple[nn.Module, PreTrainedTokenizerBase] | None:
    """Load an exported model and its tokenizer if `folder` holds this plugin's format; else return None.

    Stops at the first non-None result. Folders saved in Hugging Face format need no plugin.
    """
