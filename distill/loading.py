"""Loading any exported model: a plugin's own format first, Hugging Face format otherwise."""

from __future__ import annotations

from pathlib import Path

from torch import nn
from transformers import AutoModelForSequenceClassification, AutoTokenizer, PreTrainedTokenizerBase

from distill.errors import DistillError
from distill.registry import get_plugin_manager


def load_model(folder: str | Path) -> tuple[nn.Module, PreTrainedTokenizerBase]:
    """The model in `folder` (eval mode) and its tokenizer.

    Raises:
        DistillError: the folder does not exist or holds no model any installed plugin can read.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DistillError(
            f"model folder {folder} does not exist: give a folder written by `distill fit` or "
            f"`distill export`, or a Hugging Face save_pretrained folder"
        )
    loaded = get_plugin_manager().hook.distill_load_model(folder=folder)
    if loaded is None:
        if not (folder / "config.json").is_file():
            raise DistillError(
                f"{folder} holds neither a Hugging Face model (config.json) nor a format of an "
                f"installed plugin (see `distill plugins`)"
            )
        loaded = AutoModelForSequenceClassification.from_pretrained(folder), AutoTokenizer.from_pretrained(folder)
    model, tokenizer = loaded
    return model.eval(), tokenizer
