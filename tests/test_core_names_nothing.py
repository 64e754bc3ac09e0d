"""The core knows no particular task, loss, student, compression method, file layout or encoder family: outside
docstrings and comments, no source file under distill/ names one (messages build their examples from the registry)."""

from __future__ import annotations

import io
import re
import tokenize

from distill.architecture import architectures
from distill.registry import KINDS, registered, task_presets
from tests.conftest import ROOT

CORE = ROOT / "distill"


def built_in_names() -> set[str]:
    names = {name for kind in KINDS for name in registered(kind)}
    names |= {cls.name for cls, _ in registered("readers").values()}
    names |= set(task_presets())
    names |= {adapter.name for adapter in architectures().values()} | set(architectures())  # families, model types
    return names


def code_without_docstrings(source: str) -> str:
    """The source's tokens, less comments and docstrings (a string that is a statement of its own)."""
    kept, previous = [], tokenize.NEWLINE
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        docstring = token.type == tokenize.STRING and previous in (tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT)
        if token.type not in (tokenize.COMMENT, tokenize.NL) and not docstring:
            kept.append(token.string)
        if token.type not in (tokenize.NL, tokenize.COMMENT):
            previous = token.type
    return " ".join(kept)


def test_no_core_module_names_a_built_in():
    names = built_in_names()
    pattern = re.compile(r"\b(" + "|".join(sorted(map(re.escape, names), key=len, reverse=True)) + r")\b")
    found = {
        f"{path.relative_to(ROOT)}: {match}"
        for path in sorted(CORE.rglob("*.py"))
        for match in pattern.findall(code_without_docstrings(path.read_text()))
    }
    assert len(architectures()) > 1 and len(names) > 40
    assert not found, sorted(found)
