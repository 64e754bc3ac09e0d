"""Tiny random models of every built-in encoder family from the configs the hub publishes (no downloads)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from transformers import AutoConfig, PretrainedConfig

from tests.conftest import save_teacher

VOCABULARY = 30522  # the reference tokenizer's, which every test teacher is saved with
PUBLISHED = Path(__file__).parent / "published_configs"
PUBLISHED_FILES = {  # the hub's config.json of each family, as published
    "bert": "bert-base-uncased.json",
    "roberta": "roberta-base.json",
    "xlm-roberta": "xlm-roberta-base.json",
    "electra": "electra-base-discriminator.json",
    "distilbert": "distilbert-base-uncased.json",
    "deberta-v2": "deberta-v3-base.json",
    "modernbert": "ModernBERT-base.json",
    "mpnet": "mpnet-base.json",
}
# Only widths, depth and vocabulary shrink; every other setting stays as published. ELECTRA's embeddings stay
# narrower than its layers, so the projection between them is exercised; ModernBERT keeps a global layer and
# two local ones (global_attn_every_n_layers is 3).
_SIZES = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 64}
_SHRUNK = {
    "distilbert": {"dim": 32, "n_layers": 2, "n_heads": 4, "hidden_dim": 64},
    "electra": {**_SIZES, "embedding_size": 16},
    "modernbert": {**_SIZES, "num_hidden_layers": 3},
}
_SPECIAL_IDS = ("pad_token_id", "bos_token_id", "eos_token_id", "cls_token_id", "sep_token_id")


def published(family: str) -> dict:
    """The family's config.json as the hub publishes it."""
    return json.loads((PUBLISHED / PUBLISHED_FILES[family]).read_text())


def tiny_config(family: str, num_labels: int = 2) -> PretrainedConfig:
    """`family`'s published config, shrunk: a two-layer, 32-wide model whose vocabulary is the reference
    tokenizer's, or just large enough to hold the family's own special ids (ModernBERT's sit above it)."""
    settings = published(family)
    special = [settings[key] for key in _SPECIAL_IDS if isinstance(settings.get(key), int)]
    vocabulary = max(VOCABULARY, *(i + 1 for i in special)) if special else VOCABULARY
    settings.update(_SHRUNK.get(family, _SIZES), vocab_size=vocabulary, num_labels=num_labels)
    for key in ("architectures", "transformers_version", "_name_or_path", "torch_dtype"):
        settings.pop(key, None)
    return AutoConfig.for_model(settings.pop("model_type"), **settings)


FAMILIES = tuple(PUBLISHED_FILES)
QUICK = ("bert", "deberta-v2")  # their cells run in every suite; the other families' run in CI (`-m slow`)


def matrix(cells: list) -> list:
    """Parametrize cells (a family, or a tuple of families), marking slow those with a family outside QUICK."""
    families = [cell if isinstance(cell, tuple) else (cell,) for cell in cells]
    return [
        cell if set(named) <= set(QUICK) else pytest.param(*named, marks=pytest.mark.slow)
        for cell, named in zip(cells, families, strict=True)
    ]


def save_family_teacher(family: str, directory: Path, seed: int = 0, num_labels: int = 2) -> Path:
    """A random tiny classifier of `family` saved like a fine-tuned teacher, with the BERT tokenizer."""
    return save_teacher(tiny_config(family, num_labels), directory, seed)
