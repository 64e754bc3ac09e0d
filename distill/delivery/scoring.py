"""Scoring models on a split with the task's metrics: at batch 64, and row by row only where a model's answers
depend on its batch mates; a model scored before on the same rows is read back from a cache.

Row-by-row scoring costs as much as the rest of the report card together. Most models give every row the same
answer whatever its batch (up to float noise), so a 64-row probe decides: a model whose logits differ between one
batch of the probe rows and row-by-row calls (dynamic quantisation's per-batch activation ranges, early exit's
per-batch exits) is scored row by row on the whole split; any other model's row-by-row score is its batch score.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from transformers import PreTrainedTokenizerBase

from distill.atomic import atomic_file, write_json_atomic
from distill.delivery.batching import Batch, logits_of, task_batches
from distill.lazy import lazy_module
from distill.sources import fingerprint
from distill.task import Task

datasets = lazy_module("datasets")

PROBE_ROWS = 64
TOLERANCE = 1e-4  # logits closer than this, relative and absolute, are the same answer


def evaluate(model: nn.Module, batches: list[Batch], task: Task) -> dict[str, float]:
    """The task's metrics on the given batches (which carry their gold labels)."""
    return evaluate_keeping_outputs(model, batches, task)[0]


@torch.inference_mode()
def evaluate_keeping_outputs(
    model: nn.Module, batches: list[Batch], task: Task
) -> tuple[dict[str, float], list[Tensor]]:
    """The task's metrics on the given batches, and the model's outputs on each batch."""
    metrics = task.build_metrics(prefix="", sync=False)  # measured in this process alone
    outputs = []
    for batch in batches:
        outputs.append(logits_of(model, batch))
        task.update_metrics(metrics, outputs[-1], batch)
    return {name: float(value) for name, value in metrics.compute().items()}, outputs


@torch.inference_mode()
def batch_dependent(
    model: nn.Module, task: Task, tokenizer: PreTrainedTokenizerBase, examples: datasets.Dataset, max_length: int
) -> bool:
    """Whether `model` answers the first PROBE_ROWS rows differently in one batch than one by one."""
    probe = examples.select(range(min(PROBE_ROWS, len(examples))))
    (together,) = task_batches(task, tokenizer, probe, None, max_length)
    batched = logits_of(model, together)
    for index, alone in enumerate(task_batches(task, tokenizer, probe, 1, max_length)):
        single = logits_of(model, alone)[0]
        if not torch.allclose(_unpadded(batched[index], single), single, atol=TOLERANCE, rtol=TOLERANCE):
            return True
    return False


def _unpadded(row: Tensor, alone: Tensor) -> Tensor:
    """A batched row cut to the positions its unpadded copy has (per-token logits are padded to the batch)."""
    return row[: alone.shape[0]] if row.dim() >= 2 else row


def score(
    model: nn.Module,
    task: Task,
    tokenizer: PreTrainedTokenizerBase,
    examples: datasets.Dataset,
    max_length: int,
    cache: Path | None = None,
) -> dict[str, Any]:
    """The model's metrics at batch 64 and row by row (`batch_dependent` says which were measured apart), and its
    outputs at batch 64 (under "outputs", for `Task.agreement`); read from `cache` when this model scored these
    rows before."""
    key = _cache_key(model, task, examples, max_length) if cache is not None else None  # digests every weight
    path = cache / f"{key}.json" if key is not None else None
    kept = path.with_suffix(".pt") if path is not None else None
    if path is not None and path.is_file() and kept.is_file():
        return {**json.loads(path.read_text()), "outputs": torch.load(kept), "cached": True}
    metrics, outputs = evaluate_keeping_outputs(model, task_batches(task, tokenizer, examples, 64, max_length), task)
    dependent = batch_dependent(model, task, tokenizer, examples, max_length)
    by_row = evaluate(model, task_batches(task, tokenizer, examples, 1, max_length), task) if dependent else metrics
    scored = {"metrics": metrics, "metrics_batch1": by_row, "batch_dependent": dependent}
    if path is not None:
        with atomic_file(kept) as out:
            torch.save(outputs, out)
        write_json_atomic(path, scored)
    return {**scored, "outputs": outputs, "cached": False}


def scores_folder(distill_cache: Path | None = None) -> Path:
    """Where teacher scores are kept: beside a run's tokenised splits (its data module's cache folder), else in
    distill's folder of the datasets cache."""
    return (distill_cache or Path(datasets.config.HF_DATASETS_CACHE) / "distill") / "scores"


def _cache_key(model: nn.Module, task: Task, examples: datasets.Dataset, max_length: int) -> str | None:
    """What the scores depend on: every weight, the rows, max_length and the task; None for a model whose state is
    not plain tensors (a quantised or an ONNX model), which is scored afresh."""
    state = model.state_dict()
    if not state or any(not isinstance(t, Tensor) or t.is_quantized for t in state.values()):
        return None
    weights = [t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes() for t in state.values()]
    rows = json.dumps(examples.to_dict(), sort_keys=True, default=str)
    return fingerprint(type(model).__name__, list(state), *weights, rows, max_length, task.spec())
