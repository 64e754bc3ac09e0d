"""A student with a vocabulary of its own: each batch carries the teacher's and the student's tokenisation of
the same text, the student's under `student_` names, and the student reads only its own.

Sentence-level features (logits, pooled vectors) compare across tokenisations; per-token ones cannot, since
the two models' positions are different word pieces, so those losses (and per-token tasks) are refused.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from torch import Tensor
from transformers import PreTrainedTokenizerBase

from distill.errors import DistillError
from distill.loss import LossTerm
from distill.plugin_manager import registered
from distill.task import Task

STUDENT_PREFIX = "student_"
SHARED_COLUMNS = ("labels", "idx")  # the same for both tokenisations of a sentence-level example
TOKEN_LEVEL = frozenset({"hidden_states", "attentions", "values"})


def student_view(batch: Mapping[str, Tensor]) -> Mapping[str, Tensor]:
    """The batch as the student reads it: its own inputs when the batch carries them, else the batch itself."""
    if not any(key.startswith(STUDENT_PREFIX) for key in batch):
        return batch
    own = {key[len(STUDENT_PREFIX) :]: value for key, value in batch.items() if key.startswith(STUDENT_PREFIX)}
    return {**{key: batch[key] for key in SHARED_COLUMNS if key in batch}, **own}


def describe(tokenizer: PreTrainedTokenizerBase) -> str:
    return f"{tokenizer.name_or_path or type(tokenizer).__name__} ({len(tokenizer)} pieces)"


def check_crossing(
    losses: Sequence[LossTerm], task: Task, teacher: PreTrainedTokenizerBase, student: PreTrainedTokenizerBase
) -> None:
    """Refuse, at set-up, what cannot cross from the teacher's tokenisation to the student's.

    Raises:
        DistillError: a loss reads the teacher's per-token features, or the task predicts per token.
    """
    pair = f"the teacher tokenises with {describe(teacher)} and the student with {describe(student)}"
    if task.per_token:
        raise DistillError(
            f"task {task.name} predicts per token, and {pair}, so their tokens do not line up: build the student "
            f"on the teacher's tokenizer (drop its own tokenizer)"
        )
    for term in losses:
        if crossing := term.from_teacher & TOKEN_LEVEL:
            raise DistillError(
                f"loss {term.name!r} compares the teacher's per-token {sorted(crossing)} with the student's, but "
                f"{pair}: use sentence-level losses ({', '.join(sentence_level_losses())}) or a student on the "
                f"teacher's tokenizer"
            )


def sentence_level_losses() -> list[str]:
    """The installed losses that read the teacher but none of its per-token features: those that cross tokenizers."""
    losses = registered("losses").items()
    teacher_reads = {name: cls.needs if cls.teacher_needs is None else cls.teacher_needs for name, (cls, _) in losses}
    return sorted(name for name, reads in teacher_reads.items() if reads and not reads & TOKEN_LEVEL)


class PairedCollator:
    """Pads each tokenisation with its own tokenizer's collator and returns one batch holding both."""

    def __init__(self, teacher: Callable[[list[dict]], Any], student: Callable[[list[dict]], Any]) -> None:
        self.teacher, self.student = teacher, student

    def __call__(self, rows: list[dict[str, Any]]) -> dict[str, Any]:
        theirs = [{k: v for k, v in row.items() if not k.startswith(STUDENT_PREFIX)} for row in rows]
        mine = [dict(student_view(row)) for row in rows]
        batch = dict(self.teacher(theirs))
        own = self.student(mine)
        batch |= {STUDENT_PREFIX + key: value for key, value in own.items() if key not in SHARED_COLUMNS}
        return batch
