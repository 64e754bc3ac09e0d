"""Heavy libraries bound at import time but loaded on first use, so commands that never read data start fast."""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any


class _OnFirstUse(ModuleType):
    """Stands for a module until one of its attributes is read; then imports it (once: Python caches it)."""

    def __getattr__(self, attribute: str) -> Any:  # only reached for what a bare module lacks
        return getattr(importlib.import_module(self.__name__), attribute)


def lazy_module(name: str) -> ModuleType:
    """`name`, imported when an attribute of it is first read (`datasets = lazy_module("datasets")`). Inspecting
    the binding (as pluggy does to every name in a plugin module) does not import it."""
    return _OnFirstUse(name)
