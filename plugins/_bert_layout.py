"""Where things are in a BERT-style Hugging Face classifier, for plugins that operate on its layers."""

from __future__ import annotations

from torch import nn

from distill import DistillError, Student


def hf_model(student: Student, method: str) -> nn.Module:
    """The Hugging Face model inside a Transformer student."""
    model = getattr(student, "model", None)
    if model is None or not hasattr(getattr(model, "base_model", None), "encoder"):
        raise DistillError(
            f"{method} works on BERT-style Transformer students; the {student.family} student is not one"
        )
    return model


def encoder_layers(model: nn.Module) -> nn.ModuleList:
    return model.base_model.encoder.layer


def head_size(model: nn.Module) -> int:
    return model.config.hidden_size // model.config.num_attention_heads


def heads_in(layer: nn.Module, size: int) -> int:
    """Heads a (possibly slimmed) layer still has: its query width over the head size."""
    return layer.attention.self.query.out_features // size


def slice_linear(linear: nn.Linear, keep: list[int] | None = None, keep_inputs: list[int] | None = None) -> None:
    """Keep only some output rows and/or input columns of a Linear layer, in place."""
    weight = linear.weight.data
    if keep is not None:
        weight = weight[keep]
        if linear.bias is not None:
            linear.bias = nn.Parameter(linear.bias.data[keep].clone())
        linear.out_features = len(keep)
    if keep_inputs is not None:
        weight = weight[:, keep_inputs]
        linear.in_features = len(keep_inputs)
    linear.weight = nn.Parameter(weight.clone())
