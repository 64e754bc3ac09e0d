"""Distillation under 16-mixed and bf16-mixed: every registered loss runs in float32 inside autocast, so large
logits at a low temperature, where float16 KD runs elsewhere go NaN, give the float32 answer."""

from __future__ import annotations

import dataclasses
import inspect

import pytest
import torch

from distill import FEATURE_NAMES, GROUP, Features, Teacher
from distill.loss import in_float32
from distill.plugins.tasks import SentenceEmbedding
from distill.registry import registered, task_from_spec
from distill.students.encoder import BertStudent
from tests.conftest import SST2

# every loss a Transformer student can feed (ArchitectureCost reads a search space's own cost, no model feature)
LOSSES = sorted(name for name, (cls, _) in registered("losses").items() if cls.needs <= FEATURE_NAMES)
TEXTS = [line.split("\t")[0] for line in (SST2 / "dev.tsv").read_text().splitlines()[1:9]]


@pytest.fixture(scope="module")
def models(tiny_teacher):
    teacher = Teacher(str(tiny_teacher))
    torch.manual_seed(0)
    student = BertStudent(num_layers=2, init_from_teacher=[0, 1]).build(teacher, task_from_spec("sst2"))
    encoded = dict(teacher.tokenizer(TEXTS, padding=True, return_tensors="pt"))
    batch = {**encoded, "labels": torch.tensor([0, 1] * 4), "idx": torch.arange(len(TEXTS))}
    return teacher, student, batch


def amplified(features: Features, dtype: torch.dtype) -> Features:
    """Logits 60 times larger (a confident teacher) and hidden states 300 times larger (squares past float16's
    65,504), every float tensor rounded to `dtype` as autocast would hand it over."""
    scaled = dataclasses.replace(
        features,
        logits=features.logits * 60,
        hidden_states=None if features.hidden_states is None else tuple(h * 300 for h in features.hidden_states),
    )
    fields = {f.name: getattr(scaled, f.name) for f in dataclasses.fields(scaled)}
    rounded = {
        name: value.to(dtype)
        if isinstance(value, torch.Tensor) and value.is_floating_point()
        else tuple(v.to(dtype) for v in value)
        if isinstance(value, tuple)
        else value
        for name, value in fields.items()
    }
    return dataclasses.replace(scaled, **rounded)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["16-mixed", "bf16-mixed"])
@pytest.mark.parametrize("loss_name", LOSSES)
def test_every_loss_under_autocast_is_finite_and_matches_float32(loss_name, dtype, models):
    assert len(LOSSES) >= 6  # the built-ins: labels, logits, hidden states, attention maps, values, pooled
    teacher, student, batch = models
    cls = registered("losses")[loss_name][0]
    low = {"temperature": 0.5} if "temperature" in inspect.signature(cls).parameters else {}
    term = cls(**low)
    term.task = task_from_spec("sst2")
    if term.name == "margin_mse":  # it reads (query, positive, negative) rows: two of them, and two texts alone
        term.task = SentenceEmbedding(group_columns=["query", "positive", "negative"], width=2)
        batch = {**batch, GROUP: torch.tensor([0, 0, 0, 1, 1, 1, -1, -1])}
    term.setup(student=student.anatomy, teacher=teacher.anatomy)
    with torch.no_grad():
        own = student(batch, frozenset({"logits"}) | term.needs)
        taught = teacher(batch, term.from_teacher) if term.from_teacher else None
    mine = amplified(own, dtype)
    theirs = None if taught is None else amplified(taught, dtype)
    reference = term(in_float32(mine), None if theirs is None else in_float32(theirs), batch)
    with torch.autocast("cpu", dtype=dtype):
        mixed = term(mine, theirs, batch)
    assert mixed.dtype == torch.float32 and torch.isfinite(mixed), f"{loss_name}: {mixed}"
    torch.testing.assert_close(mixed, reference, rtol=1e-5, atol=1e-5)  # the same maths on the same inputs
    exact = term(amplified(own, torch.float32), None if taught is None else amplified(taught, torch.float32), batch)
    torch.testing.assert_close(mixed, exact, rtol=0.05, atol=1e-3)  # only the inputs' rounding differs
