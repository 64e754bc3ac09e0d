from __future__ import annotations

import pytest

from distill.errors import DistillError
from distill.layers import resolve_layer_map


def test_uniform_maps_every_kth_teacher_layer_and_the_embeddings():
    assert resolve_layer_map("uniform", 3, 6, "x", allow_embeddings=True) == [(0, 0), (1, 2), (2, 4), (3, 6)]
    assert resolve_layer_map("uniform", 3, 6, "x", allow_embeddings=False) == [(1, 2), (2, 4), (3, 6)]
    assert resolve_layer_map("uniform", 4, 6, "x", allow_embeddings=False) == [(1, 2), (2, 3), (3, 5), (4, 6)]


def test_last_and_explicit_pairs():
    assert resolve_layer_map("last", 4, 12, "x", allow_embeddings=False) == [(4, 12)]
    assert resolve_layer_map([[1, 3], [2, 6]], 2, 6, "x", allow_embeddings=False) == [(1, 3), (2, 6)]


@pytest.mark.parametrize(
    ("layers", "message"),
    [
        ([[1, 7]], r"layer pair \[1, 7\] is out of range; the student has layers 1..2 and the teacher 1..6"),
        ([[0, 0]], "out of range"),
        ([[1]], "must be \\[student_layer, teacher_layer\\]"),
        ([], "must be 'uniform', 'last'"),
    ],
)
def test_bad_mappings_are_refused_by_name(layers, message):
    with pytest.raises(DistillError, match=message):
        resolve_layer_map(layers, 2, 6, "attention", allow_embeddings=False)
