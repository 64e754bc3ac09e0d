"""A file of soft labels as the teacher (`model.teacher: labels.parquet`): what a large model, an annotation tool
or an earlier run said of each training example, with no model to run.

The file holds one row per training example, keyed by row order or by an id column, with one column per label
of the task (its label names, behind an optional prefix such as `probability_`, which `distill predict` writes).
A token task's label columns hold one value per word. The values are probabilities, logits or
log-probabilities; the file says which (`values:`), or it is inferred from them and stated in the run's notes.
"""

from __future__ import annotations

import json
import math
from itertools import accumulate
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor

from distill import (
    Anatomy,
    BaseTeacher,
    DistillError,
    Features,
    Task,
    file_format,
    load_table,
    row_place,
)

Values = Literal["probabilities", "logits", "log_probabilities"]
SUFFIXES = (".parquet", ".jsonl", ".json", ".csv", ".tsv")
SUM_TOLERANCE = 1e-3  # how far a row of probabilities may sum from 1
KEY = "model.teacher"
LOGIT, PROBABILITY = "logit_", "probability_"  # the columns `distill predict` writes (with --logits, the first)


class SoftLabels(BaseTeacher):
    """Soft labels read from a file, answered by example. It has no hidden states or attention maps: losses that
    read them are refused. It has no tokenizer either: the student brings its own (or `tokenizer:` names a
    model folder or hub id whose tokenizer, and layers for `init_from_teacher`, the students use).

    A softmax task's probabilities must sum to 1 per example (per word); a multi-label task's are one
    probability per label; a regression task's single column is the score itself.
    """

    cacheable = False  # a table already
    labels_new_rows = False  # it holds the training examples' rows only

    def __init__(
        self,
        path: str,
        values: Values | None = None,
        id_column: str | None = None,
        prefix: str | None = None,
        tokenizer: str | None = None,
        *,
        task: Task,
        trust_remote_code: bool = False,
    ) -> None:
        """Args:
        path: the Parquet, JSONL, JSON, CSV or TSV file.
        values: probabilities, logits or log_probabilities; None infers it from the values.
        id_column: the column keying each row by the training file's column of the same name; None keys them by
            row order (the training examples' order, a corpus's rows after the file's).
        prefix: what comes before each label name in the column names; None takes the label names themselves,
            else `logit_<label>` columns as logits, else `probability_<label>` columns as probabilities (what
            `distill predict --logits` writes).
        tokenizer: a model folder or hub id whose tokenizer the data is tokenised with and whose layers students
            may copy (the model is loaded, never run); None leaves the tokenizer to the student.
        task: the run's task; trust_remote_code: as for a model teacher.
        """
        super().__init__()
        if task.output == "embedding":
            raise DistillError(f"{KEY} {path!r} is a soft-label file, but task {task.name} outputs embeddings: "
                               f"give an embedding model as the teacher")  # fmt: skip
        self.source, self.task, self.path = path, task, Path(path).expanduser()
        self.id_column, self.notes = id_column, []
        table = load_table(self.path, KEY)
        self.kind = file_format(self.path, KEY)
        names = list(task.labels) if task.labels is not None else ["score"]
        if prefix is None:
            prefix, values = self._prefix(table.column_names, names, values)
        columns = [prefix + name for name in names]
        if missing := [c for c in columns if c not in table.column_names]:
            raise DistillError(
                f"{KEY} {str(self.path)!r} has no column(s) {missing} for the task's labels {names}; its columns "
                f"are {table.column_names}. Name one column per label (set `prefix` if they share one)"
            )
        if id_column is not None and id_column not in table.column_names:
            raise DistillError(f"{KEY} {str(self.path)!r} has no id column {id_column!r}; its columns are "
                               f"{table.column_names}")  # fmt: skip
        self.ids = [str(i) for i in table[id_column]] if id_column is not None else None
        cells = [table[c] for c in columns]
        rows = [self._row([column[r] for column in cells], r) for r in range(len(table))]
        self.values = values or self._inferred(rows)
        self._check(rows)
        lengths = [len(row) for row in rows]
        self.register_buffer("table", torch.tensor([v for row in rows for v in row], dtype=torch.float64))
        self.register_buffer("offsets", torch.tensor([0, *lengths]).cumsum(0))
        self.take_encoder(tokenizer, task, trust_remote_code)
        self.anatomy = Anatomy(family="soft_labels", provides=frozenset({"logits"}), num_labels=len(names))
        self.order: Tensor | None = None  # training example -> file row, fixed by `prepare`

    # --- reading ------------------------------------------------------------------------------------------------

    def _prefix(self, columns: list[str], names: list[str], values: Values | None) -> tuple[str, Values | None]:
        """The label columns' prefix when none was given: none, `logit_` or `probability_`, whichever columns exist
        (the last two say what their values are)."""
        for prefix, meaning in (("", values), (LOGIT, "logits"), (PROBABILITY, "probabilities")):
            if all(prefix + name in columns for name in names):
                if prefix:
                    self.notes.append(f"{KEY} {str(self.path)!r}: read the {prefix}<label> columns as {meaning}")
                return prefix, values or meaning
        return "", values

    def _row(self, cells: list[Any], row: int) -> list[list[float]]:
        """One example's values from its label cells: a list per word (token tasks) or one list, each with a
        value per label."""
        cells = [_parsed(cell) for cell in cells]
        where = self._where(row)
        if self.task.per_token:
            if not all(isinstance(c, list) for c in cells) or len({len(c) for c in cells}) != 1:
                raise DistillError(f"{where}: a token task's label columns hold one list of values per word, each "
                                   f"as long as the sentence; got {cells}")  # fmt: skip
            per_word = [list(word) for word in zip(*cells, strict=True)]
        else:
            per_word = [cells]
        for word in per_word:
            if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in word):
                raise DistillError(f"{where}: {word} holds a value that is not a number")
            if not all(math.isfinite(v) for v in word):
                raise DistillError(f"{where}: {word} holds NaN or Inf: fix that row")
        return per_word

    def _inferred(self, rows: list[list[list[float]]]) -> Values:
        """probabilities when every value is in [0, 1] (and rows sum to 1 for a softmax task), log-probabilities
        when every value is at most 0 and their exponents sum to 1, else logits; stated in the run's notes."""
        vectors = [v for row in rows for v in row]
        if self.task.output == "score":
            kind = "logits"
        elif all(0 <= x <= 1 for v in vectors for x in v) and (
            self.task.output != "softmax" or all(abs(sum(v) - 1) <= SUM_TOLERANCE for v in vectors)
        ):
            kind = "probabilities"
        elif all(x <= 0 for v in vectors for x in v) and (
            self.task.output != "softmax" or all(abs(sum(map(math.exp, v)) - 1) <= SUM_TOLERANCE for v in vectors)
        ):
            kind = "log_probabilities"
        else:
            kind = "logits"
        self.notes.append(f"{KEY} {str(self.path)!r} gives no `values:`; read as {kind} (set values: to say so)")
        return kind

    def _check(self, rows: list[list[list[float]]]) -> None:
        if self.values not in ("probabilities", "logits", "log_probabilities"):
            raise DistillError(f"{KEY} values {self.values!r} is unknown: use probabilities, logits or "
                               f"log_probabilities")  # fmt: skip
        for r, row in enumerate(rows):
            for word in row:
                if self.values == "probabilities" and any(not 0 <= x <= 1 for x in word):
                    raise DistillError(f"{self._where(r)}: {word} are not probabilities (each in [0, 1])")
                if self.values == "log_probabilities" and any(x > 0 for x in word):
                    raise DistillError(f"{self._where(r)}: {word} are not log-probabilities (each at most 0)")
                if self.task.output == "softmax" and self.values != "logits":
                    total = sum(word) if self.values == "probabilities" else sum(map(math.exp, word))
                    if abs(total - 1) > SUM_TOLERANCE:
                        raise DistillError(
                            f"{self._where(r)}: {self.values} {word} sum to {total:.4f}, not 1 (within "
                            f"{SUM_TOLERANCE}): fix the row, or set values: logits if they are not probabilities"
                        )

    def _where(self, row: int) -> str:
        return f"{KEY} {str(self.path)!r}, {row_place(self.kind, row)}"

    # --- the run ------------------------------------------------------------------------------------------------

    def prepare(self, data: Any) -> None:
        """Match each training example to its row, and check the rows cover every example (word for word)."""
        examples = data.read("train")
        if self.ids is None:
            if len(self.offsets) - 1 != len(examples):
                raise DistillError(
                    f"{KEY} {str(self.path)!r} has {len(self.offsets) - 1} rows, but the training data has "
                    f"{len(examples)} examples (after train_limit and data.corpus): give one row per example, in "
                    f"their order, or key the rows by id_column"
                )
            order = list(range(len(examples)))
        else:
            order = self._keyed(data, len(examples))
        if self.task.per_token:
            words = examples[self.task.text_columns[0]]
            for example, row in enumerate(order):
                have = int(self.offsets[row + 1] - self.offsets[row])
                if have != len(words[example]):
                    raise DistillError(f"{self._where(row)}: {have} words' values, but training example "
                                       f"{example + 1} has {len(words[example])} words")  # fmt: skip
        self.order = torch.tensor(order)
        for note in self.notes:
            data.notes.setdefault("train", []).append(note)

    def _keyed(self, data: Any, count: int) -> list[int]:
        """Each training example's row, by the training file's id column."""
        if getattr(data, "corpus", None) is not None:
            raise DistillError(f"{KEY} keys its rows by id_column {self.id_column!r}, but data.corpus rows have no "
                               f"id: drop id_column and give one row per example in order")  # fmt: skip
        raw = data.source.load("train")
        if self.id_column not in raw.column_names:
            raise DistillError(f"{data.source.where('train')} has no id column {self.id_column!r} to match the "
                               f"rows of {KEY} {str(self.path)!r} by; its columns are {raw.column_names}")  # fmt: skip
        position = {key: row for row, key in enumerate(self.ids)}
        wanted = [str(key) for key in raw[self.id_column][:count]]
        if missing := [key for key in wanted if key not in position]:
            raise DistillError(f"{KEY} {str(self.path)!r} has no row for {len(missing)} training example(s), "
                               f"id(s) {missing[:5]}: add them")  # fmt: skip
        return [position[key] for key in wanted]

    @torch.no_grad()
    def forward(self, batch: dict[str, Tensor], needs: frozenset[str]) -> Features:
        if self.order is None:
            raise DistillError("SoftLabels.prepare was not called: the run's data must be set up first")
        rows = self.order.to(self.offsets.device)[batch["idx"]]
        logits = self._logits(rows)
        if self.task.per_token:
            logits = self._placed(logits, rows, batch)
        return Features(logits=logits.float(), attention_mask=batch["attention_mask"])

    def _logits(self, rows: Tensor) -> Tensor:
        """(words of the rows, labels) as logits: probabilities through log (softmax) or logit (sigmoid)."""
        starts, ends = self.offsets[rows], self.offsets[rows + 1]
        values = torch.cat([self.table[a:b] for a, b in zip(starts.tolist(), ends.tolist(), strict=True)])
        if self.values != "probabilities":
            return values
        if self.task.output == "sigmoid":
            return torch.logit(values, eps=1e-7)
        return values.clamp(min=1e-12).log()

    def _placed(self, words: Tensor, rows: Tensor, batch: dict[str, Tensor]) -> Tensor:
        """A token task's (B, T, labels) logits: each word's values at the positions the task compares (its first
        piece), in word order; a sentence cut by max_length drops its last words."""
        shape = batch["input_ids"].shape
        flat = torch.arange(shape[0] * shape[1], device=batch["input_ids"].device).view(*shape, 1)
        positions = self.task.compared(flat, batch).flatten()
        placed = torch.zeros(*shape, words.shape[-1], dtype=words.dtype, device=words.device)
        counts = (self.offsets[rows + 1] - self.offsets[rows]).tolist()
        starts = [0, *accumulate(counts)][:-1]
        per_row = positions.div(shape[1], rounding_mode="floor")
        taken = []
        for row, (start, count) in enumerate(zip(starts, counts, strict=True)):
            kept = int((per_row == row).sum())
            taken.append(words[start : start + min(kept, count)])
        placed.view(-1, words.shape[-1])[positions] = torch.cat(taken)
        return placed

    @classmethod
    def claims(cls, source: str) -> bool:
        return Path(source).suffix.lower() in SUFFIXES and not Path(source).expanduser().is_dir()


def _parsed(value: Any) -> Any:
    """A cell as a number or a list: CSV and TSV cells are text, JSON inside them is read."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value
