"""Loading Hugging Face checkpoints from a local folder or the hub, with errors a user can act on."""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import transformers
from torch import Tensor, nn
from transformers import AutoTokenizer

from distill.errors import DistillError

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase


def looks_like_path(source: str) -> bool:
    """A local path rather than a hub id: it starts like one, or exists here."""
    return source.startswith((".", "/", "~")) or Path(source).exists()


def check_source(source: str, role: str, trust_remote_code: bool = False) -> Path | str:
    """A local folder must exist, hold a config.json, and ship no code unless trusted; anything else is treated
    as a hub id (where transformers refuses code unless trusted)."""
    if not looks_like_path(source):
        return source
    path = Path(source).expanduser()
    if not (path / "config.json").is_file():
        problem = "is not a folder" if path.is_file() else "has no config.json" if path.is_dir() else "does not exist"
        raise DistillError(
            f"{role} {source!r} {problem}: give a folder saved with save_pretrained (config.json, weights and "
            f"tokenizer files) or a Hugging Face hub id"
        )
    check_remote_code(path, role, trust_remote_code)
    return path


def check_remote_code(folder: Path, role: str, trust_remote_code: bool) -> None:
    """Refuse a folder that ships Python code for transformers to import (`auto_map` in its config.json or
    tokenizer_config.json) unless the user said to trust it: loading it would run that code.

    Raises:
        DistillError: the folder ships code and trust_remote_code is off.
    """
    if trust_remote_code:
        return
    for name in ("config.json", "tokenizer_config.json"):
        try:
            ships_code = "auto_map" in json.loads((Path(folder) / name).read_text())
        except (OSError, ValueError):
            continue
        if ships_code:
            raise DistillError(
                f"{role} {str(folder)!r} ships its own Python code (auto_map in {name}), which loading it would run: "
                f"distill runs it only with trust_remote_code: true (model.trust_remote_code in YAML, "
                f"--trust_remote_code true for predict and bench); set it only for code you have read"
            )


def load_classifier(
    source: str,
    role: str,
    num_labels: int | None = None,
    head: str = "AutoModelForSequenceClassification",
    trust_remote_code: bool = False,
    **config,
) -> PreTrainedModel:
    """A model with a task head (`head` names the transformers Auto class). `num_labels` and `config` (such as
    id2label) set up a fresh head when `source` is a bare pretrained encoder. Code a folder or hub repository
    ships runs only with `trust_remote_code`."""
    location = check_source(source, role, trust_remote_code)
    extra = {**config, **({} if num_labels is None else {"num_labels": num_labels})}
    extra["trust_remote_code"] = trust_remote_code
    try:
        return getattr(transformers, head).from_pretrained(location, **extra)
    except (OSError, ValueError) as error:
        raise DistillError(f"could not load {role} {source!r}: {error}") from None


TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "config.json")


def load_tokenizer(source: str, role: str, trust_remote_code: bool = False) -> PreTrainedTokenizerBase:
    """A tokenizer from a hub id, a model folder, or a folder that holds only a tokenizer."""
    if looks_like_path(source) and any((Path(source).expanduser() / name).is_file() for name in TOKENIZER_FILES):
        location: Path | str = Path(source).expanduser()
        check_remote_code(location, role, trust_remote_code)
    else:
        location = check_source(source, role, trust_remote_code)
    try:
        return AutoTokenizer.from_pretrained(location, trust_remote_code=trust_remote_code)
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
    """Whether `model` reads segment ids: BERT does, DistilBERT and ModernBERT have none (and refuse them), and a
    model with a single segment row (RoBERTa) gains nothing from them."""
    declared = getattr(model, "reads_token_types", None)  # a runtime wrapper says what its graph takes
    if declared is not None:
        return declared
    rows = getattr(getattr(model, "config", None), "type_vocab_size", 2)
    # A model with one segment row (or none) reads every token as segment 0: a pair's second segment id would
    # index past its table, so it gets none and uses its default.
    return "token_type_ids" in inspect.signature(model.forward).parameters and (rows is None or rows > 1)
