"""Token classification (named entities, and any one-tag-per-word scheme): a prediction per word.

Words are split into word pieces by the model's tokenizer. By default the first piece of each word carries the
word's tag and the others are UNLABELLED (skipped by the loss, the distillation and the metrics); with
`label_all_pieces` every piece carries it. Predictions map back to words through each word's first piece.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import accumulate
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import Tensor
from transformers import DataCollatorForTokenClassification

from distill import UNLABELLED, DataSource, DistillError, Task, lazy_module

datasets = lazy_module("datasets")

if TYPE_CHECKING:
    from torchmetrics import MetricCollection
    from transformers import PreTrainedTokenizerBase

WORD_INDEX = "word_index"  # per word piece: the word it belongs to, -1 for special tokens and padding


@dataclass
class TokenClassification(Task):
    """One tag per word, IOB2 entity tags for named-entity recognition (B-PER, I-PER, O, ...).

    Attributes:
        tokens_column: the column holding each sentence's words (a list of strings; CoNLL files give `tokens`).
        tags_column: the column holding each word's tag (CoNLL files give `tags`).
        labels: the tags in the order of the model's outputs; None discovers them from the training split,
            sorted. An integer tag (hub data) that is not itself a tag name is read as a position here.
        label_all_pieces: every word piece carries its word's tag (the default: only the first piece).
        name: what cards, logs and cache files call the task.
    """

    tokens_column: str = "tokens"
    tags_column: str = "tags"
    labels: list[str] | None = None
    label_all_pieces: bool = False
    name: str = "tokenclassification"
    head = "AutoModelForTokenClassification"
    per_token = True
    split_into_words = True

    @property
    def text_columns(self) -> list[str]:
        return [self.tokens_column]

    @property
    def is_pair(self) -> bool:
        return False

    # --- examples ---------------------------------------------------------------------------------------------

    def read(self, source: DataSource, split: str, limit: int | None = None) -> datasets.Dataset:
        columns = {self.tokens_column: "tokens_column", self.tags_column: "tags_column"}
        raw = self.load_columns(source, split, columns, limit)
        words, tags = raw[self.tokens_column], [self._tags(row, source, split, i) for i, row in enumerate(raw)]
        for row, (sentence, sentence_tags) in enumerate(zip(words, tags, strict=True)):
            if not sentence or not all(isinstance(w, str) for w in sentence):
                raise DistillError(
                    f"{source.where(split, row)}: {self.tokens_column!r} must be a non-empty list of words"
                )
            if len(sentence) != len(sentence_tags):
                raise DistillError(
                    f"{source.where(split, row)}: {len(sentence)} words but {len(sentence_tags)} tags: "
                    f"give one tag per word"
                )
        if split == "train" and self.labels is None:
            self.labels = sorted({tag for sentence in tags for tag in sentence})
        known = {tag: i for i, tag in enumerate(self.labels)}
        for row, sentence_tags in enumerate(tags):
            if unseen := [t for t in sentence_tags if t not in known]:
                seen = "seen in the training split" if split != "train" else "given in data.task.init_args.labels"
                raise DistillError(
                    f"{source.where(split, row)}: tag {unseen[0]!r} is not among the tags {seen} ({self.labels}): "
                    f"fix the row, or list every tag under data.task.init_args.labels"
                )
        ids = [[known[t] for t in sentence_tags] for sentence_tags in tags]
        return datasets.Dataset.from_dict({self.tokens_column: words, "labels": ids, "idx": list(range(len(raw)))})

    def read_unlabelled(self, source: DataSource, split: str, limit: int | None = None) -> datasets.Dataset:
        """Sentences of raw text (a corpus), split into words at whitespace, every word UNLABELLED: the teacher
        tags them, and the distillation losses learn each word's tag distribution."""
        raw = self.load_columns(source, split, {self.tokens_column: "tokens_column (or data.corpus.text_columns)"},
                                limit)  # fmt: skip
        words = []
        for row, text in enumerate(raw[self.tokens_column]):
            sentence = text.split() if isinstance(text, str) else text
            if not sentence or not all(isinstance(w, str) for w in sentence):
                raise DistillError(f"{source.where(split, row)}: {text!r} holds no words: fix that row or drop it")
            words.append(sentence)
        labels = [[UNLABELLED] * len(sentence) for sentence in words]
        return datasets.Dataset.from_dict({self.tokens_column: words, "labels": labels, "idx": list(range(len(words)))})

    def _tags(self, row: Mapping[str, Any], source: DataSource, split: str, index: int) -> list[str]:
        values = row[self.tags_column]
        if not isinstance(values, Sequence) or isinstance(values, str):
            raise DistillError(f"{source.where(split, index)}: {self.tags_column!r} must be a list of tags")
        tags = []
        for value in values:
            if isinstance(value, int) and self.labels is not None and str(value) not in self.labels:
                if not 0 <= value < len(self.labels):
                    raise DistillError(
                        f"{source.where(split, index)}: tag id {value} is out of range for {self.labels}"
                    )
                value = self.labels[value]
            tags.append(str(value))
        return tags

    def encode(self, rows: dict[str, list], tokenizer: PreTrainedTokenizerBase, max_length: int) -> dict[str, list]:
        if not tokenizer.is_fast:
            raise DistillError("token classification needs a fast tokenizer (it maps word pieces back to words)")
        encoded = tokenizer(rows[self.tokens_column], is_split_into_words=True, truncation=True, max_length=max_length)
        pieces = [encoded.word_ids(i) for i in range(len(rows[self.tokens_column]))]
        encoded[WORD_INDEX] = [[-1 if w is None else w for w in words] for words in pieces]
        if "labels" in rows:
            encoded["labels"] = [self._align(tags, words) for tags, words in zip(rows["labels"], pieces, strict=True)]
        return encoded

    def notes(self, examples: datasets.Dataset, encoded: datasets.Dataset, max_length: int) -> list[str]:
        """How many sentences max_length cut: their last words are neither trained nor scored."""
        kept = [max(pieces) + 1 for pieces in encoded[WORD_INDEX]]
        cut = [len(words) - k for words, k in zip(examples[self.tokens_column], kept, strict=True) if k < len(words)]
        if not cut:
            return []
        return [
            f"{len(cut)} of {len(kept)} sentences are longer than max_length {max_length} word pieces; "
            f"{sum(cut)} words were cut off (raise data.max_length to keep them)"
        ]

    def _align(self, tags: list[int], words: list[int | None]) -> list[int]:
        aligned, previous = [], None
        for word in words:
            first = word is not None and word != previous
            aligned.append(tags[word] if word is not None and (first or self.label_all_pieces) else UNLABELLED)
            previous = word
        return aligned

    def collator(self, tokenizer: PreTrainedTokenizerBase) -> Any:
        return _PadWordIndex(DataCollatorForTokenClassification(tokenizer, label_pad_token_id=UNLABELLED))

    # --- training and evaluation ------------------------------------------------------------------------------

    def label_loss(self, logits: Tensor, labels: Tensor) -> Tensor:
        labelled = labels != UNLABELLED
        if not labelled.any():
            return logits.sum() * 0.0
        return F.cross_entropy(logits[labelled], labels[labelled])

    def compared(self, logits: Tensor, batch: Mapping[str, Tensor]) -> Tensor:
        """Only the positions that carry a word's tag (each word's first piece, or every piece with
        `label_all_pieces`), with a gold tag or not: a corpus sentence's words are compared to the teacher's too."""
        words = batch[WORD_INDEX]
        tagged = words >= 0
        if not self.label_all_pieces:
            tagged[:, 1:] &= words[:, 1:] != words[:, :-1]
        return logits[tagged]

    def build_metrics(self, prefix: str, sync: bool = True) -> MetricCollection:
        from torchmetrics import MetricCollection  # imported on first use: torchmetrics alone costs 2 s of start-up

        from distill.plugins.tasks.entity_scores import SCORES, EntityScores

        metrics = {name: EntityScores(list(self.labels), name, sync_on_compute=sync) for name in SCORES}
        return MetricCollection(metrics, prefix=prefix, compute_groups=[list(SCORES)])

    @property
    def main_metric(self) -> str:
        return "entity_f1"

    def update_metrics(self, metrics: MetricCollection, logits: Tensor, batch: Mapping[str, Tensor]) -> None:
        metrics.update(logits.argmax(-1), batch["labels"])

    def predictions(self, logits: Tensor) -> Tensor:
        return logits.argmax(-1)

    # --- serving ----------------------------------------------------------------------------------------------

    def prediction_columns(
        self, logits: Tensor, batch: Mapping[str, Tensor], rows: Mapping[str, list]
    ) -> dict[str, list]:
        """Per sentence: each word's tag, and the entities they spell: type, text, first and last word, and their
        characters (start, one past the end) in the sentence's words joined by single spaces."""
        chosen = logits.argmax(-1).tolist()
        tags, entities = [], []
        for row, (pieces, words) in enumerate(zip(batch[WORD_INDEX].tolist(), rows[self.tokens_column], strict=True)):
            by_word: dict[int, str] = {}
            for position, word in enumerate(pieces):
                if word >= 0 and word not in by_word:
                    by_word[word] = self.labels[chosen[row][position]]
            sentence = [by_word.get(i, "O") for i in range(len(words))]  # words cut off by max_length read as O
            tags.append(" ".join(sentence))
            found = entity_spans(sentence)
            starts = list(accumulate((len(w) + 1 for w in words[:-1]), initial=0))  # each word's first character
            entities.append(
                [
                    {"type": kind, "text": " ".join(words[a:b]), "first_word": a, "last_word": b - 1,
                     "start": starts[a], "end": starts[b - 1] + len(words[b - 1])}
                    for kind, a, b in found
                ]
            )  # fmt: skip
        return {"tags": tags, "entities": entities}


class _PadWordIndex:
    """Token classification's padding, plus the word index of every piece (padded with -1)."""

    def __init__(self, pad: DataCollatorForTokenClassification) -> None:
        self.pad = pad

    def __call__(self, rows: list[dict[str, Any]]) -> dict[str, Tensor]:
        words = [row.pop(WORD_INDEX) for row in rows]
        batch = self.pad([{k: v for k, v in row.items() if k != "idx"} for row in rows])
        width = batch["input_ids"].shape[1]
        batch[WORD_INDEX] = torch.tensor([w + [-1] * (width - len(w)) for w in words])
        if rows and "idx" in rows[0]:
            batch["idx"] = torch.tensor([row["idx"] for row in rows])
        return batch


def entity_spans(tags: Sequence[str]) -> list[tuple[str, int, int]]:
    """Strict IOB2 entities as (type, first word, one past the last): a span opens at B-X and continues through
    I-X; an I-X that does not continue a span of its own type starts no entity (CoNLL's strict reading)."""
    spans, kind, start = [], None, 0
    for position, tag in enumerate([*tags, "O"]):
        prefix, _, label = tag.partition("-")
        if kind is not None and not (prefix == "I" and label == kind):
            spans.append((kind, start, position))
            kind = None
        if prefix == "B":
            kind, start = label, position
    return spans
