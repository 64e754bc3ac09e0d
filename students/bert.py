"""The smaller-BERT student family, initialised from the teacher the way DistilBERT was."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

import torch
from transformers import (
    BertConfig,
    BertForQuestionAnswering,
    BertForSequenceClassification,
    BertForTokenClassification,
    PreTrainedModel,
)

from distill import DistillError, StudentConfig, Task, Teacher, hookimpl, pca_basis, reduce_to
from distill.students.transformer import TransformerStudent

_HEADS = {
    "AutoModelForSequenceClassification": BertForSequenceClassification,
    "AutoModelForTokenClassification": BertForTokenClassification,
    "AutoModelForQuestionAnswering": BertForQuestionAnswering,
}


@dataclass
class BertStudent(StudentConfig):
    """A BERT with fewer or narrower layers, sharing the teacher's tokenizer.

    Attributes:
        num_layers: encoder layers.
        hidden_size: width; None takes the teacher's.
        num_heads: attention heads; None takes the teacher's.
        intermediate_size: feed-forward width; None takes the teacher's.
        init_from_teacher: 0-based teacher layers to copy, one per student layer (e.g. [0, 2, 4]); the embeddings,
            pooler and task head are copied too. Needs the student's widths to equal the teacher's.
        init_embeddings: "teacher" starts the word, position and segment embeddings from the teacher's, reduced by
            PCA when the student is narrower; "random" leaves them freshly initialised.
        dropout: hidden and attention dropout.
    """

    student_class: ClassVar[type] = TransformerStudent
    num_layers: int = 3
    hidden_size: int | None = None
    num_heads: int | None = None
    intermediate_size: int | None = None
    init_from_teacher: list[int] | None = None
    init_embeddings: Literal["random", "teacher"] = "random"
    dropout: float = 0.1

    def build(self, teacher: Teacher | None, task: Task) -> TransformerStudent:
        if teacher is None:
            raise DistillError("BertStudent takes its vocabulary from the teacher: set model.teacher")
        if task.head not in _HEADS:
            raise DistillError(f"BertStudent has no {task.head} head (task {task.name}): it builds {sorted(_HEADS)}")
        config = self._config(teacher.model.config, task.head_config())
        model = _HEADS[task.head](config)
        if self.init_from_teacher is not None:
            _copy_teacher_layers(model, teacher, self.init_from_teacher)
        elif self.init_embeddings == "teacher":
            _reduce_teacher_embeddings(model, teacher)
        return TransformerStudent(model, family="bert")

    def _config(self, teacher_config, head: dict) -> BertConfig:
        hidden = self.hidden_size or teacher_config.hidden_size
        heads = self.num_heads or teacher_config.num_attention_heads
        if self.num_layers < 1 or hidden < 1 or heads < 1:
            raise DistillError("BertStudent needs num_layers, hidden_size and num_heads of at least 1")
        if hidden % heads:
            raise DistillError(
                f"BertStudent hidden_size {hidden} is not divisible by num_heads {heads}: choose sizes where "
                f"hidden_size is a multiple of num_heads (e.g. hidden_size {hidden - hidden % heads or heads})"
            )
        return BertConfig(
            vocab_size=teacher_config.vocab_size,
            hidden_size=hidden,
            num_hidden_layers=self.num_layers,
            num_attention_heads=heads,
            intermediate_size=self.intermediate_size or teacher_config.intermediate_size,
            hidden_act=teacher_config.hidden_act,
            hidden_dropout_prob=self.dropout,
            attention_probs_dropout_prob=self.dropout,
            max_position_embeddings=teacher_config.max_position_embeddings,
            type_vocab_size=teacher_config.type_vocab_size,
            pad_token_id=teacher_config.pad_token_id,
            layer_norm_eps=teacher_config.layer_norm_eps,
            **head,
        )


def _copy_teacher_layers(student: PreTrainedModel, teacher: Teacher, layers: list[int]) -> None:
    """DistilBERT's initialisation: embeddings, the chosen layers, pooler and classifier, copied as they are."""
    source = teacher.model
    if getattr(source.config, "model_type", None) != "bert":
        raise DistillError(f"init_from_teacher copies BERT layers, but the teacher is a {source.config.model_type}")
    if len(layers) != student.config.num_hidden_layers:
        raise DistillError(
            f"init_from_teacher lists {len(layers)} teacher layers for a {student.config.num_hidden_layers}-layer "
            f"student: give exactly one teacher layer per student layer"
        )
    if bad := [i for i in layers if not 0 <= i < source.config.num_hidden_layers]:
        raise DistillError(
            f"init_from_teacher layers {bad} are out of range: the teacher has layers "
            f"0..{source.config.num_hidden_layers - 1}"
        )
    widths = ("hidden_size", "num_attention_heads", "intermediate_size")
    if any(getattr(student.config, w) != getattr(source.config, w) for w in widths):
        raise DistillError(
            "init_from_teacher copies weights, so hidden_size, num_heads and intermediate_size must equal the "
            "teacher's; leave them unset, or drop init_from_teacher and distil intermediate layers instead"
        )
    student.bert.embeddings.load_state_dict(source.bert.embeddings.state_dict())
    for student_layer, teacher_layer in zip(student.bert.encoder.layer, layers, strict=True):
        student_layer.load_state_dict(source.bert.encoder.layer[teacher_layer].state_dict())
    if student.bert.pooler is not None and source.bert.pooler is not None:  # token heads have no pooler
        student.bert.pooler.load_state_dict(source.bert.pooler.state_dict())
    for name, head in student.named_children():  # the task head: classifier, qa_outputs, ...
        if name != student.base_model_prefix:
            head.load_state_dict(getattr(source, name).state_dict())


@torch.no_grad()
def _reduce_teacher_embeddings(student: PreTrainedModel, teacher: Teacher) -> None:
    """Word, position and segment embeddings projected onto the top principal directions of the teacher's words."""
    source = teacher.model.base_model.embeddings
    target = student.bert.embeddings
    width = student.config.hidden_size
    words = source.word_embeddings.weight
    basis = None if words.shape[1] == width else pca_basis(words, width)
    for name in ("word_embeddings", "position_embeddings", "token_type_embeddings"):
        getattr(target, name).weight.copy_(reduce_to(getattr(source, name).weight, width, basis))


@hookimpl
def distill_register_students() -> list[type]:
    return [BertStudent]
