"""Where a task's examples come from: local files (CSV, TSV, JSON, JSONL, Parquet) or a hub dataset.

A source only finds and loads a split as a `datasets.Dataset` with the columns as they are; the task decides
which columns it reads and what their values mean. Errors name the YAML key and the file.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from distill.errors import DistillError
from distill.lazy import lazy_module
from distill.plugin_manager import registered
from distill.reader import FileReader

datasets = lazy_module("datasets")  # 0.6 s of start-up that `distill plugins` and `--help` never need

FileFormat = str  # a table format (TABLE_SUFFIXES) or the name of a registered FileReader
TABLE_SUFFIXES: dict[str, FileFormat] = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".json": "json",
    ".jsonl": "jsonl",
    ".parquet": "parquet",
}  # other layouts come from the FileReaders that plugins register


def fingerprint(*parts: object) -> str:
    """A short stable digest of `parts` (bytes are hashed as they are, anything else by its repr)."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part if isinstance(part, bytes) else repr(part).encode())
    return digest.hexdigest()[:16]


class DataSource(Protocol):
    """Finds the train, validation and test splits of a dataset (DataFiles and HubDataset are the two kinds;
    plain dataclasses, so YAML writes them as nested keys)."""

    def load(self, split: str) -> datasets.Dataset:
        """The split with its columns as stored.

        Raises:
            DistillError: the split is not configured, its file is missing or unreadable, or the hub is unreachable.
        """

    def has(self, split: str) -> bool:
        """Whether the split is configured."""

    def where(self, split: str, row: int | None = None) -> str:
        """The split (and 0-based row) as a user finds it: `data.files.train (train.csv), line 7`."""

    def identity(self, split: str) -> str:
        """Changes whenever the split's contents may have changed (it keys the tokenised cache)."""


@dataclass
class DataFiles:
    """Local files, one per split, read with the `datasets` loaders.

    Attributes:
        train: the training file.
        validation: the file checkpoints are selected on (and the report card is measured on).
        test: a file for `distill test`; the validation file when not given.
        format: csv, tsv, json, jsonl, parquet, or the name of a layout a plugin reads (`distill plugins` lists
            the readers: the built-in tasks bring conll and squad); by default each file's suffix decides, and a
            reader may recognise its layout by content (SQuAD's .json). TSV is read with quoting off (as GLUE's
            files need: a field holds no tab or newline); CSV with standard quoting. Give `format: conll` for
            CoNLL files named .txt.
        column_names: names for CSV or TSV files that have no header line.
    """

    train: str | None = None
    validation: str | None = None
    test: str | None = None
    format: FileFormat | None = None
    column_names: list[str] | None = None

    def path(self, split: str) -> Path:
        name = getattr(self, split)
        if name is None:
            raise DistillError(
                f"no {split} split: data.files.{split} is not set. Give the path of a "
                f"{'/'.join(TABLE_SUFFIXES)} file holding it"
            )
        return Path(name).expanduser()

    def has(self, split: str) -> bool:
        return getattr(self, split) is not None

    def file_format(self, split: str) -> FileFormat:
        return file_format(self.path(split), f"data.files.{split}", self.format)

    def load(self, split: str) -> datasets.Dataset:
        return load_table(self.path(split), f"data.files.{split}", self.format, self.column_names)

    def where(self, split: str, row: int | None = None) -> str:
        place = f"data.files.{split} ({self.path(split)})"
        if row is None:
            return place
        return f"{place}, {row_place(self.file_format(split), row, header=not self.column_names)}"

    def identity(self, split: str) -> str:
        path = self.path(split)
        return fingerprint(path.read_bytes(), self.file_format(split), self.column_names)


def row_place(kind: FileFormat, row: int, header: bool = True) -> str:
    """Where a 0-based row is in its file, as an editor shows it: `line 7` (a header line counted), `sentence 3`."""
    if kind in ("csv", "tsv"):
        return f"line {row + (2 if header else 1)}"
    if kind == "jsonl":
        return f"line {row + 1}"
    reader = readers().get(kind)
    return f"{reader.row if reader is not None else 'row'} {row + 1}"


def readers() -> dict[str, type[FileReader]]:
    """The layouts installed plugins read, by name."""
    return {cls.name: cls for cls, _ in registered("readers").values()}


def file_format(path: Path, key: str, given: FileFormat | None = None) -> FileFormat:
    """The format named in the config, else the one a reader recognises in the file or its suffix implies.

    Raises:
        DistillError: the format or the suffix is not one distill or an installed plugin reads.
    """
    layouts = readers()
    known = [*TABLE_SUFFIXES.values(), *layouts]
    if given is not None:
        if given not in known:
            raise DistillError(f"{key}: unknown format {given!r}; formats are {', '.join(known)} (`distill plugins`)")
        return given
    if path.is_file() and (found := next((r.name for r in layouts.values() if r.recognises(path)), None)):
        return found
    by_suffix = {**TABLE_SUFFIXES, **{s: r.name for r in layouts.values() for s in r.suffixes}}
    kind = by_suffix.get(path.suffix.lower())
    if kind is None:
        raise DistillError(
            f"{key} {str(path)!r}: unknown file type {path.suffix or '(no suffix)'!r}; use one of "
            f"{', '.join(by_suffix)} files" + (", or set data.files.format" if key.startswith("data.") else "")
        )
    return kind


def load_table(
    path: Path, key: str, given: FileFormat | None = None, column_names: list[str] | None = None
) -> datasets.Dataset:
    """A CSV, TSV, JSON, JSONL or Parquet file as a Dataset, its columns as stored (CSV and TSV: all text).

    Raises:
        DistillError: the file is missing, empty, of an unknown type, or malformed (with pandas' or pyarrow's
            account of the row).
    """
    kind = file_format(path, key, given)
    check_readable(path, key, kind)
    verbosity = datasets.logging.get_verbosity()
    datasets.logging.set_verbosity(datasets.logging.CRITICAL)  # the error below says it once, with the row
    try:
        return _load_file(path, kind, column_names)
    except DistillError:
        raise
    except Exception as error:  # pandas, pyarrow and json each raise their own types for a malformed file
        if kind in ("csv", "tsv") and len(path.read_text(encoding="utf-8-sig").strip().splitlines()) <= 1:
            raise DistillError(f"{key} {str(path)!r} has no rows: give a file with at least one example") from None
        raise DistillError(
            f"{key} {str(path)!r} could not be read as {kind}: {_root_cause(error)}. Fix the file"
        ) from None
    finally:
        datasets.logging.set_verbosity(verbosity)


def check_readable(path: Path, key: str, kind: FileFormat) -> None:
    """Say plainly why a data file cannot be read, before any loader tries: missing, a folder, a broken link or
    a link loop, no read permission, empty, no rows (an empty JSON array), or text that is not UTF-8.

    Raises:
        DistillError: naming the file, what is wrong, and the fix.
    """
    where = f"{key} {str(path)!r}"
    if path.is_symlink() and not path.exists():
        raise DistillError(f"{where} is a broken symbolic link or a link loop: point it at an existing file")
    if path.is_dir():
        raise DistillError(f"{where} is a folder: give the path of a file")
    if not path.is_file():
        raise DistillError(f"{where} does not exist: give the path of an existing file")
    if not os.access(path, os.R_OK):
        raise DistillError(f"{where} cannot be read (permission denied): fix its permissions or copy it")
    size = path.stat().st_size
    if size == 0:
        raise DistillError(f"{where} is empty: give a file with a header and rows")
    if (
        kind in ("json", "jsonl")
        and size < 64
        and path.read_text(encoding="utf-8-sig", errors="replace").strip()
        in (
            "[]",
            "{}",
            "",
        )
    ):
        raise DistillError(f"{where} has no rows: give a file with at least one example")
    if kind != "parquet":  # every other table and every layout a reader reads is text
        _check_utf8(path, where)


def _check_utf8(path: Path, where: str) -> None:
    """Text files are read as UTF-8: name the first byte that is not, by line and offset."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset, lines = 0, 1
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as error:
                bad = offset + error.start
                line = lines + chunk[: error.start].count(b"\n")
                raise DistillError(
                    f"{where} is not UTF-8: byte 0x{chunk[error.start]:02x} at offset {bad} (line {line}). Convert "
                    f"it from its encoding, e.g. Latin-1: iconv -f latin1 -t utf-8 FILE > FILE.utf8"
                ) from None
            offset, lines = offset + len(chunk), lines + chunk.count(b"\n")


def _root_cause(error: BaseException) -> str:
    """The innermost error's message: `datasets` wraps the parser's (which names the line) in its own."""
    while error.__cause__ is not None or error.__context__ is not None:
        error = error.__cause__ or error.__context__
    text = str(error).strip()
    return text.splitlines()[-1] if text else type(error).__name__


def _header(path: Path, separator: str, quoting: int) -> list[str]:
    """The header line's names (a UTF-8 byte-order mark before the first is dropped).

    Raises:
        DistillError: a name is given twice, so one of its columns would be silently dropped.
    """
    with path.open(newline="", encoding="utf-8-sig") as handle:
        names = next(csv.reader(handle, delimiter=separator, quoting=quoting), [])
    if duplicated := sorted({name for name in names if names.count(name) > 1}):
        raise DistillError(
            f"{path}: the header names column(s) {duplicated} more than once; rename them so each column has one name"
        )
    return names


def _load_file(path: Path, kind: FileFormat, column_names: list[str] | None) -> datasets.Dataset:
    files = {"data": str(path)}
    if kind not in TABLE_SUFFIXES.values():
        return readers()[kind].read(path)
    if kind in ("csv", "tsv"):
        quoting = csv.QUOTE_NONE if kind == "tsv" else csv.QUOTE_MINIMAL
        separator = "\t" if kind == "tsv" else ","
        names = column_names or _header(path, separator, quoting)
        # Every value is read as text, never guessed: "NA" or "null" is a sentence, and labels are parsed by the task.
        return datasets.load_dataset(
            "csv",
            data_files=files,
            split="data",
            sep=separator,
            quoting=quoting,
            column_names=column_names,
            encoding="utf-8-sig",
            keep_default_na=False,
            na_filter=False,
            features=datasets.Features({name: datasets.Value("string") for name in names}),
        )
    loader = "json" if kind in ("json", "jsonl") else kind
    return datasets.load_dataset(loader, data_files=files, split="data")


@dataclass
class HubDataset:
    """A dataset on the Hugging Face hub (or in its local cache), by `datasets.load_dataset(path, name)`.

    Attributes:
        path: the dataset's hub id, e.g. "imdb" or "nyu-mll/glue".
        name: its configuration name, e.g. "sst2"; None when it has one.
        train_split, validation_split, test_split: the split names on the hub; a test split of None scores
            `distill test` on the validation split.
        columns: hub column name -> the name the task reads, e.g. {"premise": "sentence1"}.
        class_names: read class-label columns as their names; false keeps the class ids (integers).
    """

    path: str = ""
    name: str | None = None
    train_split: str = "train"
    validation_split: str = "validation"
    test_split: str | None = None
    columns: dict[str, str] = field(default_factory=dict)
    class_names: bool = True

    def split_name(self, split: str) -> str:
        name = getattr(self, f"{split}_split")
        if name is None:
            raise DistillError(f"no {split} split: set data.hub.{split}_split to the hub's name for it")
        return name

    def has(self, split: str) -> bool:
        return getattr(self, f"{split}_split") is not None

    def load(self, split: str) -> datasets.Dataset:
        name = self.split_name(split)
        label = f"{self.path}" + (f" ({self.name})" if self.name else "")
        try:
            loaded = datasets.load_dataset(self.path, self.name, split=name)
        except Exception as error:  # datasets raises a different type for each way of being offline
            raise DistillError(
                f"could not load split {name!r} of hub dataset {label} ({type(error).__name__}). Offline "
                f"(HF_DATASETS_OFFLINE=1 or no network) only cached datasets load: point data.files.train and "
                f"data.files.validation at local CSV, TSV, JSON, JSONL or Parquet files instead (for a preset "
                f"task: data.data_dir at its folder; for distill bench: --data_dir)"
            ) from None
        if self.class_names:
            loaded = _class_ids_to_names(loaded)
        return loaded.rename_columns({k: v for k, v in self.columns.items() if k in loaded.column_names})

    def where(self, split: str, row: int | None = None) -> str:
        place = f"hub dataset {self.path}" + (f"/{self.name}" if self.name else "") + f" split {self.split_name(split)}"
        return place if row is None else f"{place}, row {row + 1}"

    def identity(self, split: str) -> str:
        return self.load(split)._fingerprint


def _class_ids_to_names(dataset: datasets.Dataset) -> datasets.Dataset:
    """Class-label columns (and lists of class labels, such as NER tags) as their names, so labels mean the same
    from the hub as from a file (-1: no label)."""
    for column, feature in dataset.features.items():
        inner = getattr(feature, "feature", None)
        if isinstance(feature, datasets.ClassLabel):
            target = datasets.Value("string")
        elif isinstance(inner, datasets.ClassLabel):
            target = datasets.List(datasets.Value("string"))
        else:
            continue
        dataset = dataset.map(
            _to_names,
            fn_kwargs={"column": column, "names": (inner or feature).names, "nested": inner is not None},
            batched=True,
            features=datasets.Features({**dataset.features, column: target}),
        )
    return dataset


def _to_names(rows: dict[str, list], column: str, names: list[str], nested: bool) -> dict[str, list]:
    def name(i: int) -> str | None:
        return names[i] if i >= 0 else None

    values = rows[column]
    return {column: [[name(i) for i in row] for row in values] if nested else [name(i) for i in values]}
