"""Loading Hugging Face checkpoints from a local folder or the hub, with errors a user can act on."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import torch
import transformers
from torch import Tensor, nn
from transformers import AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from distill.errors import DistillError


def looks_like_path(source: str) -> bool:
    """A local path rather than a hub id: it starts like one, or exists here."""
    return source.startswith((".", "/", "~")) or Path(source).exists()


def check_source(source: str, role: str) -> Path | str:
    """A local folder must exist and hold a config.json; anything else is treated as a hub id."""
    if not looks_like_path(source):
        return source
    path = Path(source).expanduser()
    if not (path / "config.json").is_file():
        problem = "does not exist" if not path.exists() else "has no config.json"
        raise DistillError(
            f"{role} {source!r} {problem}: give a folder saved with save_pretrained (config.json, weights and "
            f"tokenizer files) or a Hugging Face hub id"
        )
    return path


def load_classifier(
    source: str, role: str, num_labels: int | None = None, head: str = "AutoModelForSequenceClassification", **config
) -> PreTrainedModel:
    """A model with a task head (`head` names the transformers Auto class). `num_labels` and `config` (such as
    id2label) set up a fresh head when `source` is a bare pretrained encoder."""
    location = check_source(source, role)
    extra = {**config, **({} if num_labels is None else {"num_labels": num_labels})}
    try:
        return getattr(transformers, head).from_pretrained(location, **extra)
    except (OSError, ValueError) as error:
        raise DistillError(f"could not load {role} {source!r}: {error}") from None


TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "config.json")


def load_tokenizer(source: str, role: str) -> PreTrainedTokenizerBase:
    """A tokenizer from a hub id, a model folder, or a folder that holds only a tokenizer."""
    if looks_like_path(source) and any((Path(source).expanduser() / name).is_file() for name in TOKENIZER_FILES):
        location: Path | str = Path(source).expanduser()
    else:
        location = check_source(source, role)
    try:
        return AutoTokenizer.from_pretrained(location)
    except (OSError, ValueError) as error:
        raise DistillError(f"could not load the tokenizer of {role} {source!r}: {error}") from None


def head_logits(output: Any) -> Tensor:
    """A model's output as one logits tensor: a plain tensor as it is, `logits` when the output has them, or the
    `*_logits` a span head returns (a question-answering model's start and end, each (B, T)) stacked on a last
    axis in the order the model returns them, so every task reads (B, T, 2) from the same place.

    Raises:
        DistillError: the output holds no logits at all.
    """
    if isinstance(output, Tensor):
        return output
    if getattr(output, "logits", None) is not None:
        return output.logits
    parts = [value for key, value in output.items() if key.endswith("_logits")]
    if not parts:
        raise DistillError(f"the model returned {type(output).__name__} with no logits ({list(output.keys())})")
    return torch.stack(parts, dim=-1)


def takes_token_types(model: nn.Module) -> bool:
    """Whether `model` reads segment ids: BERT does, DistilBERT and ModernBERT have none (and refuse them)."""
    declared = getattr(model, "reads_token_types", None)  # a runtime wrapper says what its graph takes
    return declared if declared is not None else "token_type_ids" in inspect.signature(model.forward).parameters
