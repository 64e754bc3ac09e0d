"""LayerDrop (Fan et al., 2020) and random head dropping during training.

In each training step every encoder layer is skipped with probability `rate` (its input passes through), and
each attention head is silenced with probability `head_rate` (the rest rescaled, as dropout does). The
student learns not to depend on any one layer, so one run yields students of every depth: `distill export
--model <export> --layers N --out <folder>` cuts N layers spread over the depth, and `distill bench` shows the
accuracy and speed of each depth beside the full one. Nothing is dropped at evaluation, so the export is the
whole student.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor, nn
from typing_extensions import override

from distill import Compression, DistillError, ExportFormat, Stage, Student, hf_model, hookimpl, readable

SETTING = "distill_layer_drop"  # in config.json, so a loaded export knows it can be cut


def _skip_layer(module: nn.Module, args: tuple, output: Tensor | tuple) -> Tensor | tuple:
    """Forward hook: in training, with probability `module.drop_rate`, the layer's input instead of its output.
    The skipped layer stays in the graph with a zero factor, so data-parallel training sees every parameter."""
    if not module.training or torch.rand(()) >= module.drop_rate:
        return output
    hidden = output[0] if isinstance(output, tuple) else output
    skipped = args[0] + 0.0 * (hidden - args[0])
    return (skipped, *output[1:]) if isinstance(output, tuple) else skipped


def _drop_heads(module: nn.Module, args: tuple) -> tuple:
    """Pre-hook of the attention output projection: in training, zero each head's slice with probability
    `module.head_drop_rate` and rescale the others (at least one head always stays)."""
    if not module.training or module.head_drop_rate == 0:
        return args
    x, heads = args[0], module.head_count
    kept = (torch.rand(heads, device=x.device) >= module.head_drop_rate).to(x.dtype)
    if not kept.any():
        kept[torch.randint(heads, ())] = 1.0
    scale = kept * heads / kept.sum()
    b, t, width = x.shape
    return ((x.view(b, t, heads, width // heads) * scale.view(1, 1, -1, 1)).view(b, t, width), *args[1:])


@dataclass(eq=False)
class LayerDrop(Compression):
    """Skip random layers, and optionally silence random heads, in every training step.

    Attributes:
        rate: probability that a layer is skipped in a training step (Fan et al. use 0.1 to 0.2).
        head_rate: probability that a head is silenced in a training step (0: heads are left alone).
    """

    rate: float = 0.2
    head_rate: float = 0.0

    stage: ClassVar[Stage] = Stage.MASKS
    requires: ClassVar[frozenset[str]] = frozenset({"hidden_states"})
    excludes: ClassVar[dict[str, str]] = {"LayerPruning": "both decide which layers run; cut the depth at export"}

    def __post_init__(self) -> None:
        if not 0.0 <= self.rate < 1.0 or not 0.0 <= self.head_rate < 1.0 or self.rate == self.head_rate == 0:
            raise DistillError(f"LayerDrop needs 0 <= rate < 1 and 0 <= head_rate < 1, not both 0; got {self}")

    @override
    def configure_student(self, student: Student, teacher: Any, data: Any) -> None:
        model, architecture = hf_model(student, self.name)
        for layer in architecture.layers(model):
            if "drop_rate" not in layer.__dict__:  # idempotent
                layer.__dict__["drop_rate"] = self.rate
                layer.__dict__["_distill_layer_drop"] = layer.register_forward_hook(_skip_layer)
                output = architecture.attention(layer).output
                output.__dict__.update(head_drop_rate=self.head_rate, head_count=architecture.heads(model, layer))
                output.__dict__["_distill_head_drop"] = output.register_forward_pre_hook(_drop_heads)

    @override
    def finalize(self, student: Student) -> None:
        """Remove the hooks (nothing is dropped once trained) and mark the model as cuttable."""
        model, architecture = hf_model(student, self.name)
        for layer in architecture.layers(model):
            if handle := layer.__dict__.pop("_distill_layer_drop", None):
                handle.remove()
                del layer.__dict__["drop_rate"]
            output = architecture.attention(layer).output
            if handle := output.__dict__.pop("_distill_head_drop", None):
                handle.remove()
        setattr(model.config, SETTING, {"rate": self.rate, "head_rate": self.head_rate})


class LayerDropExport(ExportFormat):
    """A model trained with LayerDrop: it keeps its accuracy cut to fewer layers."""

    @classmethod
    @override
    def bench_variants(cls, name: str, model: nn.Module) -> list[tuple[str, nn.Module]]:
        """The same weights cut to each smaller depth: the accuracy/speed curve of one LayerDrop run."""
        architecture = readable(model)
        if architecture is None or not getattr(model.config, SETTING, None):
            return []
        variants = []
        for depth in range(len(architecture.layers(model)) - 1, 0, -1):
            cut = copy.deepcopy(model)
            architecture.keep_depth(cut, depth)
            variants.append((f"{name}@layers={depth}", cut))
        return variants


@hookimpl
def distill_register_compression() -> list[type]:
    return [LayerDrop]


@hookimpl
def distill_register_export_formats() -> list[type]:
    return [LayerDropExport]
