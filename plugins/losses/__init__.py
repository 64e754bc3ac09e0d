"""Built-in loss hooks: one module per kind of loss, registered like any third-party loss."""

from __future__ import annotations

from distill import hookimpl
from distill.plugins.losses.hard_labels import HardLabelCE
from distill.plugins.losses.logits import LogitsKD

__all__ = ["HardLabelCE", "LogitsKD"]


@hookimpl
def distill_register_losses() -> list[type]:
    return [HardLabelCE, LogitsKD]
