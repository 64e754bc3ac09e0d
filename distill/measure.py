"""Measured facts about a model: parameter counts and size on disk."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".onnx")


def count_parameters(model: nn.Module) -> dict[str, int]:
    """Parameters in total, without the embedding matrices (the survey's second size column), and non-zero."""
    parameters = list(model.parameters())
    total = sum(p.numel() for p in parameters)
    embeddings = sum(m.weight.numel() for m in model.modules() if isinstance(m, nn.Embedding))
    nonzero = sum(int(torch.count_nonzero(p)) for p in parameters)
    return {"total": total, "without_embeddings": total - embeddings, "nonzero": nonzero}


def weights_size_on_disk(directory: Path) -> int:
    """Bytes of the weight files in an export folder (configs and tokenizer files left out)."""
    return sum(f.stat().st_size for f in Path(directory).rglob("*") if f.suffix in WEIGHT_SUFFIXES)


def sparsity(model: nn.Module) -> dict[str, float]:
    """Fraction of zero weights in each Linear layer, and over all of them ("overall")."""
    per_layer = {
        name: float((m.weight == 0).float().mean()) for name, m in model.named_modules() if isinstance(m, nn.Linear)
    }
    sizes = {name: m.weight.numel() for name, m in model.named_modules() if isinstance(m, nn.Linear)}
    total = sum(sizes.values())
    overall = sum(per_layer[n] * sizes[n] for n in sizes) / total if total else 0.0
    return {"overall": overall, **per_layer}
