"""Measured facts about models: parameter counts, size on disk, and everything the report card and `distill bench`
show (`measure_models`)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm
from transformers import PreTrainedTokenizerBase

from distill.delivery.batching import MAX_LENGTH, logits_of, model_inputs, task_batches
from distill.delivery.scoring import score
from distill.delivery.timing import Device, accelerators, compare_latency
from distill.export_format import report_sections
from distill.lazy import lazy_module
from distill.task import Task

datasets = lazy_module("datasets")

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".onnx")
EMBEDDINGS = (nn.Embedding, torch.ao.nn.quantized.Embedding)


def _quantized_tensors(module: nn.Module) -> list[torch.Tensor]:
    """The packed weights and biases of a quantized module, which `parameters()` does not list."""
    if callable(getattr(module, "get_weight", None)):  # dynamic quantized LSTM
        return [*module.get_weight().values(), *module.get_bias().values()]
    weight, bias = getattr(module, "weight", None), getattr(module, "bias", None)
    if callable(weight) and not isinstance(weight, torch.Tensor):  # quantized Linear and Embedding
        return [weight()] + ([bias()] if callable(bias) and bias() is not None else [])
    return []


def _tensors(model: nn.Module) -> list[tuple[nn.Module, torch.Tensor]]:
    """Each tensor once, with the module holding it first (weights shared across layers count once)."""
    tensors = [(m, p) for m in model.modules() for p in m.parameters(recurse=False)]
    tensors += [(m, t) for m in model.modules() for t in _quantized_tensors(m)]
    return list({id(t): (m, t) for m, t in reversed(tensors)}.values())


def count_parameters(model: nn.Module) -> dict[str, int]:
    """Parameters in total, without the embedding tables (the survey's second size column), and non-zero.

    Quantized modules count their packed weights too, so an int8 model has the counts of its float original.
    """
    if counted := getattr(model, "parameter_counts", None):  # a runtime wrapper counts its source model
        return counted
    tensors = _tensors(model)
    total = sum(t.numel() for _, t in tensors)
    embeddings = sum(t.numel() for m, t in tensors if isinstance(m, EMBEDDINGS))
    nonzero = sum(int(torch.count_nonzero(t.dequantize() if t.is_quantized else t)) for _, t in tensors)
    return {"total": total, "without_embeddings": total - embeddings, "nonzero": nonzero}


def weights_size_on_disk(directory: Path) -> int:
    """Bytes of the weight files in an export folder (configs and tokenizer files left out), or of one weight
    file. Subfolders hold other variants of the model (int8/, onnx/), so they do not count."""
    if Path(directory).is_file():
        return Path(directory).stat().st_size
    return sum(f.stat().st_size for f in Path(directory).iterdir() if f.is_file() and f.suffix in WEIGHT_SUFFIXES)


def sparsity(model: nn.Module) -> dict[str, float]:
    """Fraction of zero weights in each Linear layer, and over all of them ("overall")."""
    per_layer = {
        name: float((m.weight == 0).float().mean()) for name, m in model.named_modules() if isinstance(m, nn.Linear)
    }
    sizes = {name: m.weight.numel() for name, m in model.named_modules() if isinstance(m, nn.Linear)}
    total = sum(sizes.values())
    overall = sum(per_layer[n] * sizes[n] for n in sizes) / total if total else 0.0
    return {"overall": overall, **per_layer}


def measure_models(
    models: Mapping[str, tuple[nn.Module, PreTrainedTokenizerBase, Path | None]],
    task: Task,
    examples: datasets.Dataset,
    latency_rows: int = 256,
    max_length: int = MAX_LENGTH,
    teacher_scores: Path | None = None,
) -> dict[str, dict]:
    """Everything the report card and `distill bench` show, for each model, measured here and now; the teacher's
    scores come from `teacher_scores` when it was scored on these rows before (latency is always timed,
    interleaved). Only the teacher's are cached: a student's report sections are read off its evaluation.

    Args:
        models: name -> (model in eval mode, its tokenizer, its export folder or None if it has none).
        task: the task whose metrics are computed, and which encodes the examples.
        examples: the evaluation split as the task read it; its first `latency_rows` rows are the latency mix.
        latency_rows: how many examples make up the fixed sequence-length mix that is timed.
        max_length: truncation length in tokens, as the models were trained (the card's data.max_length).
        teacher_scores: a folder of the model named "teacher"'s scores, by its weights, the rows, max_length and
            the task; None scores it afresh.
    """
    results: dict[str, dict] = {}
    for name, (model, tokenizer, folder) in tqdm(models.items(), desc="scoring", unit="model"):
        results[name] = {
            **score(model, task, tokenizer, examples, max_length, teacher_scores if name == "teacher" else None),
            "parameters": count_parameters(model),
            "size_on_disk_bytes": weights_size_on_disk(folder) if folder else None,
            # read right after evaluation: e.g. the exit-layer histogram of the validation split
            "sections": report_sections(model),
        }
    outputs = {name: results[name].pop("outputs") for name in results}
    if "teacher" in outputs:
        for name in results:
            results[name]["agreement"] = task.agreement(outputs[name], outputs["teacher"])
    mix = examples.select(range(min(latency_rows, len(examples))))
    for batch_size in tqdm((1, 32), desc="timing", unit="batch size"):
        batches = {
            name: [model_inputs(model, b) for b in task_batches(task, tokenizer, mix, batch_size, max_length)]
            for name, (model, tokenizer, _) in models.items()
        }
        timed = compare_latency({name: model for name, (model, _, _) in models.items()}, batches)
        for name in models:
            results[name][f"latency_batch{batch_size}"] = timed[name]
    for device in accelerators():
        for name, timed in time_on(device, models, task, mix, max_length).items():
            results[name]["accelerator"] = timed
    return results


def time_on(
    device: Device,
    models: Mapping[str, tuple[nn.Module, PreTrainedTokenizerBase, Path | None]],
    task: Task,
    mix: datasets.Dataset,
    max_length: int,
) -> dict[str, dict]:
    """Latency at batch 1 and 32 on an accelerator, of every model that runs there (a CPU-only model, such as
    torch's int8 or an onnxruntime CPU session, says why not). Each model is moved there and back."""
    runs, timed = {}, {}
    for name, (model, tokenizer, _) in models.items():
        batches = {size: task_batches(task, tokenizer, mix, size, max_length) for size in (1, 32)}
        moved = {size: [on(device, model_inputs(model, b)) for b in found] for size, found in batches.items()}
        try:
            model.to(device.torch_device)
            logits_of(model, moved[1][0])
        except Exception as error:  # kernels and runtimes raise many types; each means "not on this device"
            model.to("cpu")
            reason = (
                f"{type(error).__name__}: {str(error).splitlines()[0][:120]}" if str(error) else type(error).__name__
            )
            timed[name] = {"device": device.label, "skipped": f"runs on the CPU only ({reason})"}
            continue
        runs[name] = (model, moved)
    for size in (1, 32):
        latency = compare_latency({n: m for n, (m, _) in runs.items()}, {n: b[size] for n, (_, b) in runs.items()},
                                  device=device)  # fmt: skip
        for name, figures in latency.items():
            timed.setdefault(name, {"device": device.label})[f"latency_batch{size}"] = figures
    for model, _ in runs.values():
        model.to("cpu")
    return timed


def on(device: Device, batch: Mapping[str, Tensor]) -> dict[str, Tensor]:
    return {key: value.to(device.torch_device) for key, value in batch.items()}
