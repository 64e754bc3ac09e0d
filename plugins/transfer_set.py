"""A transfer set for small students (Tang et al., 2019): the training split plus synthetic variants of it.

Synthetic rows have no gold label (UNLABELLED, which the hard-label loss skips); the teacher labels them with its
soft logits through the distillation losses. Variants are made on word pieces, so sentence pairs keep their
structure and the teacher's tokenizer is all that is needed.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor
from transformers import PreTrainedTokenizerBase
from typing_extensions import override

from distill import UNLABELLED, Augmentation, DistillError, Task, Teacher, hookimpl, lazy_module

datasets = lazy_module("datasets")


@dataclass
class TransferSet(Augmentation):
    """Grow the training split with masked, neighbour-swapped and n-gram variants of its sentences.

    Attributes:
        multiplier: synthetic variants per training example (the transfer set is 1 + multiplier times larger).
        mask_probability: each word piece becomes [MASK] with this probability.
        neighbour_probability: each remaining word piece becomes one of its nearest neighbours in the teacher's
            embedding space (Tang et al. swap words of the same part of speech; no tagger is needed here).
        ngram_probability: a single-sentence variant is cut to a random n-gram with this probability.
        max_ngram: longest n-gram kept.
        neighbours: candidates per word piece.
        seed: makes the transfer set reproducible (and so cacheable).
    """

    multiplier: int = 4
    mask_probability: float = 0.1
    neighbour_probability: float = 0.1
    ngram_probability: float = 0.25
    max_ngram: int = 5
    neighbours: int = 8
    seed: int = 0

    @override
    def check(self, task: Task, own_tokenizer: bool) -> None:
        if task.output == "sigmoid" or task.per_token:
            raise DistillError(
                f"TransferSet makes unlabelled rows for single-label sentence tasks; task {task.name} cannot use it: "
                f"remove data.augmentation"
            )
        super().check(task, own_tokenizer)

    @override
    def fingerprint(self, teacher: Teacher | None) -> str:
        """The teacher's word embeddings: the neighbours come from them."""
        embeddings = _embeddings(teacher).detach().cpu().numpy().tobytes()
        return hashlib.sha256(embeddings).hexdigest()[:20]

    @override
    def grow(
        self, train: datasets.Dataset, tokenizer: PreTrainedTokenizerBase, teacher: Teacher | None, task: Task
    ) -> datasets.Dataset:
        return build_transfer_set(train, tokenizer, _embeddings(teacher), self, task.is_pair)


def _embeddings(teacher: Teacher | None) -> Tensor:
    if teacher is None:
        raise DistillError("TransferSet needs the teacher's embeddings to find neighbour words: set model.teacher")
    return teacher.model.get_input_embeddings().weight


def nearest_neighbours(
    embeddings: Tensor, token_ids: np.ndarray, count: int, banned: set[int]
) -> dict[int, np.ndarray]:
    """For each id in `token_ids`, the `count` most cosine-similar vocabulary entries (itself and `banned` excluded)."""
    unit = torch.nn.functional.normalize(embeddings.detach().float(), dim=-1)
    allowed = torch.ones(len(unit), dtype=torch.bool)
    allowed[list(banned)] = False
    result = {}
    for start in range(0, len(token_ids), 1024):
        chunk = torch.as_tensor(token_ids[start : start + 1024])
        similarity = (unit[chunk] @ unit.T).masked_fill(~allowed, -2.0)
        similarity[torch.arange(len(chunk)), chunk] = -2.0
        top = similarity.topk(count, dim=-1).indices.numpy()
        result.update(zip(chunk.tolist(), top, strict=True))
    return result


def build_transfer_set(
    train: datasets.Dataset, tokenizer: PreTrainedTokenizerBase, embeddings: Tensor, config: TransferSet, pair: bool
) -> datasets.Dataset:
    """The training split followed by `multiplier` variants of each example, with fresh `idx` values."""
    special = set(tokenizer.all_special_ids)
    present = np.unique(np.concatenate([np.asarray(ids) for ids in train["input_ids"]]))
    neighbours = nearest_neighbours(embeddings, present[~np.isin(present, list(special))], config.neighbours, special)
    rng = np.random.default_rng(config.seed)
    rows: dict[str, list] = {name: [] for name in train.column_names}
    offset = len(train)
    for copy in range(config.multiplier):
        for position, example in enumerate(train):
            ids, types = _vary(example, neighbours, special, tokenizer.mask_token_id, config, rng, pair)
            rows["input_ids"].append(ids)
            rows["attention_mask"].append([1] * len(ids))
            if "token_type_ids" in rows:
                rows["token_type_ids"].append(types)
            rows["labels"].append(UNLABELLED)
            rows["idx"].append(offset + copy * len(train) + position)
    synthetic = datasets.Dataset.from_dict(rows, features=train.features)
    return datasets.concatenate_datasets([train, synthetic])


def _vary(example, neighbours, special, mask_id, config, rng, pair) -> tuple[list[int], list[int]]:
    ids = list(example["input_ids"])
    types = list(example.get("token_type_ids") or [0] * len(ids))
    for i, token in enumerate(ids):
        if token in special:
            continue
        draw = rng.random()
        if draw < config.mask_probability:
            ids[i] = mask_id
        elif draw < config.mask_probability + config.neighbour_probability and token in neighbours:
            ids[i] = int(rng.choice(neighbours[token]))
    if not pair and len(ids) > 3 and rng.random() < config.ngram_probability:
        inner = len(ids) - 2  # between [CLS] and [SEP]
        length = int(rng.integers(1, min(config.max_ngram, inner) + 1))
        start = 1 + int(rng.integers(0, inner - length + 1))
        ids = [ids[0], *ids[start : start + length], ids[-1]]
        types = types[: len(ids)]
    return ids, types


@hookimpl
def distill_register_augmentations() -> list[type]:
    return [TransferSet]
