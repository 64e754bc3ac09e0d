"""Loading any exported model: a plugin's own format first, Hugging Face format otherwise."""

from __future__ import annotations

import json
from pathlib import Path

from torch import nn
from transformers import AutoModelForSequenceClassification, AutoTokenizer, PreTrainedTokenizerBase

from distill.errors import DistillError
from distill.registry import get_plugin_manager, registered
from distill.student import STUDENT_META, Student, StudentClassifier


def _registered_family(folder: Path) -> type[Student]:
    family = json.loads((folder / STUDENT_META).read_text())["family"]
    families = {config.student_class.family: config.student_class for config, _ in registered("students").values()}
    if family not in families:
        raise DistillError(
            f"{folder} holds a {family!r} student, and no installed plugin provides that family: "
            f"install it (`distill plugins` lists what is installed)"
        )
    return families[family]


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
    if loaded is None and (folder / STUDENT_META).is_file():
        loaded = StudentClassifier(_registered_family(folder).load(folder)), AutoTokenizer.from_pretrained(folder)
    if loaded is None:
        if not (folder / "config.json").is_file():
            raise DistillError(
                f"{folder} holds neither a Hugging Face model (config.json) nor a format of an "
                f"installed plugin (see `distill plugins`)"
            )
        loaded = AutoModelForSequenceClassification.from_pretrained(folder), AutoTokenizer.from_pretrained(folder)
    model, tokenizer = loaded
    return model.eval(), tokenizer
