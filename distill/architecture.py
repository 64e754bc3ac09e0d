"""Architecture adapters: where things are in one Hugging Face encoder family, and how to reshape it.

Feature capture, students, pruning, early exit, export and loading read a model only through its family's
Architecture, so a new family is one adapter registered with `distill_register_architectures`. An adapter is
stateless: every method takes the model (or one of its layers) it works on.

Layers are numbered from 0 here, as in the model's own ModuleList.
"""

from __future__ import annotations

import functools
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from torch import Tensor, nn

from distill.errors import DistillError
from distill.registry import registered

if TYPE_CHECKING:  # transformers' modelling costs a second of start-up, which listing plugins does not need
    from transformers import PretrainedConfig, PreTrainedModel

Record = Callable[[str, Callable[[], Tensor]], None]  # (kind, make): make() builds the (B, heads, T, d) tensor


@dataclass
class Attention:
    """One layer's self-attention projections: separate q/k/v Linears, or one fused Linear with q, k and v stacked
    in that order along its outputs. `positional` lists further projections sliced like the keys (DeBERTa's
    position projections); `module` is the attention block, for families that pass it position embeddings."""

    output: nn.Linear
    query: nn.Linear | None = None
    key: nn.Linear | None = None
    value: nn.Linear | None = None
    fused: nn.Linear | None = None
    positional: list[nn.Linear] = field(default_factory=list)
    module: nn.Module | None = None


def slice_linear(linear: nn.Linear, keep: list[int] | None = None, keep_inputs: list[int] | None = None) -> None:
    """Keep only some output rows and/or input columns of a Linear layer, in place."""
    weight = linear.weight.data
    if keep is not None:
        weight = weight[keep]
        if linear.bias is not None:
            linear.bias = nn.Parameter(linear.bias.data[keep].clone())
        linear.out_features = len(keep)
    if keep_inputs is not None:
        weight = weight[:, keep_inputs]
        linear.in_features = len(keep_inputs)
    linear.weight = nn.Parameter(weight.clone())


class Architecture(ABC):
    """How distill reads and reshapes one encoder family. Subclasses set the class attributes, say where the
    family keeps its layers and how to run them (the abstract methods), and override the few others their layout
    needs.

    Class attributes:
        model_types: the `config.model_type` values this adapter reads.
        name: the family's name in messages and in `EncoderStudent(family=...)`.
        config_class: the configuration a student of this family is built from.
        size_keys: the config keys of depth, width, heads and feed-forward width, under the names
            "layers", "hidden", "heads", "intermediate".
        dropout_keys: the config keys a student's dropout sets.
        derived_keys: config keys derived from the depth, dropped when a smaller config is made from a larger one.
        fresh_settings: config settings a student of this family gets when the teacher is of another family.
        gated: the feed-forward input projection holds [input; gate] halves (GLU).
        positions_in_layers: positions enter every layer (relative or rotary) rather than once with the
            embeddings, so a layer's output cannot be re-read as a shorter sequence of the same positions.
        refusal: set on an adapter registered only to refuse a family, with the reason distill cannot read it.
    """

    model_types: ClassVar[tuple[str, ...]] = ()
    name: ClassVar[str]
    config_class: ClassVar[type[PretrainedConfig]]
    size_keys: ClassVar[dict[str, str]] = {
        "layers": "num_hidden_layers",
        "hidden": "hidden_size",
        "heads": "num_attention_heads",
        "intermediate": "intermediate_size",
    }
    dropout_keys: ClassVar[tuple[str, ...]] = ("hidden_dropout_prob", "attention_probs_dropout_prob")
    derived_keys: ClassVar[tuple[str, ...]] = ()
    fresh_settings: ClassVar[dict[str, Any]] = {}
    gated: ClassVar[bool] = False
    positions_in_layers: ClassVar[bool] = False
    refusal: ClassVar[str | None] = None

    # --- where things are -----------------------------------------------------------------------------------

    @abstractmethod
    def layers(self, model: PreTrainedModel) -> nn.ModuleList:
        """The encoder's layers, in order."""

    @abstractmethod
    def attention(self, layer: nn.Module) -> Attention:
        """The projections of a layer's attention."""

    @abstractmethod
    def feed_forward(self, layer: nn.Module) -> tuple[nn.Linear, nn.Linear]:
        """(input projection, output projection) of a layer's feed-forward block."""

    def embeddings(self, model: PreTrainedModel) -> dict[str, nn.Embedding]:
        """The embedding tables by role: "word", and "position" and "token_type" where the family has them; by
        default read from the base model's `embeddings` block under transformers' usual `<role>_embeddings`
        names."""
        block = model.base_model.embeddings
        tables = {"word": block.word_embeddings}
        for role in ("position", "token_type"):
            if isinstance(table := getattr(block, f"{role}_embeddings", None), nn.Embedding):
                tables[role] = table
        return tables

    def head_size(self, model: PreTrainedModel) -> int:
        return model.config.hidden_size // model.config.num_attention_heads

    def heads(self, model: PreTrainedModel, layer: nn.Module) -> int:
        """Heads a (possibly slimmed) layer still has: its attention output's input width over the head size."""
        return self.attention(layer).output.in_features // self.head_size(model)

    def capture(self, model: PreTrainedModel, layer: nn.Module, record: Record) -> None:
        """Hook `layer` so that every forward pass offers `record` its "queries", "keys" and "values", each
        (B, heads, T, d) as the attention uses them; `record` builds only those it wants.

        Only a projection's first call in each pass of the layer is offered: DeBERTa runs its query and key
        projections a second time, on the relative-position embeddings.
        """
        size = self.head_size(model)
        parts = self.attention(layer)
        offered: set[str] = set()

        def heads(output: Tensor) -> Tensor:
            batch, length, width = output.shape
            return output.view(batch, length, width // size, size).transpose(1, 2)

        def offer(kinds: tuple[str, ...]):
            def hook(module: nn.Module, args: tuple, output: Tensor) -> None:
                if kinds[0] in offered:
                    return
                offered.update(kinds)
                chunks = output.chunk(len(kinds), dim=-1) if len(kinds) > 1 else (output,)
                for kind, chunk in zip(kinds, chunks, strict=True):
                    record(kind, lambda chunk=chunk: heads(chunk))

            return hook

        layer.register_forward_pre_hook(lambda module, args: offered.clear())
        if parts.fused is not None:
            parts.fused.register_forward_hook(offer(("queries", "keys", "values")))
            return
        for kind, projection in (("queries", parts.query), ("keys", parts.key), ("values", parts.value)):
            projection.register_forward_hook(offer((kind,)))

    # --- running layer by layer (early exit) ----------------------------------------------------------------

    @abstractmethod
    def embed(self, model: PreTrainedModel, batch: Mapping[str, Tensor]) -> Tensor:
        """The embedding output (B, T, H) that the first layer reads."""

    @abstractmethod
    def run_layer(self, model: PreTrainedModel, index: int, hidden: Tensor, attention_mask: Tensor) -> Tensor:
        """Layer `index` on `hidden` (B, T, H) with a (B, T) padding mask; the rows may be any subset of a batch."""

    @abstractmethod
    def classify(self, model: PreTrainedModel, hidden: Tensor, attention_mask: Tensor) -> Tensor:
        """The sequence head on the last layer's output: what `model(...).logits` would be."""

    # --- reshaping ------------------------------------------------------------------------------------------

    def keep_heads(self, model: PreTrainedModel, layer: nn.Module, heads: list[int]) -> None:
        """Cut every other head out of `layer`'s projections."""
        size = self.head_size(model)
        columns = [head * size + i for head in heads for i in range(size)]
        parts = self.attention(layer)
        if parts.fused is not None:
            width = parts.fused.out_features // 3
            slice_linear(parts.fused, keep=[part * width + c for part in range(3) for c in columns])
        for projection in (parts.query, parts.key, parts.value, *parts.positional):
            if projection is not None:
                slice_linear(projection, keep=columns)
        slice_linear(parts.output, keep_inputs=columns)
        self.sync(model, layer)

    def keep_neurons(self, model: PreTrainedModel, layer: nn.Module, neurons: list[int]) -> None:
        """Cut every other feed-forward neuron out of `layer`."""
        inner, outer = self.feed_forward(layer)
        rows = neurons
        if self.gated:
            width = inner.out_features // 2
            rows = [*neurons, *(width + n for n in neurons)]
        slice_linear(inner, keep=rows)
        slice_linear(outer, keep_inputs=neurons)

    def keep_layers(self, model: PreTrainedModel, kept: list[int]) -> None:
        """Keep only the layers at `kept` (0-based, in order)."""
        layers = self.layers(model)
        self._set_layers(model, nn.ModuleList(layers[i] for i in kept))
        model.config.num_hidden_layers = len(kept)

    def keep_depth(self, model: PreTrainedModel, count: int) -> list[int]:
        """Keep `count` layers spread evenly over the depth, the first and the last included, as LayerDrop's
        "every other layer" pruning does; returns the 0-based layers kept.

        Raises:
            DistillError: `count` is not between 1 and the depth, or the family cannot drop those layers.
        """
        total = len(self.layers(model))
        if not 1 <= count <= total:
            raise DistillError(f"a model of {total} layers can keep 1 to {total} of them, not {count}")
        kept = [round(i * (total - 1) / (count - 1)) for i in range(count)] if count > 1 else [0]
        self.check_layer_removal(model, [i for i in range(total) if i not in kept])
        self.keep_layers(model, kept)
        return kept

    def check_layer_removal(self, model: PreTrainedModel, removed: list[int]) -> None:  # noqa: B027 (a hook)
        """Refuse removing layers whose removal the family cannot express (0-based indices)."""

    def check_head_removal(self, model: PreTrainedModel) -> None:  # noqa: B027 (a hook)
        """Refuse cutting heads out of single layers where the family cannot express it."""

    @abstractmethod
    def _set_layers(self, model: PreTrainedModel, layers: nn.ModuleList) -> None:
        """Put `layers` in place of the encoder's layers."""

    def sync(self, model: PreTrainedModel, layer: nn.Module) -> None:  # noqa: B027 (a hook)
        """Bring a layer's cached sizes in line with its weights after slicing or loading narrower weights."""

    def neurons(self, layer: nn.Module) -> int:
        return self.feed_forward(layer)[1].in_features

    def shrink_vocabulary(self, model: PreTrainedModel, kept: Tensor) -> None:
        """Keep only the word-embedding rows at `kept` (in order)."""
        table = model.get_input_embeddings()
        smaller = nn.Embedding(len(kept), table.embedding_dim, padding_idx=table.padding_idx)
        smaller.weight = nn.Parameter(table.weight.detach()[kept].clone())
        model.set_input_embeddings(smaller)
        model.config.vocab_size = len(kept)

    # --- students of this family ----------------------------------------------------------------------------

    def segment_rows(self, teacher_rows: int) -> int:
        """The segment-embedding rows a student of this family gets from a teacher of another family that has
        `teacher_rows` (0: the teacher reads no segment ids). BERT-style embeddings need at least one row."""
        return max(teacher_rows, 1)

    def student_config(
        self, teacher: PretrainedConfig, sizes: dict[str, int], dropout: float, head: dict[str, Any]
    ) -> PretrainedConfig:
        """A configuration of this family with the given sizes ("layers", "hidden", "heads", "intermediate").

        A teacher of the same family lends every other setting; one of another family lends its vocabulary
        facts, and the family's `fresh_settings` fill the rest.
        """
        if teacher.model_type in self.model_types:
            settings = {k: v for k, v in teacher.to_dict().items() if k not in self.derived_keys}
        else:
            settings = {
                **self.fresh_settings,
                "vocab_size": teacher.vocab_size,
                "pad_token_id": teacher.pad_token_id,
                "max_position_embeddings": getattr(teacher, "max_position_embeddings", 512),
                "type_vocab_size": self.segment_rows(getattr(teacher, "type_vocab_size", 2) or 0),
            }
        settings |= {self.size_keys[key]: value for key, value in sizes.items()}
        settings |= {key: dropout for key in self.dropout_keys}
        settings |= head
        for key in ("architectures", "model_type", "transformers_version", "_name_or_path"):
            settings.pop(key, None)
        return self.config_class(**settings)


def segment_ids(model: PreTrainedModel, batch: Mapping[str, Tensor]) -> Tensor | None:
    """The batch's segment ids where the model has more than one segment row; None (every token segment 0)
    otherwise, since a pair's second segment would index past a one-row table."""
    return batch.get("token_type_ids") if (getattr(model.config, "type_vocab_size", 2) or 0) > 1 else None


@functools.cache
def architectures() -> dict[str, Architecture]:
    """Every installed adapter by `model_type` (the plugin manager is process-wide, so this is too)."""
    found: dict[str, Architecture] = {}
    for cls, _ in registered("architectures").values():
        adapter = cls()  # one instance per family, whatever model types it reads
        for model_type in cls.model_types:
            found[model_type] = adapter
    return found


def families() -> dict[str, Architecture]:
    """Every installed adapter by family name."""
    return {adapter.name: adapter for adapter in architectures().values()}


def architecture_of(model: nn.Module, role: str = "model") -> Architecture:
    """The adapter of a Hugging Face model's family.

    Raises:
        DistillError: no installed adapter reads this family; the message names those that do.
    """
    model_type = getattr(getattr(model, "config", None), "model_type", None)
    known = architectures()
    if model_type in known and known[model_type].refusal:
        raise DistillError(
            f"the {role} is a {model_type!r} model, which distill cannot read: {known[model_type].refusal}"
        )
    known = {name: adapter for name, adapter in known.items() if not adapter.refusal}
    if model_type not in known:
        raise DistillError(
            f"the {role} is a {model_type or type(model).__name__!r} model, a family distill cannot read: supported "
            f"model types are {', '.join(sorted(known))}. A plugin adds one by returning an Architecture subclass "
            f"from the distill_register_architectures hook (docs/plugins.md)"
        )
    return known[model_type]


def find_family(name: str) -> Architecture:
    """The adapter of a family by name (or by model_type).

    Raises:
        DistillError: the name is unknown.
    """
    by_name = families()
    adapter = by_name.get(name) or architectures().get(name)
    if adapter is not None and adapter.refusal:
        raise DistillError(f"encoder family {name!r} cannot be a student: {adapter.refusal}")
    by_name = {family: adapter for family, adapter in by_name.items() if not adapter.refusal}
    if adapter is None:
        raise DistillError(
            f"unknown encoder family {name!r}: installed families are {', '.join(sorted(by_name))} "
            f"(a plugin adds one through distill_register_architectures)"
        )
    return adapter
