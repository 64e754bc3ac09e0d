"""A student that is a Hugging Face sequence classifier (a smaller BERT, or a pretrained encoder)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from safetensors.torch import save_file
from torch import Tensor, nn

from distill import FEATURE_NAMES, Anatomy, Features, Student, Task, TransformerTap

if TYPE_CHECKING:
    from transformers import PreTrainedModel


class TransformerStudent(Student):
    """Wraps a Hugging Face classifier; exports in Hugging Face format so `from_pretrained` loads it."""

    family = "transformer"

    def __init__(self, model: PreTrainedModel, family: str, task: Task | None = None) -> None:
        """Args:
        model: the Hugging Face model.
        family: its family's name.
        task: the run's task, which reads the model's output (`Task.read_output`); the logits when None.
        """
        super().__init__()
        self.family = family
        self.model = model
        config = model.config
        self.tap = TransformerTap(model, role="student", read=task.read_output if task is not None else None)
        self.anatomy = Anatomy(
            family=family,
            provides=FEATURE_NAMES,
            num_layers=config.num_hidden_layers,
            hidden_size=config.hidden_size,
            num_heads=config.num_attention_heads,
            num_labels=task.output_width(config) if task is not None else config.num_labels,
        )

    def forward(self, batch: Mapping[str, Tensor], needs: frozenset[str]) -> Features:
        return self.tap.run(self.model, batch, needs)

    def save(self, directory: Path) -> None:
        """Hugging Face format: `AutoModelForSequenceClassification.from_pretrained` loads it without distill.

        Weights shared across layers (which save_pretrained refuses) are written once under their first name;
        distill's loader re-ties them from the export's structure records.
        """
        if (unique := shared_once(self.model)) is None:
            self.model.save_pretrained(directory)
            return
        self.model.config.save_pretrained(directory)
        save_file(unique, str(Path(directory) / "model.safetensors"), metadata={"format": "pt"})


def shared_once(model: nn.Module) -> dict[str, Tensor] | None:
    """The state dict with each tensor under its first name only, or None when no tensor has two names."""
    unique: dict[str, Tensor] = {}
    seen: set[int] = set()
    for name, tensor in model.state_dict(keep_vars=True).items():
        if id(tensor) not in seen:
            seen.add(id(tensor))
            unique[name] = tensor.detach().contiguous()
    return None if len(unique) == len(model.state_dict()) else unique
