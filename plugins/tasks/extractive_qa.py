"""Extractive question answering (SQuAD v1.1 and v2.0): the answer is a span of the context.

The question and its context are tokenised as a pair; a context longer than max_length is split into windows
that overlap by `stride` word pieces, each a training and scoring unit of its own. The model gives a start and
an end logit per position, stacked as (B, T, 2). The gold span is labelled on the windows that hold it whole;
the others, and unanswerable questions, point at the first token ([CLS]). Scoring joins an example's windows:
the best of the n-best start/end pairs over all of them, against the null score (SQuAD v2) with a threshold,
mapped back to context characters through the offset mappings and compared with SQuAD's official normalisation.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import Tensor
from transformers import DataCollatorWithPadding

from distill import UNLABELLED, DataSource, DistillError, HubDataset, Preset, Task, lazy_module

datasets = lazy_module("datasets")

if TYPE_CHECKING:
    from torchmetrics import MetricCollection
    from transformers import PreTrainedTokenizerBase

OFFSETS = "offsets"  # per word piece: its [start, end) characters in the context, [-1, -1] outside it
CONTEXT = "qa_context"  # per window: the context text, so windows are scored without the rows
ANSWERS = "qa_answers"  # per window: the gold answer texts ([] for an unanswerable question)
_TEXTS, _STARTS = "answer_text", "answer_start"  # the answers as `read` leaves them
_MASKED = -1e4  # a logit no position beyond the padding can lose to, finite so KL stays defined


@dataclass
class ExtractiveQA(Task):
    """An answer span per question, taken from its context; SQuAD v2's unanswerable questions answer "".

    Attributes:
        question_column, context_column: the columns holding the question and the passage.
        answers_column: the gold answers, as the hub's squad datasets hold them ({text: [...], answer_start:
            [...]}, character offsets into the context) or as a list of {text, answer_start}; empty when the
            question has no answer.
        stride: word pieces two windows of a long context share.
        max_answer_length: the longest answer predicted, in word pieces.
        n_best: how many best start and end positions of each window are paired into candidate spans.
        no_answer: whether "no answer" is a prediction (SQuAD v2); None decides from the training split
            (true when it holds an unanswerable question).
        null_threshold: "no answer" wins when its score (start + end logit at [CLS]) beats the best span's
            by more than this.
        max_misaligned: the fraction of questions whose answers do not match the context at their
            answer_start that may be skipped (reported); above it the split is refused.
        name: what cards, logs and cache files call the task.
    """

    question_column: str = "question"
    context_column: str = "context"
    answers_column: str = "answers"
    stride: int = 128
    max_answer_length: int = 30
    n_best: int = 20
    no_answer: bool | None = None
    null_threshold: float = 0.0
    max_misaligned: float = 0.01
    name: str = "extractive_qa"
    head = "AutoModelForQuestionAnswering"
    per_token = True

    def __post_init__(self) -> None:
        if self.stride < 0 or self.max_answer_length < 1 or self.n_best < 1:
            raise DistillError("ExtractiveQA needs stride >= 0, max_answer_length >= 1 and n_best >= 1")
        self._read_notes: dict[str, list[str]] = {}  # a read split's fingerprint -> what `notes` reports

    @classmethod
    def presets(cls) -> dict[str, Preset]:
        return {
            "squad": Preset(
                {"no_answer": False, "name": "squad"},
                {"train": "train-v1.1.json", "validation": "dev-v1.1.json"},
                hub=HubDataset(path="rajpurkar/squad"),
            ),
            "squad_v2": Preset(
                {"no_answer": True, "name": "squad_v2"},
                {"train": "train-v2.0.json", "validation": "dev-v2.0.json"},
                hub=HubDataset(path="rajpurkar/squad_v2"),
            ),
        }

    @property
    def labels(self) -> list[str]:
        return ["start", "end"]

    @property
    def text_columns(self) -> list[str]:
        return [self.question_column, self.context_column]

    # --- examples ---------------------------------------------------------------------------------------------

    def read(self, source: DataSource, split: str, limit: int | None = None) -> datasets.Dataset:
        columns = {
            self.question_column: "question_column",
            self.context_column: "context_column",
            self.answers_column: "answers_column",
        }
        raw = self.load_columns(source, split, columns, limit)
        kept: dict[str, list] = {self.question_column: [], self.context_column: [], _TEXTS: [], _STARTS: [], "idx": []}
        misaligned: list[str] = []
        answerable = []
        for row, example in enumerate(raw):
            where = source.where(split, row)
            question, context = example[self.question_column], example[self.context_column]
            if not isinstance(context, str) or not context.strip():
                raise DistillError(
                    f"{where}: the context is empty: every question needs the passage it is answered from"
                )
            if not isinstance(question, str) or not question.strip():
                raise DistillError(f"{where}: the question is empty: fix that row or drop it")
            answers = _answer_pairs(example[self.answers_column], where, self.answers_column)
            aligned = [(text, start) for text, start in answers if context[start : start + len(text)] == text]
            if answers and not aligned:
                text, start = answers[0]
                misaligned.append(f"{where}: {text!r} at {start} reads {context[start : start + len(text)]!r}")
                continue
            answerable.append(bool(aligned))
            values = (question, context, [t for t, _ in aligned], [s for _, s in aligned], row)
            for key, value in zip(kept, values, strict=True):
                kept[key].append(value)
        self._check_misaligned(misaligned, len(raw), source, split)
        if split == "train" and self.no_answer is None:
            self.no_answer = not all(answerable)
        if self.no_answer is False and not all(answerable):
            row = kept["idx"][answerable.index(False)]
            raise DistillError(
                f"{source.where(split, row)}: the question has no answer, but the task predicts one for every "
                f"question (its training split has no unanswerable ones): set data.task.init_args.no_answer: true "
                f"(SQuAD v2), or drop such rows"
            )
        examples = datasets.Dataset.from_dict(kept)
        if misaligned:
            self._read_notes[examples._fingerprint] = [
                f"{len(misaligned)} of {len(raw)} questions skipped: no answer matches the context at its "
                f"answer_start (first: {misaligned[0]})"
            ]
        return examples

    def _check_misaligned(self, misaligned: list[str], rows: int, source: DataSource, split: str) -> None:
        if len(misaligned) > self.max_misaligned * rows or len(misaligned) == rows:
            raise DistillError(
                f"{len(misaligned)} of {rows} questions in {source.where(split)} have no answer whose text is found "
                f"at its answer_start, more than data.task.init_args.max_misaligned ({self.max_misaligned:.1%}) "
                f"allows (first: {misaligned[0]}). answer_start counts characters of the context from 0: fix the "
                f"offsets, or raise max_misaligned to skip those questions"
            )

    def encode(self, rows: dict[str, list], tokenizer: PreTrainedTokenizerBase, max_length: int) -> dict[str, list]:
        if not tokenizer.is_fast:
            raise DistillError("extractive QA needs a fast tokenizer (it maps word pieces back to characters)")
        questions, contexts = rows[self.question_column], rows[self.context_column]
        ids = rows["idx"] if "idx" in rows else list(range(len(questions)))
        self._check_room(questions, ids, tokenizer, max_length)
        encoded = tokenizer(
            questions,
            contexts,
            truncation="only_second",
            max_length=max_length,
            stride=self.stride,
            return_overflowing_tokens=True,
            return_offsets_mapping=True,
        )
        samples = encoded.pop("overflow_to_sample_mapping")
        mappings = encoded.pop("offset_mapping")
        offsets = [
            [
                list(span) if part == 1 else [-1, -1]
                for span, part in zip(mapping, encoded.sequence_ids(window), strict=True)
            ]
            for window, mapping in enumerate(mappings)
        ]
        encoded = dict(encoded)
        encoded[OFFSETS] = offsets
        encoded["idx"] = [ids[s] for s in samples]
        encoded[CONTEXT] = [contexts[s] for s in samples]
        if _TEXTS in rows:
            encoded[ANSWERS] = [rows[_TEXTS][s] for s in samples]
            encoded["labels"] = [
                answer_positions(spans, rows[_TEXTS][s], rows[_STARTS][s])
                for spans, s in zip(offsets, samples, strict=True)
            ]
        return encoded

    def _check_room(
        self, questions: list[str], ids: Sequence[int], tokenizer: PreTrainedTokenizerBase, max_length: int
    ) -> None:
        """Each window holds the whole question: refuse one that leaves no more context than the stride."""
        lengths = [len(pieces) for pieces in tokenizer(questions, add_special_tokens=False)["input_ids"]]
        room = max_length - tokenizer.num_special_tokens_to_add(pair=True)
        for row, length in zip(ids, lengths, strict=True):
            if room - length <= self.stride:
                raise DistillError(
                    f"the question of row {row + 1} is {length} word pieces long: with data.max_length {max_length} "
                    f"its windows keep {max(room - length, 0)} pieces of context, not more than the stride "
                    f"({self.stride}). Raise data.max_length, or lower data.task.init_args.stride"
                )

    def notes(self, examples: datasets.Dataset, encoded: datasets.Dataset, max_length: int) -> list[str]:
        """Skipped questions, contexts split into windows, and answers no window holds whole."""
        notes = list(self._read_notes.get(examples._fingerprint, []))
        windows = Counter(encoded["idx"])
        if split := sum(n > 1 for n in windows.values()):
            notes.append(
                f"{split} of {len(examples)} contexts are longer than max_length {max_length}: they were split into "
                f"{len(encoded)} windows for {len(examples)} questions (stride {self.stride})"
            )
        if "labels" in encoded.column_names and _TEXTS in examples.column_names:
            found = {i for i, label in zip(encoded["idx"], encoded["labels"], strict=True) if label != [0, 0]}
            lost = sum(
                bool(texts) and i not in found for i, texts in zip(examples["idx"], examples[_TEXTS], strict=True)
            )
            if lost:
                notes.append(
                    f"{lost} answers lie whole in no window, so they are trained as no answer: raise max_length "
                    f"or the stride to keep them"
                )
        return notes

    def collator(self, tokenizer: PreTrainedTokenizerBase) -> Any:
        return _PadWindows(DataCollatorWithPadding(tokenizer))

    # --- training and evaluation ------------------------------------------------------------------------------

    def label_loss(self, logits: Tensor, labels: Tensor) -> Tensor:
        """Cross-entropy of the start position and of the end position, averaged."""
        labelled = (labels != UNLABELLED).all(-1)
        if not labelled.any():
            return logits.sum() * 0.0
        logits, labels = logits[labelled], labels[labelled]
        return (F.cross_entropy(logits[..., 0], labels[:, 0]) + F.cross_entropy(logits[..., 1], labels[:, 1])) / 2

    def compared(self, logits: Tensor, batch: Mapping[str, Tensor]) -> Tensor:
        """Two distributions over positions per window, the start's and the end's: (2B, T), padding masked, so
        logit distillation is a KL·T² on each (their mean), as in Hugging Face's SQuAD distillation."""
        padding = ~batch["attention_mask"].bool()
        masked = logits.masked_fill(padding.unsqueeze(-1), _MASKED)
        return masked.transpose(1, 2).reshape(-1, logits.shape[1])

    def build_metrics(self, prefix: str, sync: bool = True) -> MetricCollection:
        settings = {"no_answer": bool(self.no_answer), "threshold": self.null_threshold, "sync_on_compute": sync}
        from torchmetrics import MetricCollection  # imported on first use: torchmetrics alone costs 2 s of start-up

        from distill.plugins.tasks.answer_scores import SCORES, AnswerScores

        names = SCORES if self.no_answer else SCORES[:2]
        metrics = {name: AnswerScores(name, **settings) for name in names}
        return MetricCollection(metrics, prefix=prefix, compute_groups=[list(names)])

    @property
    def main_metric(self) -> str:
        return "f1"

    def update_metrics(self, metrics: MetricCollection, logits: Tensor, batch: Mapping[str, Tensor]) -> None:
        score, first, last = best_spans(logits, batch[OFFSETS], self.n_best, self.max_answer_length)
        exact, overlap = [], []
        for a, b, context, golds in zip(first.tolist(), last.tolist(), batch[CONTEXT], batch[ANSWERS], strict=True):
            predicted = context[a:b] if a >= 0 else ""
            exact.append(max(exact_match(predicted, gold) for gold in golds or [""]))
            overlap.append(max(token_f1(predicted, gold) for gold in golds or [""]))
        unanswerable = torch.tensor([not golds for golds in batch[ANSWERS]], device=logits.device)
        metrics.update(
            batch["idx"], score, null_scores(logits), torch.tensor(exact), torch.tensor(overlap), unanswerable
        )

    def predictions(self, logits: Tensor) -> Tensor:
        """The most likely start and end position of each window: (B, 2)."""
        return logits.argmax(1)

    # --- serving ----------------------------------------------------------------------------------------------

    def prediction_columns(
        self, logits: Tensor, batch: Mapping[str, Tensor], rows: Mapping[str, list]
    ) -> dict[str, list]:
        """Per question: the answer text ("" for none) and its first character in the context (-1 for none)."""
        joined = {}
        if len(logits):
            score, first, last = best_spans(logits, batch[OFFSETS], self.n_best, self.max_answer_length)
            spans = zip(first.tolist(), last.tolist(), strict=True)
            joined = join_windows(batch["idx"].tolist(), score.tolist(), null_scores(logits).tolist(), spans)
        answers, starts = [], []
        for row, context in enumerate(rows.get(self.context_column, [])):
            score, null, (a, b) = joined.get(row, (float("-inf"), 0.0, (-1, -1)))
            if no_answer_wins(score, null, bool(self.no_answer), self.null_threshold):
                a, b = -1, -1
            answers.append(context[a:b] if a >= 0 else "")
            starts.append(a)
        return {"answer": answers, "answer_start": starts}


def _answer_pairs(value: Any, where: str, column: str) -> list[tuple[str, int]]:
    """(text, answer_start) pairs from {text: [...], answer_start: [...]} or [{text, answer_start}, ...]."""
    try:
        if isinstance(value, Mapping):
            texts, starts = value["text"], value["answer_start"]
            if len(texts) != len(starts):
                raise ValueError
            return [(str(t), int(s)) for t, s in zip(texts, starts, strict=True)]
        if isinstance(value, Sequence) and not isinstance(value, str):
            return [(str(answer["text"]), int(answer["answer_start"])) for answer in value]
    except (KeyError, TypeError, ValueError):
        pass
    raise DistillError(
        f"{where}: {column!r} holds {value!r}; give the answers as {{text: [...], answer_start: [...]}} (one start "
        f"per text) or as a list of {{text, answer_start}}, empty for no answer"
    )


def answer_positions(offsets: list[list[int]], texts: list[str], starts: list[int]) -> list[int]:
    """The first and last word piece of the first gold answer in one window; [0, 0] (the first token) when the
    question has no answer or the window does not hold it whole."""
    context = [i for i, (a, _) in enumerate(offsets) if a >= 0]
    if not texts or not context:
        return [0, 0]
    first_char, end_char = starts[0], starts[0] + len(texts[0])
    if offsets[context[0]][0] > first_char or offsets[context[-1]][1] < end_char:
        return [0, 0]
    first = max(i for i in context if offsets[i][0] <= first_char)
    last = min(i for i in context if offsets[i][1] >= end_char)
    return [first, last]


def best_spans(logits: Tensor, offsets: Tensor, n_best: int, max_answer_length: int) -> tuple[Tensor, Tensor, Tensor]:
    """Each window's best answer among its n-best start and end positions in the context, with end >= start and at
    most `max_answer_length` pieces: (score = start + end logit, first character, one past the last), and
    (-inf, -1, -1) for a window with no valid pair."""
    start, end = logits[..., 0].float(), logits[..., 1].float()
    inside = offsets[..., 0] >= 0
    k = min(n_best, logits.shape[1])
    start_score, start_at = start.masked_fill(~inside, float("-inf")).topk(k, dim=1)
    end_score, end_at = end.masked_fill(~inside, float("-inf")).topk(k, dim=1)
    pairs = start_score.unsqueeze(2) + end_score.unsqueeze(1)  # (B, k, k)
    length = end_at.unsqueeze(1) - start_at.unsqueeze(2)
    valid = (length >= 0) & (length < max_answer_length) & pairs.isfinite()
    pairs = pairs.masked_fill(~valid, float("-inf")).flatten(1)
    score, chosen = pairs.max(dim=1)
    first = start_at.gather(1, (chosen // k).unsqueeze(1)).squeeze(1)
    last = end_at.gather(1, (chosen % k).unsqueeze(1)).squeeze(1)
    rows = torch.arange(len(logits), device=logits.device)
    found = score.isfinite()
    first_char = torch.where(found, offsets[rows, first, 0], -1)
    end_char = torch.where(found, offsets[rows, last, 1], -1)
    return score, first_char, end_char


def join_windows(
    examples: Iterable[int], scores: Iterable[float], nulls: Iterable[float], payloads: Iterable[Any]
) -> dict[int, tuple[float, float, Any]]:
    """Per example: the best span score over its windows, the lowest null score over them, and the best window's
    payload (its span, or how that span scores against the gold answers)."""
    joined: dict[int, tuple[float, float, Any]] = {}
    for example, score, null, payload in zip(examples, scores, nulls, payloads, strict=True):
        if example not in joined:
            joined[example] = (score, null, payload)
            continue
        best, lowest, kept = joined[example]
        joined[example] = (score, min(lowest, null), payload) if score > best else (best, min(lowest, null), kept)
    return joined


def no_answer_wins(score: float, null: float, no_answer: bool, threshold: float) -> bool:
    """Whether an example answers "": it has no valid span, or (SQuAD v2) its null score beats the span's by more
    than the threshold."""
    return score == float("-inf") or (no_answer and null - score > threshold)


def null_scores(logits: Tensor) -> Tensor:
    """The score of "no answer" in each window: start + end logit at the first token ([CLS])."""
    return (logits[:, 0, 0] + logits[:, 0, 1]).float()


def normalize_answer(text: str) -> str:
    """SQuAD's official normalisation: lower case, no punctuation, no articles, single spaces."""
    text = "".join(c for c in text.lower() if c not in _PUNCTUATION)
    return " ".join(re.sub(r"\b(a|an|the)\b", " ", text).split())


_PUNCTUATION = frozenset(string.punctuation)


def exact_match(predicted: str, gold: str) -> float:
    return float(normalize_answer(predicted) == normalize_answer(gold))


def token_f1(predicted: str, gold: str) -> float:
    """SQuAD's F1: the overlap of normalised word bags; an empty answer scores 1 only against an empty one."""
    guess, truth = normalize_answer(predicted).split(), normalize_answer(gold).split()
    if not guess or not truth:
        return float(guess == truth)
    same = sum((Counter(guess) & Counter(truth)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(guess), same / len(truth)
    return 2 * precision * recall / (precision + recall)


class _PadWindows:
    """Pads the windows' tokens and offsets; labels become (B, 2) and the texts stay lists for the metrics."""

    def __init__(self, pad: DataCollatorWithPadding) -> None:
        self.pad = pad

    def __call__(self, rows: list[dict[str, Any]]) -> dict[str, Any]:
        carried = {key: [row[key] for row in rows] for key in (CONTEXT, ANSWERS) if rows and key in rows[0]}
        inputs = [
            {k: v for k, v in row.items() if k in ("input_ids", "attention_mask", "token_type_ids")} for row in rows
        ]
        batch = dict(self.pad(inputs))
        width = batch["input_ids"].shape[1] if rows else 0
        batch[OFFSETS] = torch.tensor([row[OFFSETS] + [[-1, -1]] * (width - len(row[OFFSETS])) for row in rows])
        for key in ("labels", "idx"):
            if rows and key in rows[0]:
                batch[key] = torch.tensor([row[key] for row in rows])
        return {**batch, **carried}
