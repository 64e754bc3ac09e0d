"""Tiny random models of every built-in encoder family, over the reference teacher's vocabulary (no downloads)."""

from __future__ import annotations

from pathlib import Path

from transformers import (
    BertConfig,
    DebertaV2Config,
    DistilBertConfig,
    ElectraConfig,
    ModernBertConfig,
    PretrainedConfig,
    RobertaConfig,
    XLMRobertaConfig,
)

from tests.conftest import save_teacher

VOCABULARY = 30522
_SIZES = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64)


def tiny_config(family: str, num_labels: int = 2) -> PretrainedConfig:
    """A two-layer, 32-wide model of `family` with the BERT tokenizer's vocabulary and special ids."""
    common = dict(vocab_size=VOCABULARY, max_position_embeddings=130, num_labels=num_labels, pad_token_id=0)
    if family == "bert":
        return BertConfig(**_SIZES, **common)
    if family == "roberta":
        return RobertaConfig(**_SIZES, **common, type_vocab_size=2)
    if family == "xlm-roberta":
        return XLMRobertaConfig(**_SIZES, **common, type_vocab_size=2)
    if family == "electra":
        return ElectraConfig(**_SIZES, **common, embedding_size=16)
    if family == "distilbert":
        return DistilBertConfig(dim=32, n_layers=2, n_heads=4, hidden_dim=64, **common)
    if family == "deberta-v2":
        return DebertaV2Config(
            **_SIZES,
            **common,
            relative_attention=True,
            position_biased_input=False,
            pos_att_type=["p2c", "c2p"],
            position_buckets=32,
            norm_rel_ebd="layer_norm",
            share_att_key=True,
        )
    if family == "modernbert":
        return ModernBertConfig(
            **{**_SIZES, "num_hidden_layers": 3},
            **common,
            cls_token_id=101,
            sep_token_id=102,
            bos_token_id=101,
            eos_token_id=102,
            global_attn_every_n_layers=2,
            local_attention=8,
        )
    raise ValueError(family)


FAMILIES = ("bert", "roberta", "xlm-roberta", "electra", "distilbert", "deberta-v2", "modernbert")


def save_family_teacher(family: str, directory: Path, seed: int = 0, num_labels: int = 2) -> Path:
    """A random tiny classifier of `family` saved like a fine-tuned teacher, with the BERT tokenizer."""
    return save_teacher(tiny_config(family, num_labels), directory, seed)
