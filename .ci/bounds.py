"""Print pip requirements pinning each runtime dependency of pyproject.toml to its declared lower bound (`lowest`)
or leaving it free (`newest`), so CI can install both ends of the range the project claims to support."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import tomllib

PROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


def requirements(end: str) -> list[str]:
    """One requirement per dependency: `name==lowest` for the lowest end, `name>=lowest` for the newest."""
    dependencies = tomllib.loads(PROJECT.read_text())["project"]["dependencies"]
    pinned = []
    for dependency in dependencies:
        match = re.fullmatch(r"([A-Za-z0-9_.\-]+(?:\[[^\]]+\])?)\s*>=\s*([0-9][^,;\s]*)", dependency.strip())
        if match is None:
            raise SystemExit(f"{PROJECT}: {dependency!r} declares no lower bound (name>=version)")
        name, lowest = match.groups()
        pinned.append(f"{name}=={lowest}" if end == "lowest" else f"{name}>={lowest}")
    return pinned


if __name__ == "__main__":
    if sys.argv[1:] not in (["lowest"], ["newest"]):
        raise SystemExit("usage: python .ci/bounds.py lowest|newest")
    print("\n".join(requirements(sys.argv[1])))
