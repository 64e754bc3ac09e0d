"""Progressive word-vector elimination (PoWER-BERT, Goyal et al., 2020).

After each encoder layer only the `keep[i]` word vectors that received the most attention in that layer go
on ([CLS] always does): significance is the attention a position receives, summed over heads and over the
real query positions. Every row keeps the same count, so a batch stays rectangular. Padding receives no
attention and goes first, so a row's answer does not depend on its batch mates. The student is trained with
the eliminating pass distilled from the teacher (beside its usual losses on the full pass), and validation
scores the eliminating pass, as the export serves it.

Positions must enter once, with the embeddings: in families that add relative or rotary positions in every
layer (DeBERTa, ModernBERT), a shortened sequence would be read at the wrong positions, so they are refused.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch.nn.functional as F
from torch import Tensor, nn
from transformers import AutoTokenizer, PreTrainedTokenizerBase
from typing_extensions import override

from distill import (
    STUDENT_PREFIX,
    Architecture,
    Compression,
    DistillError,
    ExportFormat,
    Features,
    LossTerm,
    Stage,
    Student,
    add_between_layers,
    architecture_of,
    between_layers,
    hf_model,
    hookimpl,
    load_transformer,
)

SETTINGS = "distill_word_elimination.json"


def significance(queries: Tensor, keys: Tensor, mask: Tensor) -> Tensor:
    """(B, T): the attention each position receives from the real positions, summed over heads."""
    scores = queries @ keys.transpose(-1, -2) * queries.shape[-1] ** -0.5
    scores = scores.masked_fill(~mask.bool()[:, None, None, :], float("-inf"))
    return (scores.softmax(-1) * mask[:, None, :, None].to(scores.dtype)).sum((1, 2))


def check_family(architecture: Architecture) -> None:
    if architecture.positions_in_layers:
        raise DistillError(
            f"WordVectorElimination needs positions added once with the embeddings; the {architecture.name} family "
            f"adds them in every layer, so a shortened sequence would be read at the wrong positions"
        )


class Eliminator:
    """After layer i, keeps the `keep[i]` word vectors that layer attended to most. Attached to a model as one
    of its between-layer transforms, it runs wherever the model runs layer by layer (here, or in early exit)."""

    def __init__(self, model: nn.Module, keep: list[int]) -> None:
        architecture = architecture_of(model)
        check_family(architecture)
        self.keep = keep
        self._captured: dict[str, Tensor] = {}  # the latest layer's queries and keys
        for layer in architecture.layers(model):
            architecture.capture(model, layer, self._record)

    def _record(self, kind: str, make) -> None:
        if kind in ("queries", "keys"):
            self._captured[kind] = make()  # views of the projections' outputs: nothing is computed here

    def __call__(self, depth: int, hidden: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        count = self.keep[depth] if depth < len(self.keep) else hidden.shape[1]
        if count >= hidden.shape[1]:
            return hidden, mask
        scores = significance(self._captured["queries"], self._captured["keys"], mask)
        scores[:, 0] = float("inf")  # [CLS] always stays
        kept = scores.topk(count, dim=1).indices.sort(dim=1).values
        return hidden.gather(1, kept[..., None].expand(-1, -1, hidden.shape[-1])), mask.gather(1, kept)


def attach(model: nn.Module, keep: list[int]) -> None:
    """Give `model` its eliminator, once."""
    if not any(isinstance(t, Eliminator) for t in between_layers(model)):
        add_between_layers(model, Eliminator(model, keep))


def layerwise(model: nn.Module, batch: Mapping[str, Tensor]) -> Tensor:
    """The model's logits, run layer by layer with its between-layer transforms."""
    adapter = architecture_of(model)
    hidden, mask = adapter.embed(model, batch), batch["attention_mask"]
    for depth in range(len(adapter.layers(model))):
        hidden = adapter.run_layer(model, depth, hidden, mask)
        for transform in between_layers(model):
            hidden, mask = transform(depth, hidden, mask)
    return adapter.classify(model, hidden, mask)


class EliminatingModel(nn.Module):
    """A loaded export that eliminates word vectors as it was trained to: `model(input_ids=..., attention_mask=...)`
    returns logits (B, C)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.keep = next(t.keep for t in between_layers(model) if isinstance(t, Eliminator))

    @property
    def config(self):
        return self.model.config

    def forward(self, input_ids: Tensor, attention_mask: Tensor, token_type_ids: Tensor | None = None) -> Tensor:
        batch = {"input_ids": input_ids, "attention_mask": attention_mask}
        if token_type_ids is not None:
            batch["token_type_ids"] = token_type_ids
        return layerwise(self.model, batch)


class EliminatedLogitsKD(LossTerm):
    """T²·KL(teacher ‖ student's eliminating pass): the student learns to answer from the vectors it keeps."""

    name = "eliminated_logits"
    teacher_needs = frozenset({"logits"})

    def __init__(self, student: Student, temperature: float, weight: float) -> None:
        super().__init__(weight)
        self.parts = (student,)  # a tuple: the student stays a parameter of the student only
        self.temperature = temperature

    def forward(self, student: Features, teacher: Features | None, batch: Mapping[str, Tensor]) -> Tensor:
        own = {k[len(STUDENT_PREFIX) :]: v for k, v in batch.items() if k.startswith(STUDENT_PREFIX)}
        logits = layerwise(self.parts[0].model, own or batch)
        t = self.temperature
        target = F.softmax(teacher.logits.detach() / t, -1)
        return F.kl_div(F.log_softmax(logits / t, -1), target, reduction="batchmean") * t * t


@dataclass(eq=False)
class WordVectorElimination(Compression):
    """Keep fewer word vectors after each layer.

    Attributes:
        keep: word vectors kept after each encoder layer (the first entry after layer 1; layers past the list
            keep all). Counts larger than a batch's length keep the whole batch.
        weight: weight of the eliminating pass's distillation loss.
        temperature: its softening temperature.
    """

    keep: list[int]
    weight: float = 1.0
    temperature: float = 2.0

    stage: ClassVar[Stage] = Stage.STRUCTURE  # early exit (a later stage) serves what it made

    def __post_init__(self) -> None:
        if not self.keep or any(count < 1 for count in self.keep):
            raise DistillError(f"WordVectorElimination.keep needs a count of at least 1 per layer; got {self.keep}")

    @override
    def configure_student(self, student: Student, teacher: Any, data: Any) -> None:
        task = getattr(data, "task", None)
        if task is not None and (task.per_token or task.output != "softmax"):
            raise DistillError(
                f"WordVectorElimination answers from [CLS] after dropping word vectors, a softmax over classes; task "
                f"{task.name} has {'per-token' if task.per_token else task.output} outputs: drop "
                f"WordVectorElimination for this task"
            )
        model, architecture = hf_model(student, self.name)
        check_family(architecture)
        if len(self.keep) > len(architecture.layers(model)):
            raise DistillError(
                f"WordVectorElimination.keep has {len(self.keep)} counts for {len(architecture.layers(model))} layers"
            )
        attach(model, self.keep)  # idempotent; kept with the model it hooks

    @override
    def loss_terms(self, student: Student) -> list[LossTerm]:
        return [EliminatedLogitsKD(student, self.temperature, self.weight)]

    @override
    def served_logits(self, student: Student, batch: Mapping[str, Tensor]) -> Tensor:
        return layerwise(student.model, batch)

    @override
    def structure(self, student: Student) -> dict[str, Any] | None:
        return {"keep": self.keep}

    @override
    def export_extras(self, student: Student, directory: Path) -> None:
        (directory / SETTINGS).write_text(json.dumps({"keep": self.keep}, indent=2))


@hookimpl
def distill_register_compression() -> list[type]:
    return [WordVectorElimination]


class EliminatingExport(ExportFormat):
    """An export trained with elimination, served layer by layer. Asked after the other formats, so one that also
    runs layer by layer (early exit) serves it with its own exits."""

    marker: ClassVar[str] = SETTINGS

    structures: ClassVar[frozenset[str]] = frozenset({"WordVectorElimination"})
    order: ClassVar[int] = 1

    @classmethod
    @override
    def load(cls, folder: Path, trust_remote_code: bool) -> tuple[nn.Module, PreTrainedTokenizerBase]:
        return EliminatingModel(
            load_transformer(folder, trust_remote_code=trust_remote_code)
        ), AutoTokenizer.from_pretrained(folder)

    @classmethod
    @override
    def rebuild(cls, model: nn.Module, structure: str, settings: dict[str, Any]) -> None:
        attach(model, settings["keep"])

    @classmethod
    @override
    def bench_variants(cls, name: str, model: nn.Module) -> list[tuple[str, nn.Module]]:
        """The same weights without elimination: the speed-up elimination itself buys."""
        return [(f"{name}@all_words", model.model)] if isinstance(model, EliminatingModel) else []

    @classmethod
    @override
    def onnx_network(cls, model: nn.Module) -> nn.Module | None:
        """The graph holds the full-length classifier: the kept count depends on each batch's length."""
        return model.model if isinstance(model, EliminatingModel) else None

    @classmethod
    @override
    def report_sections(cls, model: nn.Module) -> list[dict[str, Any]]:
        if not isinstance(model, EliminatingModel):
            return []
        data = {f"after layer {i}": count for i, count in enumerate(model.keep, start=1)}
        return [{"title": "Word vectors kept", "data": data}]


@hookimpl
def distill_register_export_formats() -> list[type]:
    return [EliminatingExport]
