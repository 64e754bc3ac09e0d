"""One public contract: every built-in uses only what `distill` itself exports, exactly as a third party would."""

from __future__ import annotations

import ast
from pathlib import Path

import distill
from tests.conftest import ROOT

BUILT_INS = [ROOT / "students", ROOT / "plugins", ROOT / "tests" / "example_plugin"]
OWN_PACKAGES = ("distill.students", "distill.plugins")  # a plugin may import its own modules


def imports(path: Path) -> list[tuple[str, list[str], int]]:
    """(module, names, line) of every `from X import ...` in a file, nested imports included."""
    tree = ast.parse(path.read_text(), filename=str(path))
    return [
        (node.module or "", [alias.name for alias in node.names], node.lineno)
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom)
    ]


def test_no_built_in_imports_a_core_submodule():
    offenders = [
        f"{path.relative_to(ROOT)}:{line}: from {module} import {', '.join(names)}"
        for folder in BUILT_INS
        for path in sorted(folder.rglob("*.py"))
        for module, names, line in imports(path)
        if module.startswith("distill.") and not module.startswith(OWN_PACKAGES)
    ]
    assert not offenders, "import these from `distill` instead (add them to its __all__):\n" + "\n".join(offenders)


def test_what_built_ins_take_from_distill_is_its_declared_public_surface():
    taken = {
        name
        for folder in BUILT_INS
        for path in folder.rglob("*.py")
        for module, names, _ in imports(path)
        if module == "distill"
        for name in names
    }
    assert taken <= set(distill.__all__), sorted(taken - set(distill.__all__))
    assert all(hasattr(distill, name) for name in distill.__all__)
