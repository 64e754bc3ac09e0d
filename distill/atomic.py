"""Atomic writes: a file or folder appears whole, with the mode a plain write under the user's umask would give,
or not at all.

Everything goes through a hidden scratch copy beside its target, named `.<target>.partial-<pid>-<random>`, then a
rename. A process killed mid-write leaves only such a scratch copy; the next write beside the same target removes
the copies whose process is gone, and nothing else.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from distill.errors import DistillError


def scratch_prefix(target: Path) -> str:
    """The name of distill's scratch copies of `target`: hidden, and owned by this process (by pid)."""
    return f".{target.name}.partial-{os.getpid()}-"


def remove_stale_scratch(target: Path) -> None:
    """Remove the scratch copies of `target` that a killed distill process left behind, and only those."""
    for scratch in target.parent.glob(f".{target.name}.partial-*"):
        pid = scratch.name.removeprefix(f".{target.name}.partial-").split("-", 1)[0]
        if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            if scratch.is_dir() and not scratch.is_symlink():
                shutil.rmtree(scratch, ignore_errors=True)
            else:
                scratch.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def writable_parent(target: Path) -> None:
    """Make `target`'s folder, or say in one line why it cannot be written.

    Raises:
        DistillError: the folder cannot be made or is not writable.
    """
    folder = target.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise DistillError(f"cannot create folder {folder}: {error.strerror}: choose a writable location") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise DistillError(f"folder {folder} is not writable: choose a writable location, or fix its permissions")


@contextlib.contextmanager
def atomic_directory(target: Path) -> Iterator[Path]:
    """Yield an empty scratch folder next to `target`; it becomes `target` only if the block succeeds.

    Raises:
        DistillError: `target` already exists (distill never writes over a folder it did not create in this run),
            or its folder is not writable.
    """
    target = Path(target)
    if target.exists():
        raise DistillError(f"{target} already exists and is never overwritten: move it away, or write elsewhere")
    writable_parent(target)
    remove_stale_scratch(target)
    scratch = Path(tempfile.mkdtemp(prefix=scratch_prefix(target), dir=target.parent))
    try:
        yield scratch
        _as_umask_allows(scratch)
        os.rename(scratch, target)  # fails rather than replaces if the target appeared meanwhile
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise


@contextlib.contextmanager
def atomic_file(path: Path, mode: str = "wb") -> Iterator[Any]:
    """Yield a stream to a scratch file next to `path`; flushed to disk, it replaces `path` only if the block
    succeeds, so readers never see half a file and a failed write keeps the old one."""
    path = Path(path)
    writable_parent(path)
    remove_stale_scratch(path)
    handle, scratch = tempfile.mkstemp(prefix=scratch_prefix(path), dir=path.parent)
    try:
        with os.fdopen(handle, mode) as stream:
            yield stream
            stream.flush()
            os.fsync(stream.fileno())
        _as_umask_allows(Path(scratch))
        os.replace(scratch, path)
    except BaseException:
        Path(scratch).unlink(missing_ok=True)
        raise


def write_bytes_atomic(path: Path, payload: bytes) -> None:
    with atomic_file(path) as stream:
        stream.write(payload)


def write_text_atomic(path: Path, text: str) -> None:
    write_bytes_atomic(path, text.encode())


def write_json_atomic(path: Path, payload: dict[str, Any]) -> None:
    write_text_atomic(path, json.dumps(payload, indent=2, default=str))


def _umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


def _as_umask_allows(path: Path) -> None:
    """tempfile makes scratch files 0600 and folders 0700, and some writers (safetensors) make 0600 files; give
    `path` and everything under it the mode a plain write would have."""
    umask = _umask()
    path.chmod((0o777 if path.is_dir() else 0o666) & ~umask)
    if path.is_dir():
        for inner in path.rglob("*"):
            if not inner.is_symlink():
                inner.chmod((0o777 if inner.is_dir() else 0o666) & ~umask)
