"""Reading exports: the plugin kind that knows one way an export is written.

After fit, distill reads an export in three ways: it loads it (predict, bench, the report card), describes it
(report-card sections, the variants bench measures beside it) and traces it (ONNX). An ExportFormat answers all
three for one kind of folder (an int8 copy, an export with exit ramps), or for the modules one compression method
leaves in a Hugging Face folder (low-rank factors, pruned heads). Every method is a class method: a loaded model
no longer knows the training run, or the method instance, that made it.

A Compression method writes; its ExportFormat reads. The two are registered apart (distill_register_compression,
distill_register_export_formats), so a format can read folders whose method is not installed.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from torch import nn

from distill.errors import DistillError
from distill.registry import registered

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase


class ExportFormat:
    """Base of every export format; each method does nothing by default.

    Class attributes:
        structures: names of the structure records (what a Compression's `structure` returned, recorded under
            its method's name) whose modules this format re-creates with `rebuild`.
        order: formats that own folders are asked in ascending order, so one that also owns a folder another
            recognises (an export both trained with exits and with word elimination) can go first.
        marker: a file whose presence marks a folder written in this format (the default `recognises` looks
            for it).
    """

    structures: ClassVar[frozenset[str]] = frozenset()
    order: ClassVar[int] = 0
    marker: ClassVar[str | None] = None

    @classmethod
    def recognises(cls, folder: Path) -> bool:
        """True when `folder` (an existing folder or file) is written in this format, and `load` reads it; by
        default, when the folder holds the file named by `marker`."""
        return cls.marker is not None and (folder / cls.marker).is_file()

    @classmethod
    def load(cls, folder: Path, trust_remote_code: bool) -> tuple[nn.Module, PreTrainedTokenizerBase]:
        """The model in `folder` and its tokenizer; called only when `recognises(folder)`."""
        raise NotImplementedError(f"{cls.__name__} recognises folders but does not load them")

    @classmethod
    def rebuild(cls, model: nn.Module, structure: str, settings: dict[str, Any]) -> None:
        """Re-create in `model`, freshly built from its config, the modules the structure record `structure` (one
        of `structures`) describes, so the saved weights load into them."""

    @classmethod
    def report_sections(cls, model: nn.Module) -> list[dict[str, Any]]:
        """Report-card sections about a loaded model this format recognises, measured after its evaluation:
        dicts with a "title" and a flat "data" mapping (heads kept per layer, the exit-layer histogram)."""
        return []

    @classmethod
    def bench_variants(cls, name: str, model: nn.Module) -> list[tuple[str, nn.Module]]:
        """Variants of a loaded model to measure beside it (early exit at several thresholds), named from `name`."""
        return []

    @classmethod
    def onnx_network(cls, model: nn.Module) -> nn.Module | None:
        """What a static graph can hold in place of a loaded model that cannot be traced (early exit: the
        full-depth network, since rows cannot leave a graph); None leaves the model as it is."""
        return None


def export_formats() -> list[type[ExportFormat]]:
    """Every installed format, in the order they are asked (`order`, then name)."""
    formats = [cls for cls, _ in registered("export_formats").values()]
    return sorted(formats, key=lambda cls: (cls.order, cls.__name__))


def owner_of(folder: Path) -> type[ExportFormat] | None:
    """The first installed format that recognises `folder`, else None (a plain Hugging Face folder)."""
    return next((cls for cls in export_formats() if cls.recognises(folder)), None)


def rebuild(model: nn.Module, records: Sequence[Mapping[str, Any]]) -> None:
    """Replay an export's structure records, in the order they were written, on a model built from its config.

    Raises:
        DistillError: a record no installed format re-creates.
    """
    readers = {name: cls for cls in export_formats() for name in cls.structures}
    for record in records:
        if record["method"] not in readers:
            raise DistillError(
                f"this model was shaped by {record['method']}, and no installed plugin reads its modules: install "
                f"the plugin that provides {record['method']} (`distill plugins` lists what is installed)"
            )
        readers[record["method"]].rebuild(model, record["method"], record["settings"])


def report_sections(model: nn.Module) -> list[dict[str, Any]]:
    """Every installed format's sections about `model`."""
    return [section for cls in export_formats() for section in cls.report_sections(model)]


def bench_variants(name: str, model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Every installed format's variants of `model`, to measure beside it."""
    return [variant for cls in export_formats() for variant in cls.bench_variants(name, model)]


def onnx_network(model: nn.Module) -> nn.Module:
    """The module to trace into ONNX for a loaded model: an installed format's stand-in, or the model itself."""
    return next((net for cls in export_formats() if (net := cls.onnx_network(model)) is not None), model)


class OnnxVariant(ABC):
    """A copy of an export's float ONNX graph that a compression method makes for serving (int8, say), written
    into the export's onnx/ folder as `model_<name>.onnx` by `distill export --onnx` and `report.onnx`, and then
    scored and timed like every other copy. Register subclasses with `distill_register_onnx_variants`.

    Class attributes:
        name: the copy's name in its file name and in the report (`onnx-<name>`).
    """

    name: ClassVar[str]

    @abstractmethod
    def write(self, graph: Path, target: Path, calibration: Sequence[Mapping[str, Any]]) -> None:
        """Write the copy of the float graph `graph` (its recorded intermediate shapes removed, as quantizers
        want them) to `target`. `calibration` holds training batches in the graph's inputs (int64 arrays by input
        name), for a copy that fixes ranges on real rows."""


def onnx_variants() -> list[OnnxVariant]:
    """Every installed ONNX copy, in registration order."""
    return [cls() for cls, _ in registered("onnx_variants").values()]
