"""The plugin manager: discovers plugins through entry points and answers "which names exist?"."""

from __future__ import annotations

import functools
import os
from importlib.metadata import entry_points
from typing import Any

import pluggy

from distill import hookspecs
from distill.errors import DistillError
from distill.task import Preset, Task

ENTRY_POINT_GROUP = "distill.plugins"
AUTOLOAD_OFF_ENV = "DISTILL_DISABLE_PLUGIN_AUTOLOAD"  # "1": load only the plugins that ship with distill
BLOCK_ENV = "DISTILL_BLOCK_PLUGINS"  # comma-separated entry-point names never to load
KINDS = ("tasks", "losses", "students", "compression", "architectures")


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
    try:
        manager.check_pending()
    except pluggy.PluginValidationError as error:
        raise DistillError(f"plugin {error.plugin_name!r} implements an unknown hook: {error}") from None
    return manager


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


def plugin_versions() -> dict[str, str]:
    """Plugin name -> "distribution version", for the card, the saved config and the logger.

    Read from the entry points themselves, which every pluggy version distill supports can do.
    """
    manager = get_plugin_manager()
    loaded = {name for name, plugin in manager.list_name_plugin() if plugin is not None}  # blocked: None
    return {
        entry_point.name: f"{entry_point.dist.name} {entry_point.dist.version}"
        for entry_point in entry_points(group=ENTRY_POINT_GROUP)
        if entry_point.name in loaded and entry_point.dist is not None
    }


def task_presets() -> dict[str, tuple[type[Task], Preset]]:
    """Every task preset name (`data.task: sst2`) with its task class.

    Raises:
        DistillError: two task classes offer the same preset name.
    """
    presets: dict[str, tuple[type[Task], Preset]] = {}
    for cls, plugin in registered("tasks").values():
        for name, preset in cls.presets().items():
            if name in presets:
                raise DistillError(
                    f"task preset {name!r} is offered by both {presets[name][0].__name__} and {cls.__name__} "
                    f"({plugin!r}): uninstall one, or block it with {BLOCK_ENV}"
                )
            presets[name] = (cls, preset)
    return presets


def find_preset(name: str) -> tuple[type[Task], Preset]:
    """A preset by name; case and dashes do not matter ("SST-2" is sst2).

    Raises:
        DistillError: no installed task offers that preset.
    """
    presets = task_presets()
    key = name.lower().replace("-", "")
    if key not in presets:
        tasks = ", ".join(sorted(registered("tasks")))
        raise DistillError(
            f"unknown task {name!r} in data.task: presets are {', '.join(sorted(presets))}; for your own data "
            f"name a task class ({tasks}) with class_path and init_args (see configs/custom/)"
        )
    return presets[key]


def task_from_spec(spec: str | dict[str, Any]) -> Task:
    """A task from a preset name or a {"class_path", "init_args"} spec, as `Task.spec()` writes it into
    checkpoints and cards.

    Raises:
        DistillError: the name or class is unknown.
    """
    if isinstance(spec, str):
        cls, preset = find_preset(spec)
        return cls(**preset.init_args)
    path = spec.get("class_path", "")
    tasks = registered("tasks")
    cls = next((c for name, (c, _) in tasks.items() if path in (name, f"{c.__module__}.{c.__qualname__}")), None)
    if cls is None:
        raise DistillError(
            f"unknown task class {path!r}: installed tasks are {', '.join(sorted(tasks))} (`distill plugins`)"
        )
    return cls(**spec.get("init_args", {}))
