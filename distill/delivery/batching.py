"""Encoding rows into the batches every model is scored and timed on, and what each model is called with."""

from __future__ import annotations

from collections.abc import Mapping

from torch import Tensor, nn
from transformers import PreTrainedTokenizerBase

from distill.hf import head_logits, takes_token_types
from distill.lazy import lazy_module
from distill.task import Task

datasets = lazy_module("datasets")

Batch = dict[str, Tensor]
MAX_LENGTH = 128
MODEL_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def task_batches(
    task: Task,
    tokenizer: PreTrainedTokenizerBase,
    examples: datasets.Dataset,
    batch_size: int | None,
    max_length: int = MAX_LENGTH,
) -> list[Batch]:
    """The examples encoded and padded by the task, in order: every model is scored and timed on the same rows,
    each in its own vocabulary (so a token-level task aligns its labels to each model's word pieces).
    `batch_size` counts encoded inputs (a long QA context gives several); None puts them all in one batch."""
    rows = examples.to_dict()
    encoded = dict(task.encode(rows, tokenizer, max_length))
    for carried in ("labels", "idx"):  # a sentence task leaves its labels to the rows; a token task aligns them
        if carried in rows and carried not in encoded:
            encoded[carried] = rows[carried]
    records = [dict(zip(encoded, values, strict=True)) for values in zip(*encoded.values(), strict=True)]
    collate = task.collator(tokenizer)
    batch_size = batch_size or max(len(records), 1)
    return [dict(collate(records[start : start + batch_size])) for start in range(0, len(records), batch_size)]


def model_inputs(model: nn.Module, batch: Mapping[str, Tensor]) -> Batch:
    """What `model` is called with: the encoded inputs it reads, without the labels and row indices."""
    names = MODEL_INPUTS if takes_token_types(model) else MODEL_INPUTS[:2]
    return {k: v for k, v in batch.items() if k in names}


def logits_of(model: nn.Module, batch: Mapping[str, Tensor]) -> Tensor:
    """The model's logits on a batch in float32, whatever its output type and precision."""
    return head_logits(model(**model_inputs(model, batch))).float()
