"""Transformer students of any encoder family with an adapter: smaller BERTs, RoBERTas, DeBERTas, ...

They are initialised from the teacher the way DistilBERT was (layers copied), or with the teacher's embeddings
reduced by PCA, or at random.
"""

from __future__ import annotations

import copy
import inspect
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import torch
import transformers

from distill import (
    Architecture,
    DistillError,
    StudentConfig,
    Task,
    Teacher,
    architecture_of,
    find_family,
    hookimpl,
    load_tokenizer,
    pca_basis,
    reduce_to,
    require_teacher_model,
)
from distill.students.transformer import TransformerStudent

if TYPE_CHECKING:
    from transformers import PreTrainedModel


@dataclass
class EncoderStudent(StudentConfig):
    """A Transformer encoder with fewer or narrower layers, of the teacher's family or another one.

    Attributes:
        family: the student's encoder family ("bert", "roberta", "deberta-v2", ...; `distill plugins` lists
            them); None takes the teacher's.
        num_layers: encoder layers.
        hidden_size: width; None takes the teacher's.
        num_heads: attention heads; None takes the teacher's.
        intermediate_size: feed-forward width; None takes the teacher's.
        init_from_teacher: 0-based teacher layers to copy, one per student layer (e.g. [0, 2, 4]); the embeddings,
            pooler and task head are copied too. Needs the teacher's family and widths.
        init_embeddings: "teacher" starts the embeddings from the teacher's, reduced by PCA when the student is
            narrower; "random" leaves them freshly initialised.
        tokenizer: a folder or hub id of another tokenizer to build the student on; it then reads its own token
            ids, and only sentence-level losses (logits, pooled vectors) can reach it. None shares the teacher's.
        dropout: hidden and attention dropout.
        config: further settings of the family's configuration, e.g. {position_buckets: 64} for DeBERTa or
            {local_attention: 64} for ModernBERT; unknown keys are refused.
    """

    student_class: ClassVar[type] = TransformerStudent
    family: str | None = None
    num_layers: int = 3
    hidden_size: int | None = None
    num_heads: int | None = None
    intermediate_size: int | None = None
    init_from_teacher: list[int] | None = None
    init_embeddings: Literal["random", "teacher"] = "random"
    tokenizer: str | None = None
    dropout: float = 0.1
    config: dict[str, Any] = field(default_factory=dict)

    def build(self, teacher: Teacher | None, task: Task) -> TransformerStudent:
        require_teacher_model(teacher, f"{type(self).__name__} takes its sizes and vocabulary")
        teacher_family = architecture_of(teacher.model, "teacher")
        architecture = find_family(self.family) if self.family else teacher_family
        own = load_tokenizer(self.tokenizer, "student") if self.tokenizer else None
        if own is not None and (self.init_from_teacher is not None or self.init_embeddings == "teacher"):
            raise DistillError(
                "a student on its own tokenizer cannot start from the teacher's embeddings or layers (their rows "
                "are other word pieces): drop init_from_teacher and set init_embeddings: random"
            )
        source = copy.deepcopy(teacher.model.config)
        if own is not None:  # the student's vocabulary facts are its own tokenizer's
            source.vocab_size, source.pad_token_id = len(own), own.pad_token_id
        sizes = self._sizes(source, teacher_family)
        self._check_settings(architecture)
        config = architecture.student_config(source, sizes, self.dropout, {**task.head_config(), **self.config})
        try:
            model = getattr(transformers, task.head).from_config(config)
        except ValueError as error:
            raise DistillError(
                f"the {architecture.name} family has no {task.head} head (task {task.name}): {error}"
            ) from None
        if self.init_from_teacher is not None:
            if type(architecture) is not type(teacher_family):
                raise DistillError(
                    f"init_from_teacher copies layers, so the student must be of the teacher's family "
                    f"({teacher_family.name}), not {architecture.name}: drop family or init_from_teacher"
                )
            _copy_teacher_layers(model, teacher.model, architecture, self.init_from_teacher)
        elif self.init_embeddings == "teacher":
            _reduce_teacher_embeddings(model, architecture, teacher.model, teacher_family)
        student = TransformerStudent(model, family=architecture.name, task=task)
        student.tokenizer = own
        return student

    def _check_settings(self, architecture: Architecture) -> None:
        """Refuse `config` keys the family's configuration does not know (a typo would otherwise do nothing)."""
        known = {*inspect.signature(architecture.config_class.__init__).parameters, *architecture.fresh_settings}
        known |= set(architecture.config_class().to_dict())
        if unknown := sorted(set(self.config) - known):
            raise DistillError(
                f"{type(self).__name__}.config: {unknown} are not settings of the {architecture.name} family's "
                f"{architecture.config_class.__name__}; known ones include {', '.join(sorted(known)[:12])}, ..."
            )

    def _sizes(self, teacher_config, teacher_family: Architecture) -> dict[str, int]:
        hidden = self.hidden_size or teacher_config.hidden_size
        heads = self.num_heads or teacher_config.num_attention_heads
        if self.num_layers < 1 or hidden < 1 or heads < 1:
            raise DistillError(f"{type(self).__name__} needs num_layers, hidden_size and num_heads of at least 1")
        if hidden % heads:
            raise DistillError(
                f"{type(self).__name__} hidden_size {hidden} is not divisible by num_heads {heads}: choose sizes "
                f"where hidden_size is a multiple of num_heads (e.g. hidden_size {hidden - hidden % heads or heads})"
            )
        intermediate = self.intermediate_size or getattr(teacher_config, teacher_family.size_keys["intermediate"])
        return {"layers": self.num_layers, "hidden": hidden, "heads": heads, "intermediate": intermediate}


@dataclass
class BertStudent(EncoderStudent):
    """A smaller BERT: an EncoderStudent of the bert family (set family to build another)."""

    family: str | None = "bert"


def _copy_teacher_layers(
    student: PreTrainedModel, teacher: PreTrainedModel, architecture: Architecture, layers: list[int]
) -> None:
    """DistilBERT's initialisation: everything outside the layers (embeddings, pooler, task head) and the chosen
    layers, copied as they are."""
    student_layers, teacher_layers = architecture.layers(student), architecture.layers(teacher)
    if len(layers) != len(student_layers):
        raise DistillError(
            f"init_from_teacher lists {len(layers)} teacher layers for a {len(student_layers)}-layer student: give "
            f"exactly one teacher layer per student layer"
        )
    if bad := [i for i in layers if not 0 <= i < len(teacher_layers)]:
        raise DistillError(
            f"init_from_teacher layers {bad} are out of range: the teacher has layers 0..{len(teacher_layers) - 1}"
        )
    keys = architecture.size_keys
    if any(
        getattr(student.config, keys[k]) != getattr(teacher.config, keys[k])
        for k in ("hidden", "heads", "intermediate")
    ):
        raise DistillError(
            "init_from_teacher copies weights, so hidden_size, num_heads and intermediate_size must equal the "
            "teacher's; leave them unset, or drop init_from_teacher and distil intermediate layers instead"
        )
    prefix = next(name for name, module in student.named_modules() if module is student_layers) + "."
    outside = {k: v for k, v in teacher.state_dict().items() if not k.startswith(prefix)}
    student.load_state_dict(outside, strict=False)
    for mine, source in zip(student_layers, layers, strict=True):
        # strict=False: ModernBERT's first layer has no attention norm, so a later layer's norm has nowhere to go
        mine.load_state_dict(teacher_layers[source].state_dict(), strict=False)


@torch.no_grad()
def _reduce_teacher_embeddings(
    student: PreTrainedModel, architecture: Architecture, teacher: PreTrainedModel, teacher_family: Architecture
) -> None:
    """Each embedding table the two families share by role (word, position, segment) and by row count, projected
    onto the top principal directions of the teacher's word embeddings."""
    sources, targets = teacher_family.embeddings(teacher), architecture.embeddings(student)
    words = sources["word"].weight
    for role, target in targets.items():
        source = sources.get(role)
        if source is None or source.num_embeddings != target.num_embeddings:
            continue  # e.g. RoBERTa's positions start after the padding id
        width = target.embedding_dim
        basis = None if words.shape[1] == width else pca_basis(words, width)
        target.weight.copy_(reduce_to(source.weight, width, basis))


@hookimpl
def distill_register_students() -> list[type]:
    return [EncoderStudent, BertStudent]
