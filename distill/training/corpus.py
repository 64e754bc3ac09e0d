"""Unlabelled text for the training split (`data.corpus:`): the corpus of a task-agnostic stage, or in-domain
text added to the labelled rows.

Its rows carry no gold label, like a transfer set's synthetic rows: the hard-label loss skips them, and the
distillation losses learn from what the teacher outputs on them. The task's own training split still fixes
the label space the student's head is built for.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from distill.errors import DistillError
from distill.lazy import lazy_module
from distill.sources import file_format, fingerprint, load_table, row_place

datasets = lazy_module("datasets")

KEY = "data.corpus.path"


@dataclass
class Corpus:
    """The `data.corpus:` section of a config.

    Attributes:
        path: a .txt file with one example per line (blank lines are skipped; single-text tasks only), or a CSV,
            TSV, JSON, JSONL or Parquet file with the text columns. Its other columns, labels included, are
            never read.
        text_columns: the file's text columns, in the order of the task's (a premise before its hypothesis);
            the task's own names by default.
        only: train on the corpus alone (a task-agnostic stage) instead of adding it to the training split.
        limit: use only the first N examples.
    """

    path: str
    text_columns: list[str] | None = None
    only: bool = False
    limit: int | None = None

    def __post_init__(self) -> None:
        if self.limit is not None and self.limit < 1:
            raise DistillError(f"data.corpus.limit must be at least 1 example, got {self.limit}")

    def source(self, task_columns: Sequence[str]) -> CorpusFile:
        """The file as a one-split data source whose columns carry the task's text-column names."""
        columns = list(self.text_columns or task_columns)
        if len(columns) != len(task_columns):
            raise DistillError(
                f"data.corpus.text_columns names {len(columns)} column(s) {columns}, but the task reads "
                f"{len(task_columns)} text(s) per example {list(task_columns)}: name one column per text"
            )
        return CorpusFile(Path(self.path).expanduser(), dict(zip(columns, task_columns, strict=True)))


@dataclass
class CorpusFile:
    """A corpus file as a DataSource with a train split only, its text columns renamed to the task's."""

    path: Path
    renames: dict[str, str]  # the file's column -> the task's

    def _is_lines(self) -> bool:
        return self.path.suffix.lower() == ".txt"

    def load(self, split: str) -> datasets.Dataset:
        if self._is_lines():
            return self._lines()
        table = load_table(self.path, KEY)
        if missing := [c for c in self.renames if c not in table.column_names]:
            raise DistillError(
                f"{self.where(split)} has no column(s) {missing}; its columns are {table.column_names}. Name its "
                f"text columns in data.corpus.text_columns"
            )
        table = table.select_columns(list(self.renames))
        for column in self.renames:  # checked here, where the file's own column names can be given
            gaps = (row for row, text in enumerate(table[column]) if not isinstance(text, str))
            if (row := next(gaps, None)) is not None:
                raise DistillError(f"{self.where(split, row)}: no text in column {column!r}: fix that row or drop it")
        return table.rename_columns({old: new for old, new in self.renames.items() if old != new})

    def _lines(self) -> datasets.Dataset:
        if len(self.renames) != 1:
            raise DistillError(
                f"{KEY} {str(self.path)!r} is a .txt file, one text per line, but the task reads pairs of texts: "
                f"give a CSV, TSV, JSON, JSONL or Parquet file with one column per text"
            )
        if not self.path.is_file():
            raise DistillError(f"{KEY} {str(self.path)!r} does not exist: give the path of an existing file")
        try:
            lines = self.path.read_text(encoding="utf-8").splitlines()
        except UnicodeDecodeError as error:
            raise DistillError(
                f"{KEY} {str(self.path)!r} is not UTF-8 text ({error.reason}): re-save it as UTF-8"
            ) from None
        (column,) = self.renames.values()
        return datasets.Dataset.from_dict({column: [line for line in lines if line.strip()]})

    def has(self, split: str) -> bool:
        return split == "train"

    def where(self, split: str, row: int | None = None) -> str:
        place = f"{KEY} ({self.path})"
        if row is None:
            return place
        if self._is_lines():  # blank lines are skipped, so a row is counted among the examples
            return f"{place}, example {row + 1}"
        return f"{place}, {row_place(file_format(self.path, KEY), row)}"

    def identity(self, split: str) -> str:
        return fingerprint(self.path.read_bytes(), self.renames)
