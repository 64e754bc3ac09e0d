"""Timing models against each other: interleaved, so machine noise hits them alike, on a fixed mix of inputs."""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch
from torch import nn
from transformers import PreTrainedTokenizerBase

from distill.delivery.batching import MAX_LENGTH, Batch, logits_of, task_batches
from distill.lazy import lazy_module
from distill.task import Task

datasets = lazy_module("datasets")


@dataclass(frozen=True)
class Device:
    """Where models are timed: the torch device, its name in the report, and how to wait for the work queued on
    it (a GPU returns before its kernels finish, so each timed call is synchronised on both sides)."""

    torch_device: str
    label: str
    synchronize: Callable[[], None] = lambda: None


def cpu() -> Device:
    return Device("cpu", f"CPU ({torch.get_num_threads()} threads)")


def accelerators() -> list[Device]:
    """The GPUs models are also timed on: the current CUDA device, when there is one."""
    if not torch.cuda.is_available():
        return []
    return [Device("cuda", f"GPU ({torch.cuda.get_device_name()})", torch.cuda.synchronize)]


# Each timed sample lasts at least this long: a model faster than that is called on the same batch several times
# in a row and each call counts the sample's mean. A sub-millisecond model timed once right after a large one pays
# for the large one's wake-up (its worker threads still spinning, its weights in the cache): on 2 cores a static
# embedding model's single call after a Transformer's took 240 µs against 95 µs when called back to back.
MIN_SAMPLE_SECONDS = 2e-3


@torch.inference_mode()
def compare_latency(
    models: Mapping[str, nn.Module],
    batches: Mapping[str, list[Batch]],
    warmup: int = 3,
    rounds: int = 2,
    device: Device | None = None,
) -> dict[str, dict[str, float]]:
    """Per-batch latency of several models, interleaved batch by batch so machine noise hits them alike.

    Each model's sample for a batch is the mean of as many back-to-back calls as fill MIN_SAMPLE_SECONDS (one
    call for anything slower), as a model serving request after request runs.

    Args:
        models: name -> model in eval mode, on `device`.
        batches: name -> that model's batches (the same texts for every model, each in its own vocabulary), on
            `device`.
        device: where they run (the CPU when None).

    Returns:
        For each model: median and p90 milliseconds per batch, examples per second, and the calls per sample.
    """
    device = device or cpu()
    repeats = {}
    for name, model in models.items():
        started = time.perf_counter()
        for batch in batches[name][:warmup]:
            logits_of(model, batch)
        device.synchronize()
        per_call = (time.perf_counter() - started) / max(len(batches[name][:warmup]), 1)
        repeats[name] = max(1, math.ceil(MIN_SAMPLE_SECONDS / max(per_call, 1e-7)))
    times: dict[str, list[float]] = {name: [] for name in models}
    for _ in range(rounds):
        for position in range(len(next(iter(batches.values())))):
            for name, model in models.items():
                batch = batches[name][position]
                started = time.perf_counter()
                for _ in range(repeats[name]):
                    logits_of(model, batch)
                device.synchronize()
                times[name].append((time.perf_counter() - started) / repeats[name])
    examples = {name: rounds * sum(len(b["input_ids"]) for b in batches[name]) for name in models}
    return {
        name: {
            "median_ms": 1000 * statistics.median(seconds),
            "p90_ms": 1000 * statistics.quantiles(seconds, n=10, method="inclusive")[-1],
            "examples_per_second": examples[name] / sum(seconds),
            "calls_per_sample": repeats[name],
        }
        for name, seconds in times.items()
    }


def latency_mix(
    task: Task,
    tokenizer: PreTrainedTokenizerBase,
    examples: datasets.Dataset,
    latency_rows: int = 256,
    max_length: int = MAX_LENGTH,
) -> dict:
    """What the timed inputs look like: how many, how long in tokens, on how many threads."""
    mix = examples.select(range(min(latency_rows, len(examples))))
    batches = task_batches(task, tokenizer, mix, 1, max_length)
    lengths = sorted(int(n) for b in batches for n in b["attention_mask"].sum(-1))
    return {
        "examples": len(lengths),
        "tokens_median": statistics.median(lengths),
        "tokens_max": lengths[-1],
        "threads": torch.get_num_threads(),
    }
