"""The plugin API on one page: every hook is documented, typed, and callable with keyword arguments only."""

from __future__ import annotations

import inspect

import pluggy

from distill import hookspecs

HOOKS = {name: fn for name, fn in vars(hookspecs).items() if name.startswith("distill_") and callable(fn)}


def test_every_hook_is_named_documented_and_typed():
    assert len(HOOKS) >= 4  # registration of losses, students and methods; loading
    for name, spec in HOOKS.items():
        assert spec.__doc__ and len(spec.__doc__.split()) >= 6, name
        signature = inspect.signature(spec)
        assert signature.return_annotation is not inspect.Signature.empty, name
        assert all(p.annotation is not inspect.Parameter.empty for p in signature.parameters.values()), name


def test_every_hook_reaches_a_plugin_by_keyword():
    """A plugin implementing every hook with the spec's own argument names is accepted and called."""
    calls: dict[str, dict] = {}

    class Everything:
        pass

    for name, spec in HOOKS.items():
        parameters = list(inspect.signature(spec).parameters)  # pluggy matches arguments by these names
        record = ", ".join(f"{p}={p}" for p in parameters)
        source = f"def {name}({', '.join(parameters)}):\n    calls[{name!r}] = dict({record})"
        namespace = {"calls": calls}
        exec(source, namespace)
        setattr(Everything, name, staticmethod(hookspecs.hookimpl(namespace[name])))

    manager = pluggy.PluginManager("distill")
    manager.add_hookspecs(hookspecs)
    manager.register(Everything())
    manager.check_pending()
    for name, spec in HOOKS.items():
        arguments = {p: object() for p in inspect.signature(spec).parameters}
        getattr(manager.hook, name)(**arguments)
        assert calls[name] == arguments, name
