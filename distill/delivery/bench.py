"""Measuring models against each other in one process: the task's metrics, size, and CPU latency."""

from __future__ import annotations

import statistics
import time
from collections.abc import Mapping
from pathlib import Path

import datasets
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm
from transformers import PreTrainedTokenizerBase

from distill.atomic import write_json_atomic, write_text_atomic
from distill.compression import installed_kinds
from distill.delivery.measure import count_parameters, weights_size_on_disk
from distill.errors import DistillError
from distill.hf import head_logits, takes_token_types
from distill.task import Task
from distill.teacher import Teacher

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


def _logits(model: nn.Module, batch: Mapping[str, Tensor]) -> Tensor:
    return head_logits(model(**model_inputs(model, batch)))


@torch.inference_mode()
def evaluate(model: nn.Module, batches: list[Batch], task: Task) -> dict[str, float]:
    """The task's metrics on the given batches (which carry their gold labels)."""
    metrics = task.build_metrics(prefix="", sync=False)  # measured in this process alone
    for batch in batches:
        task.update_metrics(metrics, _logits(model, batch), batch)
    return {name: float(value) for name, value in metrics.compute().items()}


@torch.inference_mode()
def compare_latency(
    models: Mapping[str, nn.Module], batches: Mapping[str, list[Batch]], warmup: int = 3, rounds: int = 2
) -> dict[str, dict[str, float]]:
    """Per-batch latency of several models, interleaved batch by batch so machine noise hits them alike.

    Args:
        models: name -> model in eval mode.
        batches: name -> that model's batches (the same texts for every model, each in its own vocabulary).

    Returns:
        For each model: median and p90 milliseconds per batch, and examples per second.
    """
    for name, model in models.items():
        for batch in batches[name][:warmup]:
            _logits(model, batch)
    times: dict[str, list[float]] = {name: [] for name in models}
    for _ in range(rounds):
        for position in range(len(next(iter(batches.values())))):
            for name, model in models.items():
                started = time.perf_counter()
                _logits(model, batches[name][position])
                times[name].append(time.perf_counter() - started)
    examples = {name: rounds * sum(len(b["input_ids"]) for b in batches[name]) for name in models}
    return {
        name: {
            "median_ms": 1000 * statistics.median(seconds),
            "p90_ms": 1000 * statistics.quantiles(seconds, n=10, method="inclusive")[-1],
            "examples_per_second": examples[name] / sum(seconds),
        }
        for name, seconds in times.items()
    }


def measure_models(
    models: Mapping[str, tuple[nn.Module, PreTrainedTokenizerBase, Path | None]],
    task: Task,
    examples: datasets.Dataset,
    latency_rows: int = 256,
    max_length: int = MAX_LENGTH,
) -> dict[str, dict]:
    """Everything the report card and `distill bench` show, for each model, measured here and now.

    Args:
        models: name -> (model in eval mode, its tokenizer, its export folder or None if it has none).
        task: the task whose metrics are computed, and which encodes the examples.
        examples: the evaluation split as the task read it; its first `latency_rows` rows are the latency mix.
        latency_rows: how many examples make up the fixed sequence-length mix that is timed.
        max_length: truncation length in tokens, as the models were trained (the card's data.max_length).
    """
    kinds = installed_kinds()
    results: dict[str, dict] = {}
    for name, (model, tokenizer, folder) in tqdm(models.items(), desc="scoring", unit="model"):
        results[name] = {
            "metrics": evaluate(model, task_batches(task, tokenizer, examples, 64, max_length), task),
            # row by row too: a model that computes anything per batch (dynamic quantization's activation ranges)
            # answers a row differently depending on its batch mates
            "metrics_batch1": evaluate(model, task_batches(task, tokenizer, examples, 1, max_length), task),
            "parameters": count_parameters(model),
            "size_on_disk_bytes": weights_size_on_disk(folder) if folder else None,
            # read right after evaluation: e.g. the exit-layer histogram of the validation split
            "sections": [section for kind in kinds for section in kind.report_sections(model)],
        }
    mix = examples.select(range(min(latency_rows, len(examples))))
    for batch_size in tqdm((1, 32), desc="timing", unit="batch size"):
        batches = {
            name: [model_inputs(model, b) for b in task_batches(task, tokenizer, mix, batch_size, max_length)]
            for name, (model, tokenizer, _) in models.items()
        }
        timed = compare_latency({name: model for name, (model, _, _) in models.items()}, batches)
        for name in models:
            results[name][f"latency_batch{batch_size}"] = timed[name]
    return results


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


BENCH_FILES = ("bench.json", "bench.md", "pareto.png")  # what `distill bench` writes into --out


def run_bench(
    teacher: str,
    students: list[str],
    task: Task,
    examples: datasets.Dataset,
    out: Path,
    names: list[str] | None = None,
    latency_rows: int = 256,
    max_length: int = MAX_LENGTH,
    tolerance_points: float = 1.0,
    trust_remote_code: bool = False,
) -> list[dict]:
    """`distill bench`: teacher and exported students in one process; writes bench.json, bench.md, pareto.png.

    Raises:
        DistillError: a folder holds no loadable model, or names and students differ in number.
    """
    from distill.delivery.loading import load_model
    from distill.delivery.report import (
        batch_dependence_markdown,
        choice_markdown,
        compare,
        latency_markdown,
        metrics_markdown,
        pareto_plot,
        table_markdown,
    )

    names = names or [_model_name(Path(s)) for s in students]
    if len(names) != len(students) or len(set(names)) != len(names) or "teacher" in names:
        raise DistillError(f"--names must give one distinct name per student (not 'teacher'); got {names}")
    kinds = installed_kinds()
    reference = Teacher(teacher, task, trust_remote_code)  # its labels checked by name and put in the task's order
    models = {"teacher": (reference.model, reference.tokenizer, Path(teacher))}
    for name, folder in zip(names, students, strict=True):
        model, tokenizer = load_model(folder, trust_remote_code)
        models[name] = (model, tokenizer, Path(folder))
        for kind in kinds:
            models |= {label: (variant, tokenizer, Path(folder)) for label, variant in kind.bench_variants(name, model)}
    rows = compare(measure_models(models, task, examples, latency_rows, max_length), task)
    mix = latency_mix(task, models["teacher"][1], examples, latency_rows, max_length)
    markdown = "\n".join(
        [
            f"# distill bench: {task.name} validation split",
            "",
            table_markdown(rows),
            *(["", metrics] if (metrics := metrics_markdown(rows)) else []),
            "",
            f"Latency over {mix['examples']} dev inputs ({mix['tokens_median']} tokens median), "
            f"{mix['threads']} threads.",
            "",
            latency_markdown(rows),
            "",
            f"Fastest within {tolerance_points:g} points of the teacher (`--tolerance`):",
            "",
            choice_markdown(rows, tolerance_points),
            "",
            batch_dependence_markdown(rows),
            "",
            "![Pareto plot](pareto.png)",
            "",
        ]
    )
    write_json_atomic(
        out / "bench.json",
        {"task": task.name, "rows": rows, "latency_mix": mix, "models": {n: str(m[2]) for n, m in models.items()}},
    )
    write_text_atomic(out / "bench.md", markdown)
    pareto_plot(rows, out / "pareto.png")
    return rows


def _model_name(folder: Path) -> str:
    """A run's export folder is <run>/student: name it after the run; an ONNX file after its export and stem."""
    if folder.suffix == ".onnx":
        return f"{_model_name(folder.parent.parent)}-{folder.parent.name}-{folder.stem}"
    return folder.parent.name if folder.name == "student" else folder.name
