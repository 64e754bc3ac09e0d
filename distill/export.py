"""Writing a trained student where a user can take it: atomically, with its tokenizer and its card."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from transformers import PreTrainedTokenizerBase

from distill.measure import count_parameters, weights_size_on_disk
from distill.registry import plugin_versions
from distill.student import Student

CARD_NAME = "card.json"


@contextlib.contextmanager
def atomic_directory(target: Path) -> Iterator[Path]:
    """Yield an empty scratch folder next to `target`; it replaces `target` only if the block succeeds.

    A crash mid-write leaves no folder that looks finished, only a hidden `.partial` one that is removed.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{target.name}.partial-", dir=target.parent))
    try:
        yield scratch
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    if target.exists():
        retired = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
        os.replace(target, retired / target.name)
        os.replace(scratch, target)
        shutil.rmtree(retired, ignore_errors=True)
    else:
        os.replace(scratch, target)


def write_bytes_atomic(path: Path, payload: bytes) -> None:
    """Write through a temporary file and a rename, so readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, scratch = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(handle, "wb") as stream:
        stream.write(payload)
    os.replace(scratch, path)


def write_text_atomic(path: Path, text: str) -> None:
    write_bytes_atomic(path, text.encode())


def write_json_atomic(path: Path, payload: dict[str, Any]) -> None:
    write_text_atomic(path, json.dumps(payload, indent=2, default=str))


def export_student(
    student: Student,
    tokenizer: PreTrainedTokenizerBase,
    target: Path,
    card: dict[str, Any],
) -> dict[str, Any]:
    """Save the student, its tokenizer and its card (completed with measured sizes) into `target`.

    Returns:
        The card as written.
    """
    with atomic_directory(target) as scratch:
        student.save(scratch)
        tokenizer.save_pretrained(scratch)
        card = {
            **card,
            "student_family": student.anatomy.family,
            "parameters": count_parameters(student),
            "size_on_disk_bytes": weights_size_on_disk(scratch),
            "plugins": plugin_versions(),
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        write_json_atomic(scratch / CARD_NAME, card)
    return card
