"""Which student layer learns from which teacher layer: the mapping every intermediate loss shares.

Layers are numbered as in Features: 0 is the embedding output, 1..L the encoder layers.
"""

from __future__ import annotations

from typing import Literal

from distill.errors import DistillError

LayerMap = Literal["uniform", "last"] | list[list[int]]


def resolve_layer_map(
    layers: LayerMap, student_layers: int, teacher_layers: int, loss: str, allow_embeddings: bool
) -> list[tuple[int, int]]:
    """(student layer, teacher layer) pairs for a mapping spec.

    Args:
        layers: "uniform" maps student layer i to teacher layer ⌊i·Lt/Ls + ½⌋ (and 0 to 0 when embeddings are
            allowed); "last" maps the last layers; or explicit [student, teacher] pairs.
        student_layers, teacher_layers: encoder depth of each model.
        loss: the loss's name, for messages.
        allow_embeddings: whether layer 0 (the embedding output) is meaningful for this loss.

    Raises:
        DistillError: a pair is malformed or out of range.
    """
    if layers == "last":
        return [(student_layers, teacher_layers)]
    if layers == "uniform":
        start = 0 if allow_embeddings else 1
        return [(i, int(i * teacher_layers / student_layers + 0.5)) for i in range(start, student_layers + 1)]
    if not isinstance(layers, list) or not layers:
        raise DistillError(f"loss {loss!r}: layers must be 'uniform', 'last' or a list of [student, teacher] pairs")
    low = 0 if allow_embeddings else 1
    pairs = []
    for pair in layers:
        if len(pair) != 2:
            raise DistillError(f"loss {loss!r}: layer pair {pair} must be [student_layer, teacher_layer]")
        s, t = pair
        if not (low <= s <= student_layers and low <= t <= teacher_layers):
            raise DistillError(
                f"loss {loss!r}: layer pair [{s}, {t}] is out of range; the student has layers {low}..{student_layers} "
                f"and the teacher {low}..{teacher_layers}" + (" (0 is the embedding output)" if low == 0 else "")
            )
        pairs.append((s, t))
    return pairs
