"""The delivery side is layered: its modules import one another without a circle, never reach up into training
or the CLI, and never hide an import inside a function to get round either rule."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import ROOT

DELIVERY = ROOT / "distill" / "delivery"
ABOVE = ("distill.training", "distill.cli", "distill.after_fit")  # what builds on the delivery side


def distill_imports(path: Path) -> list[tuple[str, int, bool]]:
    """(module, line, at module level) of every import of a distill module in a file."""
    tree = ast.parse(path.read_text(), filename=str(path))
    top = {id(node) for node in tree.body}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        found += [(name, node.lineno, id(node) in top) for name in names if name.split(".")[0] == "distill"]
    return found


def modules() -> dict[str, Path]:
    return {f"distill.delivery.{path.stem}": path for path in sorted(DELIVERY.glob("*.py")) if path.stem != "__init__"}


def test_no_delivery_module_imports_distill_inside_a_function():
    hidden = [
        f"{path.relative_to(ROOT)}:{line}: {module}"
        for path in modules().values()
        for module, line, at_top in distill_imports(path)
        if not at_top
    ]
    assert not hidden, "move these imports to the top of the module:\n" + "\n".join(hidden)


def test_no_delivery_module_imports_what_builds_on_it():
    upward = [
        f"{path.relative_to(ROOT)}:{line}: {module}"
        for path in modules().values()
        for module, line, _ in distill_imports(path)
        if module.startswith(ABOVE)
    ]
    assert not upward, "the delivery side must not import training or the CLI:\n" + "\n".join(upward)


def test_delivery_modules_import_one_another_without_a_circle():
    own = modules()
    edges = {
        name: {module for module, _, _ in distill_imports(path) if module in own and module != name}
        for name, path in own.items()
    }
    done: set[str] = set()

    def visit(name: str, path: list[str]) -> None:
        if name in path:
            raise AssertionError("import circle: " + " -> ".join([*path[path.index(name) :], name]))
        if name not in done:
            for following in sorted(edges[name]):
                visit(following, [*path, name])
            done.add(name)

    for name in own:
        visit(name, [])
