"""Vocabulary pruning: keep only the word pieces a corpus uses (Zhao et al., 2021, keep 94% of tokens with a
5k vocabulary). In a small student the embedding matrix is most of the model, so this is where size goes.

The pieces the task's training split (or a given corpus) uses are recorded during training in a
fixed-size bitmap; the export keeps those embedding rows and a WordPiece tokenizer of the same pieces,
renumbered, so raw text still tokenises correctly and any piece outside the vocabulary becomes [UNK].
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
from tokenizers import Tokenizer
from torch import nn
from transformers import PreTrainedTokenizerBase, PreTrainedTokenizerFast
from typing_extensions import override

from distill import STUDENT_PREFIX, Compression, DistillError, Stage, Student, readable


def word_embedding(student: Student, vocabulary: int) -> tuple[nn.Module, str, nn.Embedding]:
    """(parent, attribute, embedding) of the student's table over the teacher's vocabulary."""
    for parent in student.modules():
        for attribute, child in parent.named_children():
            if isinstance(child, nn.Embedding) and child.num_embeddings == vocabulary:
                return parent, attribute, child
    raise DistillError(f"VocabularyPruning found no {vocabulary}-row word embedding in the {student.family} student")


def cut_per_piece(student: Student, vocabulary: int, kept: torch.Tensor) -> None:
    """Cut every other tensor the student itself holds one row per word piece of (a static student's weights and
    its map of counted pieces) to the `kept` rows, as the table was."""
    for name, tensor in [*student.named_parameters(recurse=False), *student.named_buffers(recurse=False)]:
        if tensor.dim() >= 1 and tensor.shape[0] == vocabulary and name != "vocabulary_kept":
            cut = tensor.detach()[kept].clone()
            if isinstance(tensor, nn.Parameter):
                setattr(student, name, nn.Parameter(cut, requires_grad=tensor.requires_grad))
            else:
                student._buffers[name] = cut


def reduced_tokenizer(tokenizer: PreTrainedTokenizerBase, kept: list[int]) -> PreTrainedTokenizerFast:
    """The same tokenizer over only the `kept` ids, renumbered in order (so [PAD] stays 0)."""
    state = json.loads(tokenizer.backend_tokenizer.to_str())
    new_id = {old: new for new, old in enumerate(kept)}
    state["model"]["vocab"] = {piece: new_id[i] for piece, i in state["model"]["vocab"].items() if i in new_id}
    for added in state.get("added_tokens", []):
        added["id"] = new_id[added["id"]]
    for special in (state.get("post_processor") or {}).get("special_tokens", {}).values():
        special["ids"] = [new_id[i] for i in special["ids"]]
    return PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer.from_str(json.dumps(state)),
        model_max_length=tokenizer.model_max_length,
        model_input_names=tokenizer.model_input_names,
        **{name: value for name, value in tokenizer.special_tokens_map.items() if isinstance(value, str)},
    )


@dataclass(eq=False)
class VocabularyPruning(Compression):
    """Keep the word pieces used at least `min_count` times.

    Attributes:
        corpus: a text file, one example per line, whose pieces to keep; None counts the task's training split
            (with its transfer set, if any).
        min_count: occurrences a piece needs to stay. Special tokens always stay.
    """

    corpus: str | None = None
    min_count: int = 1

    stage: ClassVar[Stage] = Stage.STRUCTURE

    @override
    def configure_student(self, student: Student, teacher: Any, data: Any) -> None:
        self._tokenizer = student.tokenizer or (teacher.tokenizer if teacher is not None else None)
        self._column = f"{STUDENT_PREFIX}input_ids"  # present when the student reads a tokenisation of its own
        model_type = json.loads(self._tokenizer.backend_tokenizer.to_str())["model"]["type"]
        if model_type not in ("WordPiece", "WordLevel"):
            raise DistillError(
                f"VocabularyPruning rebuilds WordPiece vocabularies; the student's tokenizer is a {model_type} "
                f"model, whose merges or scores would break: drop VocabularyPruning for this student"
            )
        vocabulary = len(self._tokenizer)
        word_embedding(student, vocabulary)  # fail early if there is none
        if not hasattr(student, "vocabulary_kept"):
            student.register_buffer("vocabulary_kept", torch.zeros(vocabulary, dtype=torch.bool))
        counts = self._counts(data, vocabulary)
        if counts is not None and not student.vocabulary_kept.any():  # else a checkpoint brings the bitmap
            kept = counts >= self.min_count
            kept[self._tokenizer.all_special_ids] = True
            student.vocabulary_kept.copy_(kept)

    def _counts(self, data: Any, vocabulary: int) -> torch.Tensor | None:
        if self.corpus is not None:
            path = Path(self.corpus).expanduser()
            if not path.is_file():
                raise DistillError(f"VocabularyPruning.corpus {self.corpus!r} does not exist: give a text file")
            lines = path.read_text(encoding="utf-8").splitlines()
            ids = self._tokenizer(lines, add_special_tokens=False)["input_ids"]
        elif data is not None and "train" in getattr(data, "splits", {}):
            train = data.splits["train"]
            ids = train[self._column if self._column in train.column_names else "input_ids"]
        else:
            return None
        flat = torch.tensor([i for row in ids for i in row], dtype=torch.long)
        return torch.bincount(flat, minlength=vocabulary)

    @override
    def finalize(self, student: Student) -> None:
        kept = student.vocabulary_kept.nonzero().flatten()
        if kept.numel() <= len(self._tokenizer.all_special_ids):
            raise DistillError(
                "VocabularyPruning kept no word pieces: train first, or give a corpus that the tokenizer covers"
            )
        architecture = readable(getattr(student, "model", None))
        if architecture is not None:
            architecture.shrink_vocabulary(student.model, kept)
        else:
            parent, attribute, table = word_embedding(student, len(self._tokenizer))
            smaller = nn.Embedding(len(kept), table.embedding_dim, padding_idx=table.padding_idx)
            smaller.weight = nn.Parameter(table.weight.detach()[kept].clone())
            setattr(parent, attribute, smaller)
            cut_per_piece(student, len(self._tokenizer), kept)
        if "vocab_size" in getattr(student, "architecture", {}):
            student.architecture["vocab_size"] = len(kept)
        student.tokenizer = reduced_tokenizer(self._tokenizer, kept.tolist())
        del student._buffers["vocabulary_kept"]
