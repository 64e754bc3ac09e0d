"""Weight squeezing (Chumachenko et al., 2020): the student's weights are learned linear maps of the teacher's.

Each Linear layer of a student encoder layer is W_s = L · W_t · R, where W_t is the matching teacher layer's
weight (frozen) and only L (out_s × out_t) and R (in_t × in_s) are trained, with the distillation losses.
Where a side is the hidden width, L and R start as the projection onto the teacher's top principal
directions of its word embeddings (the basis `init_embeddings: teacher` reduces the student's embeddings
with), so a narrower student starts as the teacher seen through that basis; other sides start as the leading
rows of the identity. The word embedding is squeezed the same way (E_s = E_t · R). At export every map is
multiplied out: the student is a plain model of its family.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from typing_extensions import override

from distill import (
    Compression,
    DistillError,
    Stage,
    Student,
    architecture_of,
    hf_model,
    hookimpl,
    layer_linears,
    module_paths,
    pca_basis,
    replace_module,
)


def _side(teacher: int, student: int, hidden: tuple[int, int], basis: Tensor) -> Tensor:
    """(student, teacher): the starting map of one side of a matrix."""
    if (teacher, student) == hidden:
        return basis.T.clone()
    return torch.eye(teacher)[:student].clone()


class SqueezedLinear(nn.Module):
    """A Linear layer whose weight is L · W_t · R, with a frozen teacher weight W_t and a bias of its own."""

    def __init__(self, teacher: nn.Linear, left: Tensor, right: Tensor) -> None:
        super().__init__()
        self.register_buffer("teacher_weight", teacher.weight.detach().clone(), persistent=False)
        self.left, self.right = nn.Parameter(left), nn.Parameter(right)
        bias = left @ teacher.bias.detach() if teacher.bias is not None else None
        self.bias = nn.Parameter(bias) if bias is not None else None

    @property
    def in_features(self) -> int:
        return self.right.shape[1]

    @property
    def out_features(self) -> int:
        return self.left.shape[0]

    @property
    def weight(self) -> Tensor:
        return self.left @ self.teacher_weight @ self.right

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight, self.bias)

    @torch.no_grad()
    def materialise(self) -> nn.Linear:
        dense = nn.Linear(self.in_features, self.out_features, bias=self.bias is not None)
        dense.weight.copy_(self.weight)
        if self.bias is not None:
            dense.bias.copy_(self.bias)
        return dense


class SqueezedEmbedding(nn.Module):
    """A word embedding E_t · R over a frozen teacher table."""

    def __init__(self, teacher: nn.Embedding, right: Tensor) -> None:
        super().__init__()
        self.register_buffer("teacher_weight", teacher.weight.detach().clone(), persistent=False)
        self.right = nn.Parameter(right)
        self.num_embeddings, self.embedding_dim, self.padding_idx = (
            teacher.num_embeddings,
            right.shape[1],
            (teacher.padding_idx),
        )

    def forward(self, ids: Tensor) -> Tensor:
        return F.embedding(ids, self.teacher_weight) @ self.right

    @torch.no_grad()
    def materialise(self) -> nn.Embedding:
        table = nn.Embedding(self.num_embeddings, self.embedding_dim, padding_idx=self.padding_idx)
        table.weight.copy_(self.teacher_weight @ self.right)
        return table


@dataclass(eq=False)
class WeightSqueezing(Compression):
    """Learn the student's encoder weights as maps of the teacher's.

    Attributes:
        layers: the 0-based teacher layer each student layer squeezes; None spreads them over the teacher's depth.
        embeddings: squeeze the word embedding too (else the student keeps its own table).
    """

    layers: list[int] | None = None
    embeddings: bool = True

    stage: ClassVar[Stage] = Stage.STRUCTURE
    excludes: ClassVar[dict[str, str]] = {
        "HeadPruning": "squeezed projections are maps, not slices; prune the squeezed export",
        "NeuronPruning": "squeezed projections are maps, not slices; prune the squeezed export",
        "QuantizationAwareTraining": "both reparametrise the weights; quantise the squeezed export",
        "VocabularyPruning": "both rebuild the word embedding; prune the vocabulary in a first run",
    }

    @override
    def configure_student(self, student: Student, teacher: Any, data: Any) -> None:
        if teacher is None:
            raise DistillError("WeightSqueezing maps the teacher's weights: set model.teacher")
        model, architecture = hf_model(student, self.name)
        source = teacher.model
        if type(architecture_of(source, "teacher")) is not type(architecture):
            raise DistillError(
                f"WeightSqueezing maps each teacher matrix onto the student's, so both must be of one family; the "
                f"student is {architecture.name}: leave EncoderStudent.family unset"
            )
        student_layers, teacher_layers = architecture.layers(model), architecture.layers(source)
        chosen = self.layers or [
            round(i * (len(teacher_layers) - 1) / max(len(student_layers) - 1, 1)) for i in range(len(student_layers))
        ]
        if len(chosen) != len(student_layers) or any(not 0 <= i < len(teacher_layers) for i in chosen):
            raise DistillError(
                f"WeightSqueezing.layers must give one teacher layer (0..{len(teacher_layers) - 1}) per student "
                f"layer ({len(student_layers)}); got {chosen}"
            )
        hidden = (source.config.hidden_size, model.config.hidden_size)
        words = architecture.embeddings(source)["word"]
        basis = pca_basis(words.weight.detach(), hidden[1]) if hidden[0] != hidden[1] else torch.eye(hidden[0])
        paths = module_paths(model)
        for mine, theirs in zip(student_layers, chosen, strict=True):
            ours = [m for ms in layer_linears(architecture, mine).values() for m in ms]
            reference = [m for ms in layer_linears(architecture, teacher_layers[theirs]).values() for m in ms]
            for linear, source_linear in zip(ours, reference, strict=True):
                if isinstance(linear, SqueezedLinear):
                    continue  # idempotent
                left = _side(source_linear.out_features, linear.out_features, hidden, basis)
                right = _side(source_linear.in_features, linear.in_features, hidden, basis).T
                replace_module(model, paths[id(linear)], SqueezedLinear(source_linear, left, right))
        table = architecture.embeddings(model)["word"]
        if self.embeddings and isinstance(table, nn.Embedding):
            width = (words.embedding_dim, table.embedding_dim)  # ELECTRA's tables are narrower than its layers
            if width == hidden:
                right = basis.clone()
            else:
                right = torch.eye(width[0]) if width[0] == width[1] else pca_basis(words.weight.detach(), width[1])
            model.set_input_embeddings(SqueezedEmbedding(words, right))

    @override
    def finalize(self, student: Student) -> None:
        """Multiply every map out into an ordinary layer."""
        model, _ = hf_model(student, self.name)
        for path, module in list(model.named_modules()):
            if isinstance(module, SqueezedLinear):
                replace_module(model, path, module.materialise())
        if isinstance(table := model.get_input_embeddings(), SqueezedEmbedding):
            model.set_input_embeddings(table.materialise())


@hookimpl
def distill_register_compression() -> list[type]:
    return [WeightSqueezing]
