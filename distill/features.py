"""The Features type that teachers and students return, and the tap that fills it for Transformers.

Layer numbering is shared by every loss: hidden_states[0] is the embedding output and hidden_states[l]
is the output of encoder layer l (1-based); queries/keys/values[l - 1] belong to encoder layer l.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from torch import Tensor, nn

from distill.architecture import architecture_of
from distill.hf import head_logits, takes_token_types

FEATURE_NAMES = frozenset({"logits", "hidden_states", "attentions", "values", "pooled"})


@dataclass
class Features:
    """What one forward pass exposes to the loss hooks. Fields a model was not asked for stay None."""

    logits: Tensor  # (B, C); a token-level task's are (B, T, C)
    attention_mask: Tensor  # (B, T), 1 for real tokens
    hidden_states: tuple[Tensor, ...] | None = None  # L + 1 tensors of (B, T, H)
    queries: tuple[Tensor, ...] | None = None  # L tensors of (B, heads, T, d)
    keys: tuple[Tensor, ...] | None = None  # L tensors of (B, heads, T, d)
    values: tuple[Tensor, ...] | None = None  # L tensors of (B, heads, T, d)
    pooled: Tensor | None = None  # (B, H): the final [CLS] representation
    extras: dict[str, Tensor] = field(default_factory=dict)  # plugin-specific outputs, e.g. exit-ramp logits

    def attention_scores(self, layer: int) -> Tensor:
        """Scaled dot-product scores q·kᵀ/√d of encoder layer `layer` (1-based), before mask and softmax.

        Returns:
            (B, heads, T, T) scores. Computing them from q and k keeps the model on its fast SDPA kernel.
        """
        if self.queries is None or self.keys is None:
            raise RuntimeError("attention scores were not captured: the loss must declare 'attentions' in needs")
        q, k = self.queries[layer - 1], self.keys[layer - 1]
        return q @ k.transpose(-1, -2) * q.shape[-1] ** -0.5


@dataclass(frozen=True)
class Anatomy:
    """The shape facts that losses check and size their projections by, before any training step."""

    family: str
    provides: frozenset[str]
    num_layers: int = 0
    hidden_size: int = 0
    num_heads: int = 0
    num_labels: int = 0


class TransformerTap:
    """Runs a Hugging Face model of any family with an Architecture adapter, and fills Features with only what
    the losses need.

    q, k and v come from forward hooks the adapter places on the attention projections, so nothing forces the
    slower eager attention path that `output_attentions=True` would need.

    Raises:
        DistillError: no installed adapter reads the model's family (at construction, before any training).
    """

    def __init__(
        self, model: nn.Module, role: str = "model", read: Callable[[Any, Tensor], Tensor] | None = None
    ) -> None:
        """Args:
        model: a Hugging Face model of a family some adapter reads.
        role: what it is in the run, for messages.
        read: the task's output from the model's raw output and attention mask (`Task.read_output`); the
            logits when None.
        """
        self.architecture = architecture_of(model, role)
        self.read = read or (lambda output, attention_mask: head_logits(output))
        self._recording: frozenset[str] = frozenset()
        self._captured: dict[str, list[Tensor]] = {"queries": [], "keys": [], "values": []}
        for layer in self.architecture.layers(model):
            self.architecture.capture(model, layer, self._record)
        self._takes_token_types = takes_token_types(model)

    def _record(self, kind: str, make: Callable[[], Tensor]) -> None:
        if kind in self._recording:
            self._captured[kind].append(make())

    def run(self, model: nn.Module, batch: Mapping[str, Tensor], needs: frozenset[str]) -> Features:
        """One forward pass of `model` on `batch`, recording the features named in `needs`."""
        recording = set()
        if "attentions" in needs:
            recording |= {"queries", "keys"}
        if "values" in needs:
            recording.add("values")
        inputs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
        if self._takes_token_types and "token_type_ids" in batch:
            inputs["token_type_ids"] = batch["token_type_ids"]
        want_hidden = bool(needs & {"hidden_states", "pooled"})
        self._recording = frozenset(recording)
        try:
            output = model(**inputs, output_hidden_states=want_hidden)
        finally:
            self._recording = frozenset()
            captured = {kind: tuple(seen) or None for kind, seen in self._captured.items()}
            for seen in self._captured.values():
                seen.clear()
        hidden = tuple(output.hidden_states) if want_hidden else None
        return Features(
            logits=self.read(output, batch["attention_mask"]),
            attention_mask=batch["attention_mask"],
            hidden_states=hidden,
            pooled=hidden[-1][:, 0] if hidden is not None else None,
            **captured,
        )
