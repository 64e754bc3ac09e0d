"""Early exit (DeeBERT, Xin et al., 2020; PABEE, Zhou et al., 2020) at any batch size.

A ramp classifier after every encoder layer but the last is trained with the student, distilling from the
teacher (or the student's final classifier, or the labels). At inference a row leaves at the first ramp whose
prediction is confident (entropy below a threshold) or stable (the same class `patience` ramps in a row);
finished rows leave the batch and the rest carry on, so batches run as fast as their slowest rows need.
Validation scores the student with its exits, so the checkpoint kept is the best one as served, never one
whose ramps have not learned yet.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import Tensor, nn
from transformers import AutoTokenizer, PreTrainedTokenizerBase
from typing_extensions import override

from distill import (
    Compression,
    DistillError,
    ExportFormat,
    Features,
    LossTerm,
    Stage,
    Student,
    architecture_of,
    between_layers,
    hf_model,
    hookimpl,
    load_transformer,
)

SETTINGS = "distill_early_exit.json"
RAMPS = "exit_ramps.safetensors"
Criterion = Literal["entropy", "patience"]
Pooling = Literal["cls", "mean"]


class Ramp(nn.Module):
    """DeeBERT's off-ramp: a pooler (dense + tanh) and a classifier, over [CLS] or over the mean of the real
    tokens. After a shallow layer [CLS] has gathered little of the sentence yet; the mean reads all of it."""

    def __init__(self, hidden: int, num_labels: int, pooling: Pooling = "cls") -> None:
        super().__init__()
        self.pooling = pooling
        self.pooler = nn.Linear(hidden, hidden)
        self.classifier = nn.Linear(hidden, num_labels)

    def forward(self, hidden_states: Tensor, mask: Tensor) -> Tensor:
        if self.pooling == "mean":  # padding excluded, so a row's answer does not depend on its batch mates
            weights = mask.unsqueeze(-1).to(hidden_states.dtype)
            pooled = (hidden_states * weights).sum(1) / weights.sum(1).clamp(min=1.0)
        else:
            pooled = hidden_states[:, 0]
        return self.classifier(torch.tanh(self.pooler(pooled)))


class RampLoss(LossTerm):
    """Mean over ramps of T²·KL(target ‖ ramp) at temperature T, or cross-entropy with the labels."""

    name = "exit_ramps"
    needs = frozenset({"hidden_states"})

    def __init__(self, ramps: nn.ModuleList, target: str, temperature: float, weight: float) -> None:
        super().__init__(weight)
        self.ramps = (ramps,)  # a tuple, so the ramps stay parameters of the student only
        self.target, self.temperature = target, temperature
        self.teacher_needs = frozenset({"logits"}) if target == "teacher" else frozenset()

    def forward(self, student: Features, teacher: Features | None, batch: Mapping[str, Tensor]) -> Tensor:
        logits = _ramp_logits(*self.ramps, student, batch["attention_mask"])
        if self.target == "labels":
            return sum(F.cross_entropy(ramp, batch["labels"], ignore_index=-100) for ramp in logits) / len(logits)
        reference = (teacher.logits if self.target == "teacher" else student.logits).detach()
        t = self.temperature
        p_target = F.softmax(reference / t, -1)
        kl = [F.kl_div(F.log_softmax(ramp / t, -1), p_target, reduction="batchmean") for ramp in logits]
        return sum(kl) * t * t / len(kl)


def _ramp_logits(ramps: nn.ModuleList, student: Features, mask: Tensor) -> list[Tensor]:
    """Each ramp's logits on the layer it follows (every encoder layer but the last)."""
    return [ramp(hidden, mask) for ramp, hidden in zip(ramps, student.hidden_states[1:-1], strict=True)]


def _entropy(logits: Tensor) -> Tensor:
    log_p = F.log_softmax(logits, -1)
    return -(log_p.exp() * log_p).sum(-1)


@dataclass(frozen=True)
class ExitRule:
    """When a row leaves: its ramp's entropy is below `threshold`, or `patience` ramps in a row agreed."""

    criterion: Criterion
    threshold: float
    patience: int

    def leaving(self, logits: Tensor, streak: Tensor, previous: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """The rows that leave at this ramp, and the agreement streak and predictions the next ramp compares to."""
        if self.criterion == "entropy":
            return _entropy(logits) < self.threshold, streak, previous
        prediction = logits.argmax(-1)
        streak = torch.where(prediction == previous, streak + 1, torch.zeros_like(streak))
        return streak >= self.patience, streak, prediction

    def answers(self, ramp_logits: list[Tensor], final: Tensor) -> Tensor:
        """What EarlyExitModel answers for each row, from a full-depth pass that ran every ramp: rows are
        independent, so this equals letting them leave a shrinking batch, at the cost of the full depth."""
        result = final.clone()
        waiting = torch.ones(len(final), dtype=torch.bool, device=final.device)
        streak = torch.zeros(len(final), dtype=torch.long, device=final.device)
        previous = torch.full((len(final),), -1, device=final.device)
        for logits in ramp_logits:
            done, streak, previous = self.leaving(logits, streak, previous)
            leave = done & waiting
            result[leave] = logits[leave].to(result.dtype)
            waiting &= ~done
        return result


class EarlyExitModel(nn.Module):
    """A Transformer classifier of any family with an adapter, with ramps that let each row leave as soon as its
    criterion is met. The adapter runs the model layer by layer on the rows still in the batch, applying after
    each layer the transforms other methods attached (word-vector elimination).

    `model(input_ids=..., attention_mask=...)` returns logits (B, C); `exits` counts the rows that left at each
    layer since the last `reset_exits()`.
    """

    def __init__(
        self, model: nn.Module, ramps: nn.ModuleList, criterion: Criterion, threshold: float, patience: int
    ) -> None:
        super().__init__()
        self.model, self.ramps = model, ramps
        self.architecture = architecture_of(model)
        self.criterion, self.threshold, self.patience = criterion, threshold, patience
        self.reset_exits()

    def reset_exits(self) -> None:
        self.exits = torch.zeros(len(self.architecture.layers(self.model)), dtype=torch.long)

    def forward(self, input_ids: Tensor, attention_mask: Tensor, token_type_ids: Tensor | None = None) -> Tensor:
        adapter, model = self.architecture, self.model
        batch = {"input_ids": input_ids, "attention_mask": attention_mask}
        if token_type_ids is not None:
            batch["token_type_ids"] = token_type_ids
        hidden = adapter.embed(model, batch)  # (B, T, H)
        rows = torch.arange(len(input_ids))
        mask = attention_mask
        result = torch.empty(len(input_ids), model.config.num_labels, dtype=hidden.dtype)
        streak = torch.zeros(len(input_ids), dtype=torch.long)
        previous = torch.full((len(input_ids),), -1)
        depth_total = len(adapter.layers(model))
        rule = ExitRule(self.criterion, self.threshold, self.patience)
        transforms = between_layers(model)
        for depth in range(depth_total):
            hidden = adapter.run_layer(model, depth, hidden, mask)
            for transform in transforms:
                hidden, mask = transform(depth, hidden, mask)
            if depth == depth_total - 1:
                result[rows] = adapter.classify(model, hidden, mask)
                self.exits[depth] += len(rows)
                break
            logits = self.ramps[depth](hidden, mask)
            done, streak, previous = rule.leaving(logits, streak, previous)
            result[rows[done]] = logits[done]
            self.exits[depth] += int(done.sum())
            keep = ~done
            if not keep.any():
                break
            hidden, mask, rows, streak, previous = hidden[keep], mask[keep], rows[keep], streak[keep], previous[keep]
        return result


@dataclass(eq=False)
class EarlyExit(Compression):
    """Exit ramps after every encoder layer but the last, trained jointly, used at inference.

    Attributes:
        criterion: "entropy" (DeeBERT) or "patience" (PABEE).
        threshold: entropy in nats below which a row exits (entropy criterion).
        patience: ramps in a row that must agree before a row exits (patience criterion).
        target: what ramps learn from: "teacher" logits, the student's "final" classifier, or the gold "labels".
        temperature: softening temperature of the ramp distillation.
        pooling: what a ramp reads: the "cls" vector (DeeBERT) or the "mean" of the real tokens.
        weight: weight of the ramp loss in the objective.
        ramp_learning_rate: the ramps' own learning rate; they start untrained, so the fine-tuning rate of a
            trained student leaves them near their initialisation. None: the run's learning rate.
        settle: fraction of training before which no checkpoint is kept. Untrained ramps are unsure, so no row
            leaves and the student scores as if it had no exits: without this the best checkpoint can be one
            whose ramps have not learned.
    """

    criterion: Criterion = "entropy"
    threshold: float = 0.3
    patience: int = 2
    target: Literal["teacher", "final", "labels"] = "teacher"
    temperature: float = 2.0
    pooling: Pooling = "cls"
    weight: float = 1.0
    ramp_learning_rate: float | None = 1.0e-3
    settle: float = 0.5

    stage: ClassVar[Stage] = Stage.EXITS
    requires: ClassVar[frozenset[str]] = frozenset({"hidden_states"})

    def __post_init__(self) -> None:
        if not 0.0 <= self.settle < 1.0:
            raise DistillError(f"EarlyExit needs 0 <= settle < 1, got {self.settle}")
        if self.pooling not in ("cls", "mean"):
            raise DistillError(f"EarlyExit pooling must be 'cls' or 'mean', got {self.pooling!r}")
        self.settled_at = self.settle

    @override
    def configure_student(self, student: Student, teacher: Any, data: Any) -> None:
        task = getattr(data, "task", None)
        if task is not None and (task.output != "softmax" or task.per_token):
            kind = "per-token" if task.per_token else task.output
            raise DistillError(
                f"EarlyExit decides per example by the confidence of a softmax over classes; task {task.name} has "
                f"{kind} outputs: drop EarlyExit from model.compression for this task"
            )
        model, architecture = hf_model(student, self.name)
        if not hasattr(student, "exit_ramps"):
            hidden, labels = model.config.hidden_size, model.config.num_labels
            ramps = (Ramp(hidden, labels, self.pooling) for _ in architecture.layers(model)[:-1])
            student.exit_ramps = nn.ModuleList(ramps)

    @override
    def loss_terms(self, student: Student) -> list[LossTerm]:
        return [RampLoss(student.exit_ramps, self.target, self.temperature, self.weight)]

    @override
    def learning_rates(self, student: Student) -> dict[str, float]:
        return {} if self.ramp_learning_rate is None else {"exit_ramps": self.ramp_learning_rate}

    @override
    def served_logits(self, student: Student, batch: Mapping[str, Tensor]) -> Tensor:
        if between_layers(student.model):  # another method reshapes the sequence between layers: run as served
            served = EarlyExitModel(student.model, student.exit_ramps, self.criterion, self.threshold, self.patience)
            names = ("input_ids", "attention_mask", "token_type_ids")
            return served(**{k: v for k, v in batch.items() if k in names})
        features = student(batch, frozenset({"logits", "hidden_states"}))
        rule = ExitRule(self.criterion, self.threshold, self.patience)
        ramp_logits = _ramp_logits(student.exit_ramps, features, batch["attention_mask"])
        return rule.answers(ramp_logits, features.logits)

    @override
    def export_extras(self, student: Student, directory: Path) -> None:
        save_file({k: v.contiguous() for k, v in student.exit_ramps.state_dict().items()}, str(directory / RAMPS))
        settings = {
            "criterion": self.criterion,
            "threshold": self.threshold,
            "patience": self.patience,
            "ramps": len(student.exit_ramps),
            "pooling": self.pooling,
        }
        (directory / SETTINGS).write_text(json.dumps(settings, indent=2))


@hookimpl
def distill_register_compression() -> list[type]:
    return [EarlyExit]


class ExitingExport(ExportFormat):
    """An export with exit ramps (their weights and settings beside the model), served layer by layer."""

    marker: ClassVar[str] = SETTINGS

    @classmethod
    @override
    def load(cls, folder: Path, trust_remote_code: bool) -> tuple[nn.Module, PreTrainedTokenizerBase]:
        settings = json.loads((folder / SETTINGS).read_text())
        model = load_transformer(folder, trust_remote_code=trust_remote_code)
        pooling = settings.get("pooling", "cls")  # exports from before ramps could pool read [CLS]
        hidden, labels = model.config.hidden_size, model.config.num_labels
        ramps = nn.ModuleList(Ramp(hidden, labels, pooling) for _ in range(settings["ramps"]))
        ramps.load_state_dict(load_file(str(folder / RAMPS)))
        exiting = EarlyExitModel(model, ramps, settings["criterion"], settings["threshold"], settings["patience"])
        return exiting, AutoTokenizer.from_pretrained(folder)

    @classmethod
    @override
    def bench_variants(cls, name: str, model: nn.Module) -> list[tuple[str, nn.Module]]:
        """The speed/accuracy curve: the same weights at several exit thresholds (or patiences)."""
        if not isinstance(model, EarlyExitModel):
            return []
        variants = []
        if model.criterion == "entropy":  # threshold 0: the same weights run to full depth, for the speedup
            settings = [("threshold", t) for t in (0.0, 0.05, 0.1, 0.2, 0.25, 0.3, 0.4, 0.6)]
        else:
            settings = [("patience", p) for p in (1, 2, 3, len(model.ramps) + 1)]
        for attribute, value in settings:
            variant = copy.copy(model)  # shares the weights
            setattr(variant, attribute, value)
            variant.reset_exits()
            variants.append((f"{name}@{attribute}={value}", variant))
        return variants

    @classmethod
    @override
    def onnx_network(cls, model: nn.Module) -> nn.Module | None:
        """A static graph cannot let rows leave: ONNX holds the full-depth classifier, without exits."""
        return model.model if isinstance(model, EarlyExitModel) else None

    @classmethod
    @override
    def report_sections(cls, model: nn.Module) -> list[dict[str, Any]]:
        if not isinstance(model, EarlyExitModel) or not model.exits.sum():
            return []
        total = int(model.exits.sum())
        layers = torch.arange(1, len(model.exits) + 1, dtype=torch.float)
        data = {
            f"exited after layer {i}": f"{int(n)} ({100 * int(n) / total:.1f}%)"
            for i, n in enumerate(model.exits, start=1)
        }
        data["mean exit layer"] = round(float((model.exits * layers).sum()) / total, 3)
        return [{"title": f"Early exit ({model.criterion}, threshold {model.threshold})", "data": data}]


@hookimpl
def distill_register_export_formats() -> list[type]:
    return [ExitingExport]
