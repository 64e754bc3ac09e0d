"""Structured pruning of Transformer students (any family with an adapter): heads, neurons, whole layers.

During training a pruned unit is switched off by a gate (a fixed-shape buffer, so checkpoints and resumes
need nothing special). Heads and neurons are ranked by importance, Michel et al.'s (2019) expected
|∂L/∂gate| over a number of training batches, and switched off at a chosen point; training then continues so
the rest adapts. At export the units are cut out of the weights, so the exported model is smaller and faster.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import Tensor, nn
from typing_extensions import override

from distill import Architecture, Compression, DistillError, ExportFormat, Stage, Student, hf_model, readable

if TYPE_CHECKING:
    from lightning.pytorch import Callback


def _gate_heads(module: nn.Linear, args: tuple) -> tuple:
    """Pre-hook of the attention output projection: scale each head's slice of its input by its gate."""
    x, gate = args[0], module.head_gate
    b, t, width = x.shape
    return ((x.view(b, t, gate.numel(), width // gate.numel()) * gate.view(1, 1, -1, 1)).view(b, t, width), *args[1:])


def _gate_neurons(module: nn.Linear, args: tuple) -> tuple:
    """Pre-hook of the feed-forward output projection: scale each intermediate neuron by its gate."""
    return (args[0] * module.neuron_gate, *args[1:])


def _gate_layer(module: nn.Module, args: tuple, output: Tensor | tuple) -> Tensor | tuple:
    """Forward hook of an encoder layer: input + gate · (output − input); gate 0 skips the layer. A layer that
    returns a tuple (DeBERTa's) keeps its other outputs."""
    hidden = output[0] if isinstance(output, tuple) else output
    gated = args[0] + module.layer_gate * (hidden - args[0])
    return (gated, *output[1:]) if isinstance(output, tuple) else gated


def _install(module: nn.Module, buffer: str, size: int, hook, pre: bool) -> None:
    """Idempotent: one gate buffer (ones) and one hook per module; the hook's handle is kept to remove it."""
    if hasattr(module, buffer):
        return
    module.register_buffer(buffer, torch.ones(size))
    handle = module.register_forward_pre_hook(hook) if pre else module.register_forward_hook(hook)
    module.__dict__.setdefault("_distill_gate_hooks", {})[buffer] = handle


@dataclass(eq=False)
class _GatedPruning(Compression):
    fraction: float = 0.5
    at: float = 0.1
    batches: int = 32

    stage: ClassVar[Stage] = Stage.MASKS
    requires: ClassVar[frozenset[str]] = frozenset({"attentions", "hidden_states"})

    def __post_init__(self) -> None:
        if not 0.0 < self.fraction < 1.0 or not 0.0 <= self.at < 1.0 or self.batches < 1:
            raise DistillError(f"{self.name} needs 0 < fraction < 1, 0 <= at < 1 and batches >= 1")
        self.settled_at = self.at
        self.scored: int | None = None  # batches scored in this run, which GateScoring keeps up to date

    def gates(self, model: nn.Module, architecture: Architecture) -> list[Tensor]:
        raise NotImplementedError

    def prune(self, gates: list[Tensor], importance: list[Tensor]) -> None:
        raise NotImplementedError

    @override
    def callbacks(self) -> list[Callback]:
        from distill.plugins.pruning.callbacks import GateScoring  # Lightning is imported only to train

        return [GateScoring(self)]

    @override
    def shortfall(self) -> str | None:
        if self.scored is None or self.scored >= self.batches:
            return None
        return (
            f"scored {self.scored} of the {self.batches} batches it needs from {self.at:.0%} of training on, so "
            f"nothing was pruned: train longer, or lower `batches` or `at`"
        )


def _lowest(scores: list[Tensor], count: int, floor: int = 1) -> list[list[int]]:
    """Indices of the `count` lowest scores across all lists, leaving at least `floor` in each list."""
    ranked = sorted(
        (float(s), layer, unit) for layer, layer_scores in enumerate(scores) for unit, s in enumerate(layer_scores)
    )
    removed: list[list[int]] = [[] for _ in scores]
    for _, layer, unit in ranked:
        if count == 0:
            break
        if len(scores[layer]) - len(removed[layer]) > floor:
            removed[layer].append(unit)
            count -= 1
    return removed


@dataclass(eq=False)
class HeadPruning(_GatedPruning):
    """Prune a fraction of all attention heads, the least important first (Michel et al., 2019).

    Attributes:
        fraction: share of all heads removed (every layer keeps at least one).
        at: fraction of training when heads are scored; they are removed right after.
        batches: training batches whose head-gate gradients make up each head's importance.
    """

    def gates(self, model: nn.Module, architecture: Architecture) -> list[Tensor]:
        return [architecture.attention(layer).output.head_gate for layer in architecture.layers(model)]

    @override
    def configure_student(self, student: Student, teacher: Any, data: Any) -> None:
        model, architecture = hf_model(student, self.name)
        architecture.check_head_removal(model)
        for layer in architecture.layers(model):
            output = architecture.attention(layer).output
            _install(output, "head_gate", architecture.heads(model, layer), _gate_heads, True)

    def prune(self, gates: list[Tensor], importance: list[Tensor]) -> None:
        normalised = [i / (i.norm() + 1e-12) for i in importance]  # Michel et al. normalise per layer
        total = sum(g.numel() for g in gates)
        for gate, removed in zip(gates, _lowest(normalised, int(self.fraction * total)), strict=True):
            gate[removed] = 0.0

    @override
    def finalize(self, student: Student) -> None:
        model, architecture = hf_model(student, self.name)
        for layer in architecture.layers(model):
            output = architecture.attention(layer).output
            kept = output.head_gate.nonzero().flatten().tolist()
            _remove_gate(output, "head_gate")
            architecture.keep_heads(model, layer, kept)


@dataclass(eq=False)
class NeuronPruning(_GatedPruning):
    """Prune feed-forward neurons by importance.

    Attributes:
        fraction: share of feed-forward neurons removed.
        uniform: remove the same number from every layer, so the export is a plain configuration of its family
            (loadable with `from_pretrained`); otherwise rank all layers together.
        at: fraction of training when neurons are scored and removed.
        batches: training batches that score them.
    """

    uniform: bool = True

    def gates(self, model: nn.Module, architecture: Architecture) -> list[Tensor]:
        return [architecture.feed_forward(layer)[1].neuron_gate for layer in architecture.layers(model)]

    @override
    def configure_student(self, student: Student, teacher: Any, data: Any) -> None:
        model, architecture = hf_model(student, self.name)
        for layer in architecture.layers(model):
            outer = architecture.feed_forward(layer)[1]
            _install(outer, "neuron_gate", architecture.neurons(layer), _gate_neurons, True)

    def prune(self, gates: list[Tensor], importance: list[Tensor]) -> None:
        if self.uniform:
            for gate, scores in zip(gates, importance, strict=True):
                gate[scores.argsort()[: int(self.fraction * gate.numel())]] = 0.0
            return
        normalised = [i / (i.norm() + 1e-12) for i in importance]
        for gate, removed in zip(
            gates, _lowest(normalised, int(self.fraction * sum(g.numel() for g in gates))), strict=True
        ):
            gate[removed] = 0.0

    @override
    def finalize(self, student: Student) -> None:
        model, architecture = hf_model(student, self.name)
        sizes = []
        for layer in architecture.layers(model):
            outer = architecture.feed_forward(layer)[1]
            kept = outer.neuron_gate.nonzero().flatten().tolist()
            _remove_gate(outer, "neuron_gate")
            architecture.keep_neurons(model, layer, kept)
            sizes.append(len(kept))
        if len(set(sizes)) == 1:
            setattr(model.config, architecture.size_keys["intermediate"], sizes[0])


@dataclass(eq=False)
class LayerPruning(Compression):
    """Remove whole encoder layers: the listed ones are skipped from the start (the rest learn to do without
    them) and cut out at export, which stays a plain configuration of its family.

    Attributes:
        layers: 1-based encoder layers to remove.
    """

    layers: list[int] = field(default_factory=list)

    stage: ClassVar[Stage] = Stage.STRUCTURE
    requires: ClassVar[frozenset[str]] = frozenset({"hidden_states"})

    @override
    def configure_student(self, student: Student, teacher: Any, data: Any) -> None:
        model, architecture = hf_model(student, self.name)
        layers = architecture.layers(model)
        if (
            not self.layers
            or any(not 1 <= i <= len(layers) for i in self.layers)
            or len(set(self.layers)) >= len(layers)
        ):
            raise DistillError(f"LayerPruning.layers {self.layers} must name some, not all, of layers 1..{len(layers)}")
        architecture.check_layer_removal(model, [i - 1 for i in self.layers])
        for position, layer in enumerate(layers, start=1):
            _install(layer, "layer_gate", 1, _gate_layer, False)
            if position in self.layers:
                layer.layer_gate.zero_()

    @override
    def finalize(self, student: Student) -> None:
        model, architecture = hf_model(student, self.name)
        layers = architecture.layers(model)
        kept = [index for index, layer in enumerate(layers) if layer.layer_gate.item() != 0]
        for layer in layers:
            _remove_gate(layer, "layer_gate")
        architecture.keep_layers(model, kept)


def _remove_gate(module: nn.Module, buffer: str) -> None:
    """Drop a gate buffer and its hook: after slicing, the module runs ungated."""
    delattr(module, buffer)
    module.__dict__["_distill_gate_hooks"].pop(buffer).remove()


def slimmed_shapes(model: nn.Module, architecture: Architecture) -> dict[str, list[int]] | None:
    """Per-layer head and neuron counts if some layer differs from what the config says, else None."""
    layers = architecture.layers(model)
    heads = [architecture.heads(model, layer) for layer in layers]
    neurons = [architecture.neurons(layer) for layer in layers]
    config = model.config
    intermediate = getattr(config, architecture.size_keys["intermediate"])
    if set(heads) == {config.num_attention_heads} and set(neurons) == {intermediate}:
        return None
    return {"heads_per_layer": heads, "intermediate_per_layer": neurons}


class SlimmedExport(ExportFormat):
    """A Transformer whose layers keep different numbers of heads and neurons."""

    @classmethod
    @override
    def report_sections(cls, model: nn.Module) -> list[dict[str, Any]]:
        """Heads and feed-forward neurons left in each layer, for Transformers that were slimmed."""
        architecture = readable(model)
        if architecture is None or slimmed_shapes(model, architecture) is None:
            return []
        data = {
            f"layer {i} heads / neurons": f"{architecture.heads(model, layer)} / {architecture.neurons(layer)}"
            for i, layer in enumerate(architecture.layers(model), start=1)
        }
        return [{"title": "Structure after pruning", "data": data}]
