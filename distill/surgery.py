"""The kit of methods that reshape a Transformer student: its Hugging Face model and family adapter, module
replacement that keeps distill's feature hooks, and transforms run between layers. Public, so a third-party method
writes what the built-ins write."""

from __future__ import annotations

from typing import TYPE_CHECKING

from torch import nn

from distill.architecture import Architecture, architecture_of
from distill.errors import DistillError
from distill.student import Student

if TYPE_CHECKING:
    from transformers import PreTrainedModel

LAYER_TYPES = ("attention", "attention_output", "feed_forward_in", "feed_forward_out")


def hf_model(student: Student, method: str) -> tuple[PreTrainedModel, Architecture]:
    """The student's Hugging Face model and the adapter of its family.

    Raises:
        DistillError: the student is not a Transformer, or is one of a family no adapter reads.
    """
    from transformers import PreTrainedModel  # transformers' modelling costs a second of start-up: loaded here

    model = getattr(student, "model", None)
    if not isinstance(model, PreTrainedModel):
        raise DistillError(f"{method} works on Transformer students; the {student.family} student is not one")
    return model, architecture_of(model, f"{student.family} student")


def readable(model: nn.Module) -> Architecture | None:
    """The adapter of a loaded model, or None when it is not a Hugging Face model of a family distill reads."""
    from transformers import PreTrainedModel

    if not isinstance(model, PreTrainedModel):
        return None
    try:
        return architecture_of(model)
    except DistillError:
        return None


def replace_module(root: nn.Module, path: str, new: nn.Module) -> None:
    """Put `new` at `path` within `root`, keeping the forward hooks on the old module (distill's feature capture
    hooks the attention projections when a student is built, before any method reshapes it)."""
    parent_path, _, attribute = path.rpartition(".")
    parent = root.get_submodule(parent_path)
    old = getattr(parent, attribute)
    new._forward_hooks.update(old._forward_hooks)
    new._forward_pre_hooks.update(old._forward_pre_hooks)
    setattr(parent, attribute, new)


def module_paths(root: nn.Module) -> dict[int, str]:
    """Each module's path within `root`, by identity."""
    return {id(module): name for name, module in root.named_modules()}


def layer_linears(architecture: Architecture, layer: nn.Module) -> dict[str, list[nn.Module]]:
    """One encoder layer's Linear layers by type: q/k/v (or fused qkv), attention output, feed-forward in and out."""
    parts = architecture.attention(layer)
    inner, outer = architecture.feed_forward(layer)
    return {
        "attention": [p for p in (parts.query, parts.key, parts.value, parts.fused) if p is not None],
        "attention_output": [parts.output],
        "feed_forward_in": [inner],
        "feed_forward_out": [outer],
    }


BETWEEN_LAYERS = "distill_between_layers"


def between_layers(model: nn.Module) -> list:
    """Transforms `(depth, hidden, mask) -> (hidden, mask)` that a method attached to run after each encoder layer
    when the model runs layer by layer (word-vector elimination); the model's own forward ignores them."""
    return model.__dict__.get(BETWEEN_LAYERS, [])


def add_between_layers(model: nn.Module, transform) -> None:
    """Attach a transform for `between_layers` to find (word-vector elimination's shortening)."""
    model.__dict__.setdefault(BETWEEN_LAYERS, []).append(transform)
