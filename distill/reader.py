"""File layouts beyond the plain tables: a task plugin teaches distill to read one (CoNLL columns, SQuAD JSON)."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from distill.lazy import lazy_module

datasets = lazy_module("datasets")  # 0.6 s of start-up that `distill plugins` and `--help` never need


class FileReader:
    """One file layout, registered through `distill_register_readers`. `data.files` and `distill predict` find a
    file's reader by its suffix, by `recognises` (for a layout whose suffix plain files share, such as SQuAD's
    .json), or by name (`data.files.format: conll`).

    Class attributes:
        name: the layout's name in `data.files.format`.
        suffixes: file suffixes that mean this layout (".conll").
        row: what one row of the result is called in the file, for messages ("sentence 3").
    """

    name: ClassVar[str]
    suffixes: ClassVar[tuple[str, ...]] = ()
    row: ClassVar[str] = "row"

    @classmethod
    def recognises(cls, path: Path) -> bool:
        """Whether a file whose suffix does not name a layout holds this one, judged by its first bytes."""
        return False

    @classmethod
    def read(cls, path: Path) -> datasets.Dataset:
        """The file's rows, with the columns the task that registered the reader reads.

        Raises:
            DistillError: a line or an entry is malformed (its place in the file is named).
        """
        raise NotImplementedError
