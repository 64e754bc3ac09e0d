"""The one exception type the CLI turns into a clean, single-message error."""

from __future__ import annotations


class DistillError(Exception):
    """A problem with the user's input. The message names the problem and how to fix it."""
