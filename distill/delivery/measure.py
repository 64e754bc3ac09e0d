"""Measured facts about a model: parameter counts and size on disk."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

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
