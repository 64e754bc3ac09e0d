"""Teacher-output cache: the teacher's logits (and pooled vectors) per training example, computed once.

Rows are keyed by example index, so shuffling and distributed samplers are safe. The first epoch fills the
cache as a side effect of training (it needs the teacher anyway); later epochs read it. Storage is a float16
memory map per feature plus a byte map of filled rows, in a folder named by a fingerprint of the teacher
weights, tokenizer, data and maximum length: any change gives a new folder. A folder whose files do not match
its manifest's layout or checksum is damaged and is rebuilt; one with unfilled rows is completed. The teacher's
vector outputs are used at float16 precision whether or not a cache holds them, so the cache never changes a loss.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from distill.errors import DistillError
from distill.features import Features

CACHEABLE = frozenset({"logits", "pooled"})  # one vector per example; per-token features stay live
MANIFEST = "manifest.json"


@dataclass
class TeacherCache:
    """The `model.teacher_cache:` section of a config.

    Attributes:
        directory: where caches live; each teacher/data combination gets its own subfolder.
        features: which teacher outputs to keep (logits, pooled).
    """

    directory: str = "~/.cache/distill/teacher"
    features: list[str] = field(default_factory=lambda: ["logits"])

    def __post_init__(self) -> None:
        if "logits" not in self.features:
            raise DistillError("teacher_cache.features must include logits")
        if unknown := set(self.features) - CACHEABLE:
            raise DistillError(
                f"teacher_cache.features {sorted(unknown)} cannot be cached: choose from "
                f"{sorted(CACHEABLE)} (per-token features are read from the teacher live)"
            )


def at_cache_precision(features: Features) -> Features:
    """The teacher's cacheable outputs rounded to float16 and back, as the cache stores them."""
    for name in CACHEABLE:
        value = getattr(features, name, None)
        if value is not None:
            setattr(features, name, value.half().float())
    return features


def teacher_digest(state: Mapping[str, Tensor]) -> str:
    """Changes whenever any teacher weight changes."""
    digest = hashlib.sha256()
    for name in sorted(state):
        digest.update(name.encode())
        digest.update(state[name].detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


class CacheStore:
    """The memory-mapped arrays of one cache folder.

    The manifest records a SHA-256 of every array file, written at each epoch end (`seal`); a folder whose files
    do not hash to it (damaged on disk, or left mid-epoch by a killed run) is rebuilt, with a warning.
    """

    def __init__(self, folder: Path, rows: int, widths: dict[str, int]) -> None:
        self.folder, self.rows, self.widths = folder, rows, widths
        if folder.exists() and (problem := self._problem()):
            warnings.warn(f"teacher cache {folder} {problem}: rebuilding it", stacklevel=2)
            shutil.rmtree(folder)
        if not folder.exists():
            self._create()
        self.arrays = {name: np.load(folder / f"{name}.npy", mmap_mode="r+") for name in widths}
        self.filled = np.load(folder / "filled.npy", mmap_mode="r+")

    @property
    def _layout(self) -> dict:
        return {"rows": self.rows, "widths": self.widths, "dtype": "float16"}

    @property
    def _files(self) -> list[Path]:
        return [self.folder / f"{name}.npy" for name in sorted(self.widths)] + [self.folder / "filled.npy"]

    def _problem(self) -> str | None:
        """Why the folder cannot be used as it is, or None when its manifest, shapes and checksum all agree."""
        try:
            manifest = json.loads((self.folder / MANIFEST).read_text())
            if {k: manifest.get(k) for k in self._layout} != self._layout:
                return "was made for another layout"
            for name, width in self.widths.items():
                array = np.load(self.folder / f"{name}.npy", mmap_mode="r")
                if array.shape != (self.rows, width) or array.dtype != np.float16:
                    return f"holds {name} of shape {array.shape}, not ({self.rows}, {width})"
            if np.load(self.folder / "filled.npy", mmap_mode="r").shape != (self.rows,):
                return "has a fill map of the wrong length"
        except (OSError, ValueError, json.JSONDecodeError) as error:
            return f"cannot be read ({type(error).__name__})"
        if manifest.get("checksum") != _digest(self._files):
            return "does not match its checksum (damaged on disk, or left mid-epoch by an interrupted run)"
        return None

    def _create(self) -> None:
        """Build the folder under a scratch name of this process's own, then rename it into place. Nodes that
        share the directory may build it at the same moment: the first rename wins and the others use it."""
        self.folder.parent.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(prefix=f".{self.folder.name}.partial-", dir=self.folder.parent))
        for name, width in self.widths.items():
            np.lib.format.open_memmap(scratch / f"{name}.npy", mode="w+", dtype=np.float16, shape=(self.rows, width))
        np.lib.format.open_memmap(scratch / "filled.npy", mode="w+", dtype=np.uint8, shape=(self.rows,))
        files = [scratch / path.name for path in self._files]
        (scratch / MANIFEST).write_text(json.dumps({**self._layout, "checksum": _digest(files)}))
        try:
            scratch.rename(self.folder)
        except OSError:  # another process renamed its copy into place first
            shutil.rmtree(scratch, ignore_errors=True)
            if not self.folder.is_dir():
                raise

    @property
    def complete(self) -> bool:
        return bool(self.filled.all())

    def lookup(self, batch: Mapping[str, Tensor], compute: Callable[[], Features]) -> Features:
        """Cached teacher features for the batch's rows; rows not cached yet are computed and stored."""
        idx = batch["idx"].cpu().numpy()
        if not self.filled[idx].all():
            live = at_cache_precision(compute())
            for name in self.widths:
                self.arrays[name][idx] = getattr(live, name).detach().float().cpu().numpy().astype(np.float16)
            self.filled[idx] = 1
        device = batch["input_ids"].device
        values = {
            name: torch.from_numpy(np.asarray(self.arrays[name][idx], dtype=np.float32)).to(device)
            for name in self.widths
        }
        return Features(attention_mask=batch["attention_mask"], **values)

    @classmethod
    def open(cls, settings: TeacherCache, teacher: nn.Module, data_fingerprint: str, rows: int) -> CacheStore:
        """The store for this teacher and data, reusing a matching folder when there is one."""
        key = hashlib.sha256(f"{teacher_digest(teacher.state_dict())}/{data_fingerprint}".encode()).hexdigest()[:20]
        widths = {
            name: teacher.anatomy.num_labels if name == "logits" else teacher.anatomy.hidden_size
            for name in sorted(settings.features)
        }
        return cls(Path(settings.directory).expanduser() / key, rows, widths)

    def flush(self) -> None:
        for array in (*self.arrays.values(), self.filled):
            array.flush()

    def seal(self) -> None:
        """Record the checksum of the flushed files, so the next run can trust them (one process per machine)."""
        manifest = {**self._layout, "checksum": _digest(self._files)}
        handle, scratch = tempfile.mkstemp(prefix=f".{MANIFEST}.", dir=self.folder)  # nodes may share the folder
        with os.fdopen(handle, "w") as stream:
            stream.write(json.dumps(manifest))
        os.replace(scratch, self.folder / MANIFEST)


def _digest(files: list[Path]) -> str:
    """SHA-256 over the files' bytes, read in chunks."""
    digest = hashlib.sha256()
    for path in files:
        with path.open("rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
    return digest.hexdigest()
