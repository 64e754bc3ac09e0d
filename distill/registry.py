"""Which names exist: the kinds plugins register, their versions, and the task presets."""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import Any

from distill.errors import DistillError
from distill.plugin_manager import BLOCK_ENV, ENTRY_POINT_GROUP, get_plugin_manager, registered
from distill.task import Preset, Task

KINDS = (
    "tasks",
    "losses",
    "students",
    "compression",
    "export_formats",
    "onnx_variants",
    "augmentations",
    "architectures",
    "readers",
    "teachers",
)


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


def plugins_listing() -> str:
    """`distill plugins`: each installed plugin, its distribution, and the names it provides (tasks with their
    presets)."""
    versions = plugin_versions()
    provided: dict[str, list[str]] = {}
    for kind in KINDS:
        for name, (cls, plugin) in registered(kind).items():
            presets = sorted(cls.presets()) if kind == "tasks" else []
            line = f"{kind}: {name}" + (f" (presets: {', '.join(presets)})" if presets else "")
            provided.setdefault(plugin, []).append(line)
    return "\n".join(
        line
        for plugin in sorted(versions)
        for line in [f"{plugin}  ({versions[plugin]})", *(f"    {entry}" for entry in provided.get(plugin, []))]
    )
