"""The built-in architecture adapters: BERT, RoBERTa/XLM-R, ELECTRA, DistilBERT, DeBERTa-v2/v3, ModernBERT and
MPNet, and ALBERT's refusal.

Each is written against the public `distill.Architecture` contract, as a third-party family would be.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import Tensor, nn
from transformers import (
    BertConfig,
    DebertaV2Config,
    DistilBertConfig,
    ElectraConfig,
    ModernBertConfig,
    MPNetConfig,
    PretrainedConfig,
    RobertaConfig,
)

from distill import Architecture, Attention, DistillError, Record, hookimpl, segment_ids

if TYPE_CHECKING:
    from transformers import PreTrainedModel


class BertArchitecture(Architecture):
    """BERT's layout, which most encoder families keep: encoder.layer[i] with attention.self.{query,key,value},
    attention.output.dense, intermediate.dense and output.dense."""

    model_types: ClassVar[tuple[str, ...]] = ("bert",)
    name: ClassVar[str] = "bert"
    config_class: ClassVar[type[PretrainedConfig]] = BertConfig

    def layers(self, model: PreTrainedModel) -> nn.ModuleList:
        return model.base_model.encoder.layer

    def _set_layers(self, model: PreTrainedModel, layers: nn.ModuleList) -> None:
        model.base_model.encoder.layer = layers

    def attention(self, layer: nn.Module) -> Attention:
        block = layer.attention
        return Attention(output=block.output.dense, query=block.self.query, key=block.self.key, value=block.self.value)

    def feed_forward(self, layer: nn.Module) -> tuple[nn.Linear, nn.Linear]:
        return layer.intermediate.dense, layer.output.dense

    def embed(self, model: PreTrainedModel, batch: Mapping[str, Tensor]) -> Tensor:
        return model.base_model.embeddings(input_ids=batch["input_ids"], token_type_ids=segment_ids(model, batch))

    def run_layer(self, model: PreTrainedModel, index: int, hidden: Tensor, attention_mask: Tensor) -> Tensor:
        extended = (1.0 - attention_mask[:, None, None, :].to(hidden.dtype)) * torch.finfo(hidden.dtype).min
        output = self.layers(model)[index](hidden, extended)
        return output[0] if isinstance(output, tuple) else output

    def classify(self, model: PreTrainedModel, hidden: Tensor, attention_mask: Tensor) -> Tensor:
        return model.classifier(model.dropout(model.base_model.pooler(hidden)))


class RobertaArchitecture(BertArchitecture):
    """RoBERTa and XLM-R: BERT's layers, no pooler, a two-layer classification head on [CLS], and position ids
    that start after the padding id."""

    model_types: ClassVar[tuple[str, ...]] = ("roberta", "xlm-roberta", "camembert")
    name: ClassVar[str] = "roberta"
    config_class: ClassVar[type[PretrainedConfig]] = RobertaConfig

    def classify(self, model: PreTrainedModel, hidden: Tensor, attention_mask: Tensor) -> Tensor:
        return model.classifier(hidden)

    def student_config(self, teacher: PretrainedConfig, sizes, dropout, head) -> PretrainedConfig:
        config = super().student_config(teacher, sizes, dropout, head)
        if teacher.model_type not in self.model_types:  # positions are counted from padding_idx + 1
            config.max_position_embeddings += (config.pad_token_id or 0) + 1
        return config


class ElectraArchitecture(RobertaArchitecture):
    """ELECTRA: BERT's layers behind embeddings that may be narrower than the layers (then projected up)."""

    model_types: ClassVar[tuple[str, ...]] = ("electra",)
    name: ClassVar[str] = "electra"
    config_class: ClassVar[type[PretrainedConfig]] = ElectraConfig

    def embed(self, model: PreTrainedModel, batch: Mapping[str, Tensor]) -> Tensor:
        hidden = super().embed(model, batch)
        project = getattr(model.base_model, "embeddings_project", None)
        return project(hidden) if project is not None else hidden

    def student_config(self, teacher: PretrainedConfig, sizes, dropout, head) -> PretrainedConfig:
        config = Architecture.student_config(self, teacher, sizes, dropout, head)
        wide = teacher.model_type != "electra" or teacher.embedding_size == teacher.hidden_size
        config.embedding_size = config.hidden_size if wide else min(teacher.embedding_size, config.hidden_size)
        return config


class DistilBertArchitecture(Architecture):
    model_types: ClassVar[tuple[str, ...]] = ("distilbert",)
    name: ClassVar[str] = "distilbert"
    config_class: ClassVar[type[PretrainedConfig]] = DistilBertConfig
    size_keys: ClassVar[dict[str, str]] = {
        "layers": "n_layers",
        "hidden": "dim",
        "heads": "n_heads",
        "intermediate": "hidden_dim",
    }
    dropout_keys: ClassVar[tuple[str, ...]] = ("dropout", "attention_dropout")

    def layers(self, model: PreTrainedModel) -> nn.ModuleList:
        return model.base_model.transformer.layer

    def _set_layers(self, model: PreTrainedModel, layers: nn.ModuleList) -> None:
        model.base_model.transformer.layer = layers

    def attention(self, layer: nn.Module) -> Attention:
        block = layer.attention
        return Attention(output=block.out_lin, query=block.q_lin, key=block.k_lin, value=block.v_lin)

    def feed_forward(self, layer: nn.Module) -> tuple[nn.Linear, nn.Linear]:
        return layer.ffn.lin1, layer.ffn.lin2

    def embed(self, model: PreTrainedModel, batch: Mapping[str, Tensor]) -> Tensor:
        return model.base_model.embeddings(batch["input_ids"])

    def run_layer(self, model: PreTrainedModel, index: int, hidden: Tensor, attention_mask: Tensor) -> Tensor:
        from transformers.masking_utils import create_bidirectional_mask  # loads transformers' modelling: lazy

        mask = create_bidirectional_mask(config=model.config, inputs_embeds=hidden, attention_mask=attention_mask)
        return self.layers(model)[index](hidden, attention_mask=mask)

    def classify(self, model: PreTrainedModel, hidden: Tensor, attention_mask: Tensor) -> Tensor:
        pooled = nn.functional.relu(model.pre_classifier(hidden[:, 0]))
        return model.classifier(model.dropout(pooled))

    def head_size(self, model: PreTrainedModel) -> int:
        return model.config.dim // model.config.n_heads


class DebertaV2Architecture(BertArchitecture):
    """DeBERTa-v2 and v3: disentangled attention over relative positions.

    Captured attention scores are the content-to-content part q·kᵀ/√d; the position terms DeBERTa adds are not in
    them, so attention-map losses compare what the two models' contents attend to.
    """

    model_types: ClassVar[tuple[str, ...]] = ("deberta-v2",)
    name: ClassVar[str] = "deberta-v2"
    config_class: ClassVar[type[PretrainedConfig]] = DebertaV2Config
    positions_in_layers: ClassVar[bool] = True
    derived_keys: ClassVar[tuple[str, ...]] = ("pooler_hidden_size", "embedding_size")  # follow hidden_size
    fresh_settings: ClassVar[dict[str, Any]] = {  # DeBERTa-v3's published settings
        "relative_attention": True,
        "position_biased_input": False,
        "pos_att_type": ["p2c", "c2p"],
        "max_relative_positions": -1,
        "position_buckets": 256,
        "norm_rel_ebd": "layer_norm",
        "share_att_key": True,
        "hidden_act": "gelu",
    }

    def segment_rows(self, teacher_rows: int) -> int:
        return teacher_rows  # DeBERTa adds no segment embedding at all when it has no rows

    def attention(self, layer: nn.Module) -> Attention:
        block = layer.attention.self
        positional = [p for p in (getattr(block, "pos_key_proj", None), getattr(block, "pos_query_proj", None)) if p]
        return Attention(
            output=layer.attention.output.dense,
            query=block.query_proj,
            key=block.key_proj,
            value=block.value_proj,
            positional=positional,
        )

    def embed(self, model: PreTrainedModel, batch: Mapping[str, Tensor]) -> Tensor:
        return model.base_model.embeddings(
            input_ids=batch["input_ids"], token_type_ids=segment_ids(model, batch), mask=batch["attention_mask"]
        )

    def run_layer(self, model: PreTrainedModel, index: int, hidden: Tensor, attention_mask: Tensor) -> Tensor:
        encoder = model.base_model.encoder
        output, _ = encoder.layer[index](
            hidden,
            encoder.get_attention_mask(attention_mask),
            relative_pos=encoder.get_rel_pos(hidden),
            rel_embeddings=encoder.get_rel_embedding(),
        )
        if index == 0 and encoder.conv is not None:
            output = encoder.conv(hidden, output, attention_mask)
        return output

    def classify(self, model: PreTrainedModel, hidden: Tensor, attention_mask: Tensor) -> Tensor:
        return model.classifier(model.dropout(model.pooler(hidden)))

    def sync(self, model: PreTrainedModel, layer: nn.Module) -> None:
        block = layer.attention.self
        block.all_head_size = block.query_proj.out_features
        block.num_attention_heads = block.all_head_size // block.attention_head_size


class ModernBertArchitecture(Architecture):
    """ModernBERT: pre-norm layers with one fused q/k/v projection, rotary positions, alternating global and
    local attention, and a gated (GLU) feed-forward block. Captured queries and keys are rotated, as the model
    rotates them, so attention scores are the model's own."""

    model_types: ClassVar[tuple[str, ...]] = ("modernbert",)
    name: ClassVar[str] = "modernbert"
    config_class: ClassVar[type[PretrainedConfig]] = ModernBertConfig
    dropout_keys: ClassVar[tuple[str, ...]] = ("attention_dropout", "mlp_dropout", "embedding_dropout")
    derived_keys: ClassVar[tuple[str, ...]] = ("layer_types",)
    gated: ClassVar[bool] = True
    positions_in_layers: ClassVar[bool] = True

    def layers(self, model: PreTrainedModel) -> nn.ModuleList:
        return model.base_model.layers

    def _set_layers(self, model: PreTrainedModel, layers: nn.ModuleList) -> None:
        model.base_model.layers = layers

    def attention(self, layer: nn.Module) -> Attention:
        return Attention(output=layer.attn.Wo, fused=layer.attn.Wqkv, module=layer.attn)

    def feed_forward(self, layer: nn.Module) -> tuple[nn.Linear, nn.Linear]:
        return layer.mlp.Wi, layer.mlp.Wo

    def embeddings(self, model: PreTrainedModel) -> dict[str, nn.Embedding]:
        return {"word": model.base_model.embeddings.tok_embeddings}

    def capture(self, model: PreTrainedModel, layer: nn.Module, record: Record) -> None:
        """q, k (rotated by the position embeddings the attention block is given) and v, split from Wqkv."""
        from transformers.models.modernbert.modeling_modernbert import apply_rotary_pos_emb

        size = self.head_size(model)
        rotation: dict[str, Any] = {}

        def remember(module: nn.Module, args: tuple, kwargs: dict) -> None:
            rotation["cos_sin"] = kwargs.get("position_embeddings")

        def split(module: nn.Module, args: tuple, output: Tensor) -> None:
            batch, length, width = output.shape
            q, k, v = (part.transpose(1, 2) for part in output.view(batch, length, 3, -1, size).unbind(2))
            rotated: list[tuple[Tensor, Tensor]] = []

            def turned(index: int) -> Tensor:  # q and k are rotated together, once, and only if wanted
                if not rotated:
                    rotated.append(apply_rotary_pos_emb(q, k, *rotation["cos_sin"], unsqueeze_dim=1))
                return rotated[0][index]

            record("queries", lambda: turned(0))
            record("keys", lambda: turned(1))
            record("values", lambda: v)

        layer.attn.register_forward_pre_hook(remember, with_kwargs=True)
        layer.attn.Wqkv.register_forward_hook(split)

    def embed(self, model: PreTrainedModel, batch: Mapping[str, Tensor]) -> Tensor:
        return model.base_model.embeddings(input_ids=batch["input_ids"])

    def run_layer(self, model: PreTrainedModel, index: int, hidden: Tensor, attention_mask: Tensor) -> Tensor:
        from transformers.masking_utils import create_bidirectional_mask, create_bidirectional_sliding_window_mask

        base, layer = model.base_model, self.layers(model)[index]
        kind = layer.attention_type
        masking = create_bidirectional_sliding_window_mask if kind == "sliding_attention" else create_bidirectional_mask
        mask = masking(config=model.config, inputs_embeds=hidden, attention_mask=attention_mask)
        positions = torch.arange(hidden.shape[1], device=hidden.device).unsqueeze(0)
        return layer(hidden, attention_mask=mask, position_embeddings=base.rotary_emb(hidden, positions, kind))

    def classify(self, model: PreTrainedModel, hidden: Tensor, attention_mask: Tensor) -> Tensor:
        hidden = model.base_model.final_norm(hidden)
        if model.config.classifier_pooling == "cls":
            pooled = hidden[:, 0]
        else:
            weights = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * weights).sum(1) / weights.sum(1)
        return model.classifier(model.drop(model.head(pooled)))

    def keep_layers(self, model: PreTrainedModel, kept: list[int]) -> None:
        types = list(model.config.layer_types)
        super().keep_layers(model, kept)
        model.config.layer_types = [types[i] for i in kept]

    def check_layer_removal(self, model: PreTrainedModel, removed: list[int]) -> None:
        if 0 in removed:
            raise DistillError(
                "ModernBERT's first layer has no attention norm (the embeddings are normalised already), so it "
                "cannot be removed: prune later layers"
            )


class MPNetArchitecture(RobertaArchitecture):
    """MPNet (all-mpnet-base-v2's family): BERT's layer layout under its own names, absolute positions counted
    from the padding id as in RoBERTa, and one relative-position bias (a column per head) that the encoder
    computes once and adds to every layer's attention scores."""

    model_types: ClassVar[tuple[str, ...]] = ("mpnet",)
    name: ClassVar[str] = "mpnet"
    config_class: ClassVar[type[PretrainedConfig]] = MPNetConfig
    positions_in_layers: ClassVar[bool] = True  # the relative bias is for the sequence each layer reads

    def attention(self, layer: nn.Module) -> Attention:
        block = layer.attention.attn
        return Attention(output=block.o, query=block.q, key=block.k, value=block.v, module=block)

    def run_layer(self, model: PreTrainedModel, index: int, hidden: Tensor, attention_mask: Tensor) -> Tensor:
        extended = (1.0 - attention_mask[:, None, None, :].to(hidden.dtype)) * torch.finfo(hidden.dtype).min
        encoder = model.base_model.encoder
        bias = encoder.compute_position_bias(hidden)
        return encoder.layer[index](hidden, extended, position_bias=bias)[0]

    def check_head_removal(self, model: PreTrainedModel) -> None:
        raise DistillError(
            "MPNet adds one relative-position bias to every layer's attention, a column per head and the same "
            "columns in every layer, so heads cannot be cut layer by layer: prune neurons or layers instead"
        )


class AlbertArchitecture(BertArchitecture):
    """ALBERT is recognised only to be refused with its reason (see `refusal`)."""

    model_types: ClassVar[tuple[str, ...]] = ("albert",)
    name: ClassVar[str] = "albert"
    refusal: ClassVar[str | None] = (
        "ALBERT shares one set of layer weights across its whole depth, so copying, slicing or dropping a layer "
        "would change every layer at once, and its per-layer features do not map onto a student's layers; "
        "distil it from a checkpoint of another family, or write an adapter that expresses shared layers"
    )


@hookimpl
def distill_register_architectures() -> list[type[Architecture]]:
    return [
        BertArchitecture,
        RobertaArchitecture,
        ElectraArchitecture,
        DistilBertArchitecture,
        DebertaV2Architecture,
        ModernBertArchitecture,
        MPNetArchitecture,
        AlbertArchitecture,
    ]
