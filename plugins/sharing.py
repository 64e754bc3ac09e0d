"""Cross-layer parameter sharing (ALBERT, Lan et al., 2020): every encoder layer uses the same weights.

Sharing all of a layer, its attention only, or its feed-forward block only, the encoder keeps its depth and
its time but stores one layer's weights. The shared weights start from the first layer, from the average
of the student's layers, or from the average of the teacher's (which needs the teacher's widths). The export
writes each shared tensor once, so the file shrinks; the loader ties the layers again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch
from torch import nn
from typing_extensions import override

from distill import (
    Architecture,
    Compression,
    DistillError,
    ExportFormat,
    Stage,
    Student,
    architecture_of,
    hf_model,
    hookimpl,
)

Share = Literal["all", "attention", "feed_forward"]


def _owned(layer: nn.Module, modules: list[nn.Module]) -> set[str]:
    """Names (relative to `layer`) of the parameters of `modules`."""
    wanted = {id(m) for m in modules}
    return {
        f"{path}.{name}" if path else name
        for path, module in layer.named_modules()
        if id(module) in wanted
        for name, _ in module.named_parameters(recurse=False)
    }


def shareable(architecture: Architecture, layer: nn.Module, share: Share) -> set[str]:
    """The parameters of `layer` that `share` ties across layers."""
    if share == "all":
        return {name for name, _ in layer.named_parameters()}
    if share == "feed_forward":
        return _owned(layer, list(architecture.feed_forward(layer)))
    parts = architecture.attention(layer)
    projections = [parts.query, parts.key, parts.value, parts.fused, parts.output, *parts.positional]
    return _owned(layer, [p for p in projections if p is not None])


def tie(layers: nn.ModuleList, names: set[str]) -> None:
    """Make every layer use the first holder's tensor for each of `names` (where the shapes agree)."""
    first: dict[str, nn.Parameter] = {}
    for layer in layers:
        own = dict(layer.named_parameters(remove_duplicate=False))
        for name in sorted(names & set(own)):
            if name not in first:
                first[name] = own[name]
            elif own[name] is not first[name] and own[name].shape == first[name].shape:
                path, _, attribute = name.rpartition(".")
                setattr(layer.get_submodule(path) if path else layer, attribute, first[name])


@torch.no_grad()
def _average_into(layers: nn.ModuleList, sources: nn.ModuleList, names: set[str]) -> None:
    """Set each shared tensor of the first holder to the mean of that tensor over `sources`' layers."""
    for name in names:
        held = [dict(layer.named_parameters()).get(name) for layer in layers]
        target = next((p for p in held if p is not None), None)
        found = [p for layer in sources if (p := dict(layer.named_parameters()).get(name)) is not None]
        if target is None or not found:
            continue
        if any(p.shape != target.shape for p in found):
            raise DistillError(
                f"ParameterSharing start: teacher_average needs the teacher's widths, but {name} is "
                f"{tuple(found[0].shape)} in the teacher and {tuple(target.shape)} in the student: start from "
                f"first or average instead"
            )
        target.copy_(torch.stack(found).mean(0))


@dataclass(eq=False)
class ParameterSharing(Compression):
    """Share weights across all encoder layers.

    Attributes:
        share: "all" of each layer, its "attention" projections only, or its "feed_forward" block only.
        start: the shared weights start from the "first" layer, the "average" of the student's layers, or the
            "teacher_average" of the teacher's layers (the teacher must have the student's widths).
    """

    share: Share = "all"
    start: Literal["first", "average", "teacher_average"] = "average"

    stage: ClassVar[Stage] = Stage.STRUCTURE
    excludes: ClassVar[dict[str, str]] = {
        "HeadPruning": "each layer would keep other heads of the one shared weight",
        "NeuronPruning": "each layer would keep other neurons of the one shared weight",
        "LowRankDecomposition": "factorising each layer separately would untie them; factorise the export",
        "WeightSqueezing": "squeezing gives each layer its own maps of its own teacher layer",
    }

    @override
    def configure_student(self, student: Student, teacher: Any, data: Any) -> None:
        model, architecture = hf_model(student, self.name)
        layers = architecture.layers(model)
        if len(layers) < 2:
            raise DistillError("ParameterSharing needs a student with at least two encoder layers")
        names = set().union(*(shareable(architecture, layer, self.share) for layer in layers))
        if self.start == "average":
            _average_into(layers, layers, names)
        elif self.start == "teacher_average":
            if teacher is None:
                raise DistillError("ParameterSharing start: teacher_average needs model.teacher")
            teacher_layers = architecture_of(teacher.model, "teacher").layers(teacher.model)
            _average_into(layers, teacher_layers, names)
        tie(layers, names)  # idempotent: averaging tied layers changes nothing

    @override
    def structure(self, student: Student) -> dict[str, Any] | None:
        model, architecture = hf_model(student, self.name)
        layers = architecture.layers(model)
        return {"names": sorted(set().union(*(shareable(architecture, layer, self.share) for layer in layers)))}


class SharedLayersExport(ExportFormat):
    """Weights shared across layers in a Hugging Face export, saved once."""

    structures: ClassVar[frozenset[str]] = frozenset({"ParameterSharing"})

    @classmethod
    @override
    def rebuild(cls, model: nn.Module, structure: str, settings: dict[str, Any]) -> None:
        tie(architecture_of(model).layers(model), set(settings["names"]))

    @classmethod
    @override
    def report_sections(cls, model: nn.Module) -> list[dict[str, Any]]:
        params = dict(model.named_parameters(remove_duplicate=False))
        unique = {id(p) for p in params.values()}
        if len(unique) == len(params):
            return []
        stored = sum(p.numel() for p in {id(p): p for p in params.values()}.values())
        used = sum(p.numel() for p in params.values())
        return [{"title": "Shared parameters", "data": {"stored": stored, "used by the layers": used}}]


@hookimpl
def distill_register_compression() -> list[type]:
    return [ParameterSharing]


@hookimpl
def distill_register_export_formats() -> list[type]:
    return [SharedLayersExport]
