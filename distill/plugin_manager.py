"""The plugin manager: discovers plugins through entry points and collects what each registers, by kind."""

from __future__ import annotations

import functools
import os
from importlib.metadata import entry_points

import pluggy

from distill import hookspecs
from distill.errors import DistillError

ENTRY_POINT_GROUP = "distill.plugins"
AUTOLOAD_OFF_ENV = "DISTILL_DISABLE_PLUGIN_AUTOLOAD"  # "1": load only the plugins that ship with distill
BLOCK_ENV = "DISTILL_BLOCK_PLUGINS"  # comma-separated entry-point names never to load
RETIRED_HOOKS = {  # hooks of an earlier contract, and what replaced them
    "distill_load_model": "an ExportFormat subclass registered with distill_register_export_formats "
    "(docs/plugins.md, 'Reading exports')",
}


def _blocked_names() -> set[str]:
    blocked = {name.strip() for name in os.environ.get(BLOCK_ENV, "").split(",") if name.strip()}
    if os.environ.get(AUTOLOAD_OFF_ENV, "") not in ("", "0"):
        blocked |= {ep.name for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.dist and ep.dist.name != "distill"}
    return blocked


@functools.cache
def get_plugin_manager() -> pluggy.PluginManager:
    """The process-wide manager: hook specs added, entry points loaded, every hook name checked.

    Raises:
        DistillError: an installed plugin fails to import or implements a hook that does not exist.
    """
    manager = pluggy.PluginManager("distill")
    manager.add_hookspecs(hookspecs)
    for name in _blocked_names():
        manager.set_blocked(name)
    for entry_point in entry_points(group=ENTRY_POINT_GROUP):
        if manager.is_blocked(entry_point.name):
            continue
        try:
            manager.load_setuptools_entrypoints(ENTRY_POINT_GROUP, name=entry_point.name)
        except Exception as error:  # a broken third-party install must not look like a distill bug
            raise DistillError(
                f"plugin {entry_point.name!r} ({entry_point.value}) failed to load: {error}. "
                f"Fix or uninstall it, or skip it with {BLOCK_ENV}={entry_point.name}"
            ) from None
    refuse_retired_hooks(manager)
    try:
        manager.check_pending()
    except pluggy.PluginValidationError as error:
        raise DistillError(f"plugin {error.plugin_name!r} implements an unknown hook: {error}") from None
    return manager


def refuse_retired_hooks(manager: pluggy.PluginManager) -> None:
    """Name the replacement of a hook an installed plugin still implements, rather than "unknown hook".

    Raises:
        DistillError: a loaded plugin implements one of RETIRED_HOOKS.
    """
    for name, plugin in manager.list_name_plugin():
        if retired := next((hook for hook in RETIRED_HOOKS if hasattr(plugin, hook)), None):
            raise DistillError(
                f"plugin {name!r} implements {retired}, which distill no longer calls: write "
                f"{RETIRED_HOOKS[retired]} instead"
            )


def registered(kind: str) -> dict[str, tuple[type, str]]:
    """Every name of one kind (one of KINDS) with its class and the plugin providing it.

    Raises:
        DistillError: two plugins register the same name.
    """
    hook = getattr(get_plugin_manager().hook, f"distill_register_{kind}")
    names: dict[str, tuple[type, str]] = {}
    for impl in reversed(hook.get_hookimpls()):  # registration order
        for cls in impl.function():
            if cls.__name__ in names and names[cls.__name__][0] is not cls:
                raise DistillError(
                    f"{kind[:-1]} name {cls.__name__!r} is registered by both {names[cls.__name__][1]!r} "
                    f"and {impl.plugin_name!r}: uninstall one, or block it with {BLOCK_ENV}"
                )
            names[cls.__name__] = (cls, impl.plugin_name)
    return names
