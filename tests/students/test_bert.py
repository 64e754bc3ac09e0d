from __future__ import annotations

import pytest
import torch

from distill.errors import DistillError
from distill.registry import task_from_spec
from distill.students.encoder import BertStudent
from distill.teacher import Teacher

SST2_TASK = task_from_spec("sst2")


@pytest.fixture(scope="module")
def teacher(tiny_teacher) -> Teacher:
    return Teacher(str(tiny_teacher))


def batch(teacher: Teacher, texts: list[str]) -> dict[str, torch.Tensor]:
    return dict(teacher.tokenizer(texts, padding=True, return_tensors="pt"))


def test_layers_copied_from_the_teacher_reproduce_its_outputs(teacher):
    # Student layers [0, 1] copied from a 2-layer teacher are the teacher itself.
    student = BertStudent(num_layers=2, init_from_teacher=[0, 1]).build(teacher, SST2_TASK).eval()
    inputs = batch(teacher, ["a gripping , funny film", "dull"])
    needs = frozenset({"logits", "hidden_states"})
    torch.testing.assert_close(student(inputs, needs).logits, teacher(inputs, needs).logits)


def test_a_layer_subset_keeps_the_chosen_teacher_layer(teacher):
    student = BertStudent(num_layers=1, init_from_teacher=[1]).build(teacher, SST2_TASK)
    copied = student.model.bert.encoder.layer[0].state_dict()
    for name, value in teacher.model.bert.encoder.layer[1].state_dict().items():
        torch.testing.assert_close(copied[name], value)
    assert student.anatomy.num_layers == 1 and student.anatomy.hidden_size == 32


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (BertStudent(hidden_size=30, num_heads=4), "hidden_size 30 is not divisible by num_heads 4"),
        (BertStudent(num_layers=2, init_from_teacher=[0, 5]), r"layers \[5\] are out of range"),
        (BertStudent(num_layers=2, init_from_teacher=[0]), "exactly one teacher layer per student layer"),
        (BertStudent(num_layers=1, hidden_size=16, num_heads=4, init_from_teacher=[0]), "must equal the teacher's"),
    ],
)
def test_unbuildable_students_say_why(teacher, config, message):
    with pytest.raises(DistillError, match=message):
        config.build(teacher, SST2_TASK)


def test_a_narrower_student_builds_without_initialisation(teacher):
    student = BertStudent(num_layers=2, hidden_size=16, num_heads=2, intermediate_size=32).build(teacher, SST2_TASK)
    out = student(batch(teacher, ["fine"]), frozenset({"logits", "attentions", "values", "hidden_states"}))
    assert out.logits.shape == (1, 2)
    assert len(out.hidden_states) == 3 and out.hidden_states[0].shape[-1] == 16
    assert out.attention_scores(2).shape[:2] == (1, 2) and len(out.values) == 2


def test_narrow_student_embeddings_start_from_the_teachers_principal_directions(teacher):
    student = BertStudent(num_layers=1, hidden_size=8, num_heads=2, init_embeddings="teacher").build(teacher, SST2_TASK)
    words = teacher.model.bert.embeddings.word_embeddings.weight
    reduced = student.model.bert.embeddings.word_embeddings.weight
    assert reduced.shape == (words.shape[0], 8)
    # PCA keeps the directions of largest variance: the reduced rows keep most of the spread of the originals.
    centered = words - words.mean(0)
    kept = (reduced - reduced.mean(0)).pow(2).sum() / centered.pow(2).sum()
    assert 8 / 32 < kept.item() <= 1.0
    wide = BertStudent(num_layers=1, init_embeddings="teacher").build(teacher, SST2_TASK)
    torch.testing.assert_close(wide.model.bert.embeddings.word_embeddings.weight, words)
    with pytest.raises(DistillError, match="cannot reduce 32-wide teacher embeddings to a wider 64"):
        BertStudent(num_layers=1, hidden_size=64, num_heads=2, init_embeddings="teacher").build(teacher, SST2_TASK)
