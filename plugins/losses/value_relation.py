"""MiniLM's value-relation transfer (Wang et al., 2020), with MiniLMv2's relation heads for unequal head counts."""

from __future__ import annotations

from collections.abc import Mapping

from torch import Tensor

from distill import Anatomy, DistillError, Features, LayerMap, LossTerm, Ramp, resolve_layer_map
from distill.plugins.losses._masking import key_log_probs, masked_kl


def value_relations(values: Tensor, relation_heads: int, attention_mask: Tensor) -> Tensor:
    """Log of softmax(V·Vᵀ/√d) per relation head, from (B, heads, T, d) values: (B, relation_heads, T, T).

    The heads are concatenated back to the full width and re-split into `relation_heads` equal parts
    (MiniLMv2), so teacher and student relations line up whatever their own head counts.
    """
    b, heads, t, d = values.shape
    split = values.transpose(1, 2).reshape(b, t, heads * d).view(b, t, relation_heads, -1).transpose(1, 2)
    scores = split @ split.transpose(-1, -2) * split.shape[-1] ** -0.5
    return key_log_probs(scores, attention_mask)


class ValueRelationKD(LossTerm):
    """KL(R_T ‖ R_S) between value relations R = softmax(V·Vᵀ/√d), per relation head, on mapped layers.

    By default the last student layer learns from the last teacher layer, as in MiniLM, with as many
    relation heads as the student has attention heads.
    """

    name = "value_relation"
    needs = frozenset({"values"})

    def __init__(
        self,
        weight: float = 1.0,
        layers: LayerMap = "last",
        relation_heads: int | None = None,
        weight_schedule: Ramp | None = None,
    ) -> None:
        """Args:
        weight: weight of the term.
        layers: "last" (MiniLM), "uniform", or [student, teacher] pairs of encoder layers (1-based).
        relation_heads: heads to split both models' values into; None takes the student's head count.
            It must divide both hidden sizes.
        weight_schedule: multiplies `weight` over training progress.
        """
        super().__init__(weight, weight_schedule)
        self.layers = layers
        self.relation_heads = relation_heads
        self.pairs: list[tuple[int, int]] = []

    def setup(self, student: Anatomy, teacher: Anatomy | None) -> None:
        self.pairs = resolve_layer_map(self.layers, student.num_layers, teacher.num_layers, self.name, False)
        self.relation_heads = self.relation_heads or student.num_heads
        widths = (student.hidden_size, teacher.hidden_size)
        if any(width % self.relation_heads for width in widths):
            raise DistillError(
                f"loss 'value_relation': relation_heads {self.relation_heads} must divide both hidden sizes "
                f"{widths}; set relation_heads to a common divisor"
            )

    def forward(self, student: Features, teacher: Features | None, batch: Mapping[str, Tensor]) -> Tensor:
        mask = student.attention_mask
        total = 0.0
        for s, t in self.pairs:
            s_log = value_relations(student.values[s - 1], self.relation_heads, mask)
            t_log = value_relations(teacher.values[t - 1], self.relation_heads, mask)
            total = total + masked_kl(s_log, t_log, mask)
        return total / len(self.pairs)
