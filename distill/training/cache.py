"""Teacher-output cache: what the losses read of the teacher, per training example, computed once.

Rows are keyed by example index, so shuffling and distributed samplers are safe. The first epoch fills the
cache as a side effect of training (it needs the teacher anyway); later epochs read it.

What is kept: the logits, the pooled vector and, when asked, the hidden states of only the teacher layers some
loss reads. One-vector-per-example features are a (rows, width) array; per-token ones (hidden states, a token
task's logits) keep only the real tokens of every example, one after another, in a (tokens, width) array with
each example's offset beside it, so padding costs nothing. Every array is float16 on disk and memory-mapped.

The folder is named by a fingerprint of the teacher weights, tokenizer, data, maximum length and the arrays
kept: any change gives a new folder. A folder whose files do not match its manifest's layout or checksum is
damaged and is rebuilt; one with unfilled rows is completed. A cache that would not fit the free disk is refused
before training, with its size. The teacher's cached outputs are used at float16 precision whether or not a
cache holds them, so the cache never changes a loss.
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
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from distill.errors import DistillError
from distill.features import Features

CACHEABLE = frozenset({"logits", "pooled", "hidden_states"})
MANIFEST = "manifest.json"
OFFSETS = "offsets"  # int64 (rows + 1): where each example's tokens start in the per-token arrays
LAYER = "hidden_states."  # array name prefix: hidden_states.3 is encoder layer 3's output


@dataclass
class TeacherCache:
    """The `model.teacher_cache:` section of a config.

    Attributes:
        directory: where caches live; each teacher/data combination gets its own subfolder.
        features: which teacher outputs to keep: logits, pooled, hidden_states (only the layers the losses read).
    """

    directory: str = "~/.cache/distill/teacher"
    features: list[str] = field(default_factory=lambda: ["logits"])

    def __post_init__(self) -> None:
        if "logits" not in self.features:
            raise DistillError("teacher_cache.features must include logits")
        if unknown := set(self.features) - CACHEABLE:
            raise DistillError(
                f"teacher_cache.features {sorted(unknown)} cannot be cached: choose from {sorted(CACHEABLE)} "
                f"(attention maps and values are read from the teacher live)"
            )


def at_cache_precision(features: Features) -> Features:
    """The teacher's cacheable outputs rounded to float16 and back, as the cache stores them."""
    for name in ("logits", "pooled"):
        value = getattr(features, name, None)
        if value is not None:
            setattr(features, name, value.half().float())
    if features.hidden_states is not None:
        features.hidden_states = tuple(None if h is None else h.half().float() for h in features.hidden_states)
    return features


@dataclass(frozen=True)
class CacheLayout:
    """The arrays of one cache folder: their widths, which are kept per token, and the examples' lengths."""

    rows: int  # training examples
    widths: dict[str, int]  # array name → width
    per_token: frozenset[str] = frozenset()  # array names kept per real token rather than per example
    lengths: tuple[int, ...] = ()  # real tokens of each training example, by index (when anything is per token)

    @property
    def tokens(self) -> int:
        return sum(self.lengths)

    def shape(self, name: str) -> tuple[int, int]:
        return (self.tokens if name in self.per_token else self.rows, self.widths[name])

    @property
    def bytes(self) -> int:
        """What the folder holds on disk: float16 arrays, the fill map and the offsets."""
        arrays = sum(2 * rows * width for rows, width in map(self.shape, self.widths))
        return arrays + self.rows + (8 * (self.rows + 1) if self.per_token else 0)

    def summary(self) -> dict:
        """What the manifest records (the lengths enter through the offsets file and its checksum)."""
        return {"rows": self.rows, "tokens": self.tokens, "widths": self.widths,
                "per_token": sorted(self.per_token), "dtype": "float16"}  # fmt: skip


def cache_layout(
    features: list[str], teacher: nn.Module, layers: frozenset[int] | None, per_token_logits: bool,
    rows: int, lengths: Callable[[], list[int]],
) -> CacheLayout:  # fmt: skip
    """The arrays a run keeps: `layers` are the teacher layers the losses read (None: every one); `lengths`
    gives each example's real tokens, asked for only when something is kept per token."""
    anatomy = teacher.anatomy
    widths = {"logits": anatomy.num_labels}
    per_token = {"logits"} if per_token_logits else set()
    if "pooled" in features:
        widths["pooled"] = anatomy.hidden_size
    if "hidden_states" in features:
        for layer in sorted(range(anatomy.num_layers + 1) if layers is None else layers):
            widths[f"{LAYER}{layer}"] = anatomy.hidden_size
            per_token.add(f"{LAYER}{layer}")
    return CacheLayout(rows, widths, frozenset(per_token), tuple(lengths()) if per_token else ())


def real_tokens(split: Any) -> list[int]:
    """Each encoded example's real tokens: the ones of its attention mask, or its length where it has none."""
    if "attention_mask" in split.column_names:
        return [sum(mask) for mask in split["attention_mask"]]
    return [len(ids) for ids in split["input_ids"]]


def _human(size: int) -> str:
    return f"{size / 2**30:.2f} GiB" if size >= 2**30 else f"{size / 2**20:.1f} MiB"


class CacheStore:
    """The memory-mapped arrays of one cache folder.

    The manifest records a SHA-256 of every array file, written at each epoch end (`seal`); a folder whose files
    do not hash to it (damaged on disk, or left mid-epoch by a killed run) is rebuilt, with a warning.
    """

    def __init__(self, folder: Path, layout: CacheLayout) -> None:
        self.folder, self.layout = folder, layout
        if folder.exists() and (problem := self._problem()):
            warnings.warn(f"teacher cache {folder} {problem}: rebuilding it", stacklevel=2)
            shutil.rmtree(folder)
        if not folder.exists():
            self._create()
        self.arrays = {name: np.load(folder / f"{name}.npy", mmap_mode="r+") for name in layout.widths}
        self.filled = np.load(folder / "filled.npy", mmap_mode="r+")
        self.offsets = np.load(folder / f"{OFFSETS}.npy") if layout.per_token else None

    @property
    def _files(self) -> list[Path]:
        names = [*sorted(self.layout.widths), "filled", *([OFFSETS] if self.layout.per_token else [])]
        return [self.folder / f"{name}.npy" for name in names]

    def _problem(self) -> str | None:
        """Why the folder cannot be used as it is, or None when its manifest, shapes and checksum all agree."""
        try:
            manifest = json.loads((self.folder / MANIFEST).read_text())
            if {k: manifest.get(k) for k in self.layout.summary()} != self.layout.summary():
                return "was made for another layout"
            for name in self.layout.widths:
                array = np.load(self.folder / f"{name}.npy", mmap_mode="r")
                if array.shape != self.layout.shape(name) or array.dtype != np.float16:
                    return f"holds {name} of shape {array.shape}, not {self.layout.shape(name)}"
            if np.load(self.folder / "filled.npy", mmap_mode="r").shape != (self.layout.rows,):
                return "has a fill map of the wrong length"
        except (OSError, ValueError, json.JSONDecodeError) as error:
            return f"cannot be read ({type(error).__name__})"
        if manifest.get("checksum") != _digest(self._files):
            return "does not match its checksum (damaged on disk, or left mid-epoch by an interrupted run)"
        return None

    def _create(self) -> None:
        """Build the folder under a scratch name of this process's own, then rename it into place. Nodes that
        share the directory may build it at the same moment: the first rename wins and the others use it.

        Raises:
            DistillError: the cache would not fit the free space of its disk.
        """
        self.folder.parent.mkdir(parents=True, exist_ok=True)
        free = shutil.disk_usage(self.folder.parent).free
        if self.layout.bytes > free:
            raise DistillError(
                f"the teacher cache would take {_human(self.layout.bytes)} in {self.folder.parent}, which has "
                f"{_human(free)} free: free some space, point model.teacher_cache.directory at a larger disk, or "
                f"keep fewer features (hidden_states costs {_human(2 * self.layout.tokens)} per 1 of width)"
            )
        scratch = Path(tempfile.mkdtemp(prefix=f".{self.folder.name}.partial-", dir=self.folder.parent))
        for name in self.layout.widths:
            np.lib.format.open_memmap(
                scratch / f"{name}.npy", mode="w+", dtype=np.float16, shape=self.layout.shape(name)
            )
        np.lib.format.open_memmap(scratch / "filled.npy", mode="w+", dtype=np.uint8, shape=(self.layout.rows,))
        if self.layout.per_token:
            np.save(scratch / f"{OFFSETS}.npy", np.concatenate([[0], np.cumsum(self.layout.lengths)]).astype(np.int64))
        files = [scratch / path.name for path in self._files]
        (scratch / MANIFEST).write_text(json.dumps({**self.layout.summary(), "checksum": _digest(files)}))
        try:
            scratch.rename(self.folder)
        except OSError:  # another process renamed its copy into place first
            shutil.rmtree(scratch, ignore_errors=True)
            if not self.folder.is_dir():
                raise

    @property
    def complete(self) -> bool:
        return bool(self.filled.all())

    def _positions(self, idx: np.ndarray, mask: Tensor) -> np.ndarray:
        """The per-token arrays' rows of the batch's real tokens, in the order `tensor[mask]` lists them.

        Raises:
            DistillError: the batch's real tokens differ from the lengths the cache was made for.
        """
        lengths = self.offsets[idx + 1] - self.offsets[idx]
        if not np.array_equal(lengths, mask.sum(1).cpu().numpy()):
            raise DistillError("teacher cache: a batch's token counts differ from the cached examples' (rebuild it)")
        return np.concatenate([np.arange(self.offsets[i], self.offsets[i + 1]) for i in idx])

    @staticmethod
    def _value(features: Features, name: str) -> Tensor:
        if name.startswith(LAYER):
            return features.hidden_states[int(name[len(LAYER) :])]
        return getattr(features, name)

    def lookup(self, batch: Mapping[str, Tensor], compute: Callable[[], Features]) -> Features:
        """Cached teacher features for the batch's rows; rows not cached yet are computed and stored."""
        idx = batch["idx"].cpu().numpy()
        mask = batch["attention_mask"].bool()
        positions = self._positions(idx, mask) if self.layout.per_token else None
        if not self.filled[idx].all():
            live = at_cache_precision(compute())
            for name, array in self.arrays.items():
                value = self._value(live, name).detach()
                value = value[mask] if name in self.layout.per_token else value
                array[positions if name in self.layout.per_token else idx] = value.float().cpu().numpy()
            self.filled[idx] = 1
        device = batch["input_ids"].device
        values, layers = {}, {}
        for name, array in self.arrays.items():
            rows = torch.from_numpy(np.asarray(array[positions if name in self.layout.per_token else idx], np.float32))
            if name in self.layout.per_token:
                full = torch.zeros(*mask.shape, rows.shape[-1])
                full[mask.cpu()] = rows
                rows = full
            if name.startswith(LAYER):
                layers[int(name[len(LAYER) :])] = rows.to(device)
            else:
                values[name] = rows.to(device)
        if layers:
            values["hidden_states"] = tuple(layers.get(i) for i in range(max(layers) + 1))
        return Features(attention_mask=batch["attention_mask"], **values)

    @classmethod
    def open(cls, settings: TeacherCache, teacher: nn.Module, data_fingerprint: str, layout: CacheLayout) -> CacheStore:
        """The store for this teacher, data and layout, reusing a matching folder when there is one."""
        arrays = ",".join(sorted(layout.widths))
        identity = f"{teacher.fingerprint()}/{data_fingerprint}/{arrays}"
        key = hashlib.sha256(identity.encode()).hexdigest()[:20]
        return cls(Path(settings.directory).expanduser() / key, layout)

    def flush(self) -> None:
        for array in (*self.arrays.values(), self.filled):
            array.flush()

    def seal(self) -> None:
        """Record the checksum of the flushed files, so the next run can trust them (one process per machine)."""
        manifest = {**self.layout.summary(), "checksum": _digest(self._files)}
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
