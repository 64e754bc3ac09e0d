"""`model.teacher` read into a teacher: a model folder or hub id, a kind a plugin claims (a file of soft labels), a
`class_path` spec of a registered teacher kind, or a list of teachers combined as one (`Ensemble`)."""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from distill.errors import DistillError
from distill.features import Anatomy, Features
from distill.hf import takes_token_types
from distill.plugin_manager import registered
from distill.task import Task
from distill.teacher import BaseTeacher, Teacher

Combine = Literal["probabilities", "logits"]
TeacherSpec = str | dict[str, Any] | list[Any]


def build_teacher(spec: TeacherSpec, task: Task, trust_remote_code: bool = False) -> BaseTeacher:
    """The teacher `model.teacher` names.

    - a string: a file or folder a registered teacher kind claims (`BaseTeacher.claims`), else a Hugging Face
      model folder or hub id;
    - `{class_path: KIND, init_args: {...}}`: a registered teacher kind (`distill plugins` lists them);
    - a list: several teachers as one `Ensemble`, each a string, a spec, or `{teacher: ..., weight: w}`.

    Raises:
        DistillError: an unknown kind, or a teacher that does not fit the task.
    """
    if isinstance(spec, list):
        return Ensemble(spec, task=task, trust_remote_code=trust_remote_code)
    kinds = {cls.__name__: (cls, "distill") for cls in (Teacher, Ensemble)} | registered("teachers")
    if isinstance(spec, dict):
        path = spec.get("class_path", "")
        cls = next((c for name, (c, _) in kinds.items() if path in (name, f"{c.__module__}.{c.__qualname__}")), None)
        cls = cls or _imported(path)
        if cls is None:
            raise DistillError(
                f"unknown teacher kind {path!r} in model.teacher: installed kinds are {', '.join(sorted(kinds))}, "
                f"or give a model folder or hub id"
            )
        return cls(**spec.get("init_args", {}), task=task, trust_remote_code=trust_remote_code)
    claimed = [cls for cls, _ in kinds.values() if cls.claims(spec)]
    if claimed:
        return claimed[0](spec, task=task, trust_remote_code=trust_remote_code)
    return Teacher(spec, task, trust_remote_code)


def _imported(path: str) -> type[BaseTeacher] | None:
    """A teacher kind by its full import path, registered or not (handy while writing a plugin)."""
    module, _, name = path.rpartition(".")
    try:
        found = getattr(importlib.import_module(module), name) if module else None
    except (ImportError, AttributeError):
        return None
    return found if isinstance(found, type) and issubclass(found, BaseTeacher) else None


class Ensemble(BaseTeacher):
    """Several teachers as one: each answers in the task's label order (checked by name as every teacher is), and
    their answers are combined per example, with weights:

    - `probabilities` (the default): the weighted mean of their probabilities (softmax, or sigmoid per label), as
      log-probabilities (or logits of the mean, per label);
    - `logits`: the weighted mean of their logits.

    A regression score is the weighted mean either way. The members must share a tokenizer where they have one;
    students copy the layers of the first member that has a model.
    """

    def __init__(
        self,
        teachers: Sequence[Any],
        weights: Sequence[float] | None = None,
        combine: Combine = "probabilities",
        *,
        task: Task,
        trust_remote_code: bool = False,
    ) -> None:
        """Args:
        teachers: each a model folder or hub id, a soft-label file, a `class_path` spec, or `{teacher: ...,
            weight: w}`.
        weights: one per teacher (a `weight:` given beside a teacher counts too); equal when None.
        combine: "probabilities" or "logits", as above.
        task: the run's task; trust_remote_code: as for any teacher.
        """
        super().__init__()
        if len(teachers) < 2:
            raise DistillError(f"model.teacher lists {len(teachers)} teacher(s): an ensemble needs two or more")
        if combine not in ("probabilities", "logits"):
            raise DistillError(f"ensemble combine {combine!r} is unknown: use probabilities or logits")
        if task.output == "embedding":
            raise DistillError("an ensemble combines class scores, and task outputs embeddings: give one teacher")
        given = [item.get("weight") if isinstance(item, dict) and "teacher" in item else None for item in teachers]
        weights = list(weights) if weights is not None else [1.0 if w is None else w for w in given]
        if len(weights) != len(teachers) or any(not w > 0 for w in weights):
            raise DistillError(f"ensemble weights {weights} must be one positive number per teacher ({len(teachers)})")
        specs = [item["teacher"] if isinstance(item, dict) and "teacher" in item else item for item in teachers]
        self.teachers = nn.ModuleList(build_teacher(spec, task, trust_remote_code) for spec in specs)
        self.register_buffer("weights", torch.tensor(weights) / sum(weights), persistent=False)
        self.combine, self.task = combine, task
        self.source = " + ".join(t.source for t in self.teachers)
        encoders = [t for t in self.teachers if t.tokenizer is not None]
        _check_one_vocabulary(encoders)
        self.model = next((t.model for t in encoders if t.model is not None), None)
        self.tokenizer = encoders[0].tokenizer if encoders else None
        widths = {t.anatomy.num_labels for t in self.teachers}
        if len(widths) > 1:
            raise DistillError(f"the ensemble's teachers output {sorted(widths)} values each: they must agree")
        self.anatomy = Anatomy(family="ensemble", provides=frozenset({"logits"}), num_labels=widths.pop())
        self.cacheable = all(t.cacheable for t in self.teachers)
        self.labels_new_rows = all(t.labels_new_rows for t in self.teachers)

    def prepare(self, data: Any) -> None:
        for teacher in self.teachers:
            teacher.prepare(data)

    @torch.no_grad()
    def forward(self, batch: Mapping[str, Tensor], needs: frozenset[str]) -> Features:
        answers = [teacher(batch, frozenset({"logits"})).logits for teacher in self.teachers]
        return Features(logits=self.combined(answers), attention_mask=batch["attention_mask"])

    @torch.no_grad()
    def answer(self, batch: Mapping[str, Tensor]) -> Tensor | None:
        answers = [teacher.answer(batch) for teacher in self.teachers]
        return None if any(a is None for a in answers) else self.combined(answers)

    def combined(self, answers: list[Tensor]) -> Tensor:
        """The members' outputs for the same rows, combined as `combine` says."""
        stacked = torch.stack([a.float() for a in answers])
        weights = self.weights.to(stacked.device).view(-1, *([1] * (stacked.dim() - 1)))
        if self.combine == "logits" or self.task.output == "score":
            return (weights * stacked).sum(0)
        if self.task.output == "sigmoid":
            return torch.logit((weights * torch.sigmoid(stacked)).sum(0), eps=1e-7)
        return torch.log((weights * F.softmax(stacked, dim=-1)).sum(0).clamp(min=1e-12))

    @property
    def served(self) -> nn.Module | None:
        served = [teacher.served for teacher in self.teachers]
        return None if any(s is None for s in served) else ServedEnsemble(served, self)

    def members(self) -> dict[str, BaseTeacher]:
        return {f"teacher-{i + 1}": teacher for i, teacher in enumerate(self.teachers)}

    def fingerprint(self) -> str:
        return "+".join([*(t.fingerprint() for t in self.teachers), self.combine, str(self.weights.tolist())])


class ServedEnsemble(nn.Module):
    """The ensemble as the report card calls a model: encoded inputs in, the combined answer out."""

    def __init__(self, served: list[nn.Module], ensemble: Ensemble) -> None:
        super().__init__()
        self.members, self.ensemble = nn.ModuleList(served), ensemble
        self.reads_token_types = any(takes_token_types(m) for m in served)

    def forward(self, input_ids: Tensor, attention_mask: Tensor, token_type_ids: Tensor | None = None) -> Tensor:
        from distill.delivery.batching import logits_of

        batch = {"input_ids": input_ids, "attention_mask": attention_mask}
        if token_type_ids is not None:
            batch["token_type_ids"] = token_type_ids
        return self.ensemble.combined([logits_of(member, batch) for member in self.members])


def _check_one_vocabulary(encoders: list[BaseTeacher]) -> None:
    """The data is tokenised once, so every member that reads tokens must read the same ones.

    Raises:
        DistillError: two members' tokenizers differ.
    """
    from distill.training.data import tokenizer_fingerprint

    prints = {tokenizer_fingerprint(t.tokenizer): t.source for t in encoders}
    if len(prints) > 1:
        raise DistillError(
            f"the ensemble's teachers {sorted(prints.values())} tokenise text differently; the data is tokenised "
            f"once, so combine teachers that share a tokenizer"
        )
