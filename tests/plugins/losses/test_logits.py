from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from distill.errors import DistillError
from distill.features import Anatomy, Features
from distill.plugins.losses import HardLabelCE, LogitsKD
from distill.plugins.tasks import MultiLabelClassification
from distill.registry import task_from_spec
from distill.schedule import Ramp


def features(logits: torch.Tensor) -> Features:
    return Features(logits=logits, attention_mask=torch.ones(len(logits), 4))


def test_kl_is_zero_for_equal_logits_and_positive_otherwise():
    torch.manual_seed(0)
    teacher = torch.randn(8, 3)
    loss = LogitsKD(temperature=2.0)
    assert loss(features(teacher.clone()), features(teacher), {}).item() == pytest.approx(0.0, abs=1e-6)
    student = torch.randn(8, 3, requires_grad=True)
    value = loss(features(student), features(teacher), {})
    value.backward()
    assert value.item() > 0 and student.grad.abs().sum() > 0


def test_kl_matches_hintons_formula_with_t_squared():
    torch.manual_seed(1)
    s, t, temperature = torch.randn(5, 2), torch.randn(5, 2), 3.0
    p_t = F.softmax(t / temperature, -1)
    expected = (p_t * (p_t.log() - F.log_softmax(s / temperature, -1))).sum(-1).mean() * temperature**2
    assert LogitsKD(temperature=temperature)(features(s), features(t), {}).item() == pytest.approx(expected.item())


def test_soft_ce_has_the_same_gradient_as_kl():
    torch.manual_seed(2)
    teacher = torch.randn(6, 4)
    grads = []
    for kind in ("kl", "soft_ce"):
        student = torch.randn(6, 4, generator=torch.Generator().manual_seed(3), requires_grad=True)
        LogitsKD(temperature=2.0, kind=kind)(features(student), features(teacher), {}).backward()
        grads.append(student.grad)
    torch.testing.assert_close(grads[0], grads[1])


def test_mse_and_temperature_schedule():
    s, t = torch.zeros(2, 2), torch.ones(2, 2)
    assert LogitsKD(kind="mse")(features(s), features(t), {}).item() == pytest.approx(1.0)
    annealed = LogitsKD(temperature_schedule=Ramp(start=4.0, end=1.0))
    annealed.progress = 0.5
    assert annealed.current_temperature() == pytest.approx(2.5)


def test_probability_losses_are_refused_for_scores_and_auto_picks_by_the_task():
    regression, multi_label = task_from_spec("stsb"), MultiLabelClassification(label_columns=["a", "b"])
    refused = LogitsKD(kind="kl")
    refused.task = regression
    with pytest.raises(DistillError, match="reads softmax outputs, but this task's outputs are score: use kind: mse"):
        refused.setup(Anatomy("bert", frozenset({"logits"}), num_labels=1), None)
    for task, kind in ((regression, "mse"), (multi_label, "bce"), (task_from_spec("sst2"), "kl")):
        term = LogitsKD()
        term.task = task
        assert term.resolved_kind() == kind
    with pytest.raises(DistillError, match="temperature must be positive"):
        LogitsKD(temperature=0.0)


def hard_labels(task) -> HardLabelCE:
    term = HardLabelCE()
    term.task = task  # as the module sets it before set-up
    return term


def test_hard_labels_are_the_tasks_own_loss():
    logits = torch.tensor([[2.0, 0.0], [0.0, 2.0]])
    labels = torch.tensor([0, 1])
    expected = F.cross_entropy(logits, labels).item()
    assert hard_labels(task_from_spec("sst2"))(features(logits), None, {"labels": labels}).item() == pytest.approx(
        expected
    )
    scores = {"labels": torch.tensor([1.0, 1.0])}
    assert hard_labels(task_from_spec("stsb"))(features(torch.tensor([[1.0], [3.0]])), None, scores).item() == 2.0
    flags = torch.tensor([[1, 0], [0, 1]])
    expected = F.binary_cross_entropy_with_logits(logits, flags.float()).item()
    multi_label = hard_labels(MultiLabelClassification(label_columns=["a", "b"]))
    assert multi_label(features(logits), None, {"labels": flags}).item() == pytest.approx(expected)


def test_weight_schedule_warms_up():
    term = HardLabelCE(weight=2.0, weight_schedule=Ramp(start=0.0, end=1.0, until=0.5))
    term.progress = 0.25
    assert term.current_weight() == pytest.approx(1.0)
    term.progress = 0.9
    assert term.current_weight() == pytest.approx(2.0)
    with pytest.raises(ValueError, match="begin < until"):
        Ramp(start=0.0, end=1.0, begin=0.5, until=0.5)
