"""Contract tests over every registered loss, and the intermediate losses' own guarantees."""

from __future__ import annotations

import pytest
import torch

from distill import GROUP
from distill.errors import DistillError
from distill.plugins.losses import AttentionKD, HiddenStatesKD, ValueRelationKD
from distill.plugins.tasks import SentenceEmbedding
from distill.registry import registered, task_from_spec
from distill.students.encoder import BertStudent
from distill.teacher import Teacher

SST2_TASK = task_from_spec("sst2")

ALL_FEATURES = frozenset({"logits", "hidden_states", "attentions", "values", "pooled"})
TEXTS = ["a gripping , funny film", "dull and overlong", "the cast is superb ."]


@pytest.fixture(scope="module")
def teacher(tiny_teacher) -> Teacher:
    return Teacher(str(tiny_teacher))


@pytest.fixture(scope="module")
def batch(teacher):
    encoded = dict(teacher.tokenizer(TEXTS, padding=True, return_tensors="pt"))
    return {**encoded, "labels": torch.tensor([1, 0, 1])}


def copy_of_teacher(teacher):
    return BertStudent(num_layers=2, init_from_teacher=[0, 1], dropout=0.0).build(teacher, SST2_TASK).eval()


def narrow_student(teacher):
    torch.manual_seed(1)
    config = BertStudent(num_layers=1, hidden_size=16, num_heads=2, intermediate_size=32, dropout=0.0)
    return config.build(teacher, SST2_TASK)


def distillation_losses():
    return [cls for cls, _ in registered("losses").values() if cls().from_teacher]


def grouped(loss, batch):
    """A loss that reads (query, positive, negative) rows gets a task with three group columns and the batch's three
    texts as one such row; the others get the batch as it is."""
    if loss.name != "margin_mse":
        return batch
    loss.task = SentenceEmbedding(group_columns=["query", "positive", "negative"], width=2)
    return {**batch, GROUP: torch.tensor([0, 0, 0])}


@pytest.mark.parametrize("loss_class", distillation_losses(), ids=lambda c: c.__name__)
def test_every_registered_loss_is_zero_on_a_copy_and_positive_and_differentiable_otherwise(loss_class, teacher, batch):
    teacher_features = teacher(batch, ALL_FEATURES)
    loss = loss_class()
    batch = grouped(loss, batch)
    same = copy_of_teacher(teacher)
    loss.setup(same.anatomy, teacher.anatomy)
    assert loss(same(batch, ALL_FEATURES), teacher_features, batch).item() == pytest.approx(0.0, abs=1e-5)

    torch.manual_seed(5)
    different = BertStudent(num_layers=2, dropout=0.0).build(teacher, SST2_TASK)
    with torch.no_grad():  # random tiny BERTs all give near-uniform outputs; make this one clearly different
        for parameter in different.parameters():
            parameter.add_(0.5 * torch.randn_like(parameter))
    loss = loss_class()
    grouped(loss, batch)
    loss.setup(different.anatomy, teacher.anatomy)
    value = loss(different(batch, ALL_FEATURES), teacher_features, batch)
    value.backward()
    assert value.item() > 1e-4
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in different.parameters())


def test_projection_bridges_unequal_widths_and_gets_gradients(teacher, batch):
    student = narrow_student(teacher)
    loss = HiddenStatesKD()
    loss.setup(student.anatomy, teacher.anatomy)
    assert loss.pairs == [(0, 0), (1, 2)]
    loss(student(batch, ALL_FEATURES), teacher(batch, ALL_FEATURES), batch).backward()
    for projection in loss.projections:
        assert projection.weight.shape == (32, 16) and projection.weight.grad.abs().sum() > 0
    assert student.model.bert.embeddings.word_embeddings.weight.grad.abs().sum() > 0


@pytest.mark.parametrize(
    "loss",
    [
        HiddenStatesKD(),
        HiddenStatesKD(kind="cosine"),
        AttentionKD(kind="mse"),
        AttentionKD(kind="kl"),
        ValueRelationKD(layers="uniform"),
    ],
    ids=["hidden-mse", "hidden-cosine", "attention-mse", "attention-kl", "value-relation"],
)
def test_padding_is_ignored(loss, teacher, batch):
    """Padding a batch further leaves every real token, and so the loss, unchanged."""
    torch.manual_seed(2)
    student = BertStudent(num_layers=2, dropout=0.0).build(teacher, SST2_TASK).eval()
    loss.setup(student.anatomy, teacher.anatomy)
    longer = teacher.tokenizer(TEXTS, padding="max_length", max_length=24, return_tensors="pt")
    values = []
    for inputs in (batch, dict(longer)):
        with torch.no_grad():
            values.append(loss(student(inputs, ALL_FEATURES), teacher(inputs, ALL_FEATURES), inputs).item())
    assert values[0] == pytest.approx(values[1], rel=1e-4, abs=1e-6)


def test_unequal_head_counts(teacher, batch):
    student = narrow_student(teacher)  # 2 heads against the teacher's 4
    s, t = student(batch, ALL_FEATURES), teacher(batch, ALL_FEATURES)
    relation = ValueRelationKD()
    relation.setup(student.anatomy, teacher.anatomy)
    assert relation.relation_heads == 2 and relation.pairs == [(1, 2)]
    value = relation(s, t, batch)
    value.backward(retain_graph=True)
    assert value.item() > 0
    for heads in ("group", "mean"):
        attention = AttentionKD(heads=heads)
        attention.setup(student.anatomy, teacher.anatomy)
        assert attention(s, t, batch).item() > 0
    with pytest.raises(DistillError, match="student has 2 heads and the teacher 4; set heads: group"):
        AttentionKD().setup(student.anatomy, teacher.anatomy)
    with pytest.raises(DistillError, match="relation_heads 3 must divide both hidden sizes"):
        ValueRelationKD(relation_heads=3).setup(student.anatomy, teacher.anatomy)


def test_value_relation_is_kl_of_softmax_of_scaled_value_products(teacher, batch):
    """Recompute MiniLM's formula by hand for one layer with all heads as relation heads."""
    student = narrow_student(teacher)
    s, t = student(batch, ALL_FEATURES), teacher(batch, ALL_FEATURES)
    loss = ValueRelationKD(relation_heads=2)
    loss.setup(student.anatomy, teacher.anatomy)
    mask = batch["attention_mask"].bool()

    def relations(values):  # (B, h, T, d) -> re-split into 2 heads
        b, h, n, d = values.shape
        v = values.transpose(1, 2).reshape(b, n, h * d).view(b, n, 2, -1).transpose(1, 2)
        scores = v @ v.transpose(-1, -2) / v.shape[-1] ** 0.5
        return torch.log_softmax(scores.masked_fill(~mask[:, None, None, :], float("-inf")), -1)

    rs, rt = relations(s.values[0]), relations(t.values[1])
    kl = torch.where(mask[:, None, None, :], rt.exp() * (rt - rs), 0.0).sum(-1)  # (B, 2, T)
    expected = (kl * mask[:, None, :]).sum() / (mask.sum() * 2)
    assert loss(s, t, batch).item() == pytest.approx(expected.item(), rel=1e-5)
