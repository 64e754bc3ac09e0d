"""A causal language model as the teacher: each label's score for a row is the log-probability the LM gives its
verbaliser after a prompt built from the row (zero- or few-shot), so a small encoder learns what the LM thinks.

    model:
      teacher:
        class_path: CausalLMTeacher
        init_args:
          model: Qwen/Qwen2.5-0.5B-Instruct
          prompt: "Review: {sentence}\\nSentiment:"
          verbalizers: {"0": " negative", "1": " positive"}
          tokenizer: sentence-transformers/all-MiniLM-L6-v2   # the students' vocabulary and layers

A multi-token verbaliser scores the sum of its tokens' log-probabilities. Every (row, label) continuation of a
batch goes through the LM in one forward pass, padded on the tokenizer's side with positions counted from each
sequence's first real token, so padding changes nothing. The teacher cache keeps the answers, so the LM runs once
per training example; it runs in bfloat16 on a GPU, in float32 on a CPU.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from distill import Anatomy, BaseTeacher, DistillError, Features, Task

Precision = Literal["auto", "bfloat16", "float16", "float32"]


class CausalLMTeacher(BaseTeacher):
    """Label scores from a causal LM's verbaliser log-probabilities. It gives logits only (losses that read
    hidden states are refused), for a task that picks one label per example (softmax).

    Its `model` and `tokenizer` are the encoder named by `tokenizer` (never run), or none: the student then
    brings its own tokenizer.
    """

    labels_new_rows = False  # it reads the text of the training examples it was given

    def __init__(
        self,
        model: str,
        prompt: str,
        verbalizers: Mapping[str, str | list[str]],
        few_shot: list[dict[str, Any]] | None = None,
        separator: str = "\n\n",
        batch_size: int = 8,
        precision: Precision = "auto",
        tokenizer: str | None = None,
        *,
        task: Task,
        trust_remote_code: bool = False,
    ) -> None:
        """Args:
        model: an `AutoModelForCausalLM` folder or hub id.
        prompt: the template each row fills, its text columns by name: "Review: {sentence}\\nSentiment:".
        verbalizers: label name -> the continuation that means it (" positive"), or several (their
            probabilities are added).
        few_shot: example rows (text columns and `label`) put before the row's prompt, each followed by its
            label's (first) verbaliser.
        separator: what goes between the few-shot examples and the row's prompt.
        batch_size: rows per LM forward pass (each row is as many sequences as there are verbalisers).
        precision: auto is bfloat16 on a GPU and float32 on a CPU.
        tokenizer: an encoder folder or hub id whose tokenizer the data is tokenised with and whose layers students
            may copy; None leaves the tokenizer to the student.
        task: the run's task; trust_remote_code: as for any teacher.
        """
        super().__init__()
        if task.output != "softmax" or task.per_token:
            raise DistillError(
                f"CausalLMTeacher scores one verbaliser per label, so the task must pick one label per example; "
                f"task {task.name} outputs {'per token' if task.per_token else task.output}: use another teacher"
            )
        names = list(task.labels)
        if sorted(verbalizers) != sorted(names):
            raise DistillError(
                f"CausalLMTeacher.verbalizers names labels {sorted(verbalizers)}, but task {task.name} has "
                f"{names}: give one verbaliser per label"
            )
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.source, self.task, self.prompt, self.separator = model, task, prompt, separator
        self.batch_size = batch_size
        self.choices = {name: [v] if isinstance(v, str) else list(v) for name, v in verbalizers.items()}
        self.lm = AutoModelForCausalLM.from_pretrained(model, trust_remote_code=trust_remote_code)
        self.lm.eval().requires_grad_(False)
        self.precision = precision
        self.lm_tokenizer = AutoTokenizer.from_pretrained(model, trust_remote_code=trust_remote_code)
        self.prefix = "".join(
            self._filled(row) + self.choices[str(row["label"])][0] + separator for row in (few_shot or [])
        )
        self.take_encoder(tokenizer, task, trust_remote_code)
        self.anatomy = Anatomy(family="causal_lm", provides=frozenset({"logits"}), num_labels=len(names))
        self.examples: Any = None  # the training examples, set by `prepare`

    def _filled(self, row: Mapping[str, Any]) -> str:
        try:
            return self.prompt.format(**row)
        except KeyError as missing:
            raise DistillError(
                f"CausalLMTeacher.prompt names field {missing} that the rows lack; they have {sorted(row)}"
            ) from None

    def prepare(self, data: Any) -> None:
        """Keep the training examples (their text is what the prompt reads), and set the LM's precision now that
        it is on its device."""
        self.examples = data.read("train")
        on_gpu = next(self.lm.parameters()).is_cuda
        dtype = {"auto": torch.bfloat16 if on_gpu else None, "bfloat16": torch.bfloat16, "float16": torch.float16,
                 "float32": None}[self.precision]  # fmt: skip
        if dtype is not None:
            self.lm.to(dtype)

    @torch.no_grad()
    def forward(self, batch: Mapping[str, Tensor], needs: frozenset[str]) -> Features:
        if self.examples is None:
            raise DistillError("CausalLMTeacher.prepare was not called: the run's data must be set up first")
        rows = self.examples.select(batch["idx"].tolist()).select_columns(list(self.task.text_columns))
        scores = self.score([dict(zip(rows.column_names, v, strict=True)) for v in zip(*rows.to_dict().values(),
                                                                                    strict=True)])  # fmt: skip
        return Features(logits=scores.to(batch["attention_mask"].device), attention_mask=batch["attention_mask"])

    @torch.no_grad()
    def score(self, rows: list[Mapping[str, Any]]) -> Tensor:
        """(rows, labels): each label's log-probability after each row's prompt, in the task's label order."""
        return torch.cat([self._scored(rows[i : i + self.batch_size]) for i in range(0, len(rows), self.batch_size)])

    def _scored(self, rows: list[Mapping[str, Any]]) -> Tensor:
        tokenizer = self.lm_tokenizer
        labels = list(self.task.labels)
        contexts = [tokenizer(self.prefix + self._filled(row)).input_ids for row in rows]
        endings = {
            (label, text): tokenizer(text, add_special_tokens=False).input_ids
            for label in labels
            for text in self.choices[label]
        }
        if empty := [text for (_, text), ids in endings.items() if not ids]:
            raise DistillError(f"CausalLMTeacher verbaliser(s) {empty} have no tokens: give each some text")
        sequences = [(r, key) for r in range(len(rows)) for key in endings]
        ids = [contexts[r] + endings[key] for r, key in sequences]
        log_probs = self._continuation_log_probs(ids, [len(endings[key]) for _, key in sequences])
        scores = torch.full((len(rows), len(labels)), float("-inf"), dtype=torch.float64)
        for (r, (label, _)), value in zip(sequences, log_probs.tolist(), strict=True):
            column = labels.index(label)
            scores[r, column] = torch.logaddexp(scores[r, column], torch.tensor(value, dtype=torch.float64))
        return scores.float()

    def _continuation_log_probs(self, ids: list[list[int]], ending: list[int]) -> Tensor:
        """Σ log P(token | everything before it) over each sequence's last `ending` tokens, for all sequences in
        one padded forward pass."""
        device = next(self.lm.parameters()).device
        width = max(map(len, ids))
        pad = self.lm_tokenizer.pad_token_id if self.lm_tokenizer.pad_token_id is not None else 0
        left = self.lm_tokenizer.padding_side == "left"
        tokens = torch.full((len(ids), width), pad, dtype=torch.long)
        mask = torch.zeros((len(ids), width), dtype=torch.long)
        for i, sequence in enumerate(ids):
            span = slice(width - len(sequence), width) if left else slice(0, len(sequence))
            tokens[i, span], mask[i, span] = torch.tensor(sequence), 1
        positions = (mask.cumsum(1) - 1).clamp(min=0)
        tokens, mask, positions = tokens.to(device), mask.to(device), positions.to(device)
        logits = self.lm(input_ids=tokens, attention_mask=mask, position_ids=positions).logits.float()
        predicted = F.log_softmax(logits[:, :-1], dim=-1).gather(-1, tokens[:, 1:].unsqueeze(-1)).squeeze(-1)
        ends = torch.tensor([width if left else len(s) for s in ids], device=device)  # one past the last token
        steps = torch.arange(1, width, device=device)  # predicted[:, j] scores token j + 1
        counted = (steps >= (ends - torch.tensor(ending, device=device)).unsqueeze(1)) & (steps < ends.unsqueeze(1))
        return (predicted * counted).sum(1).cpu()

    def fingerprint(self) -> str:
        settings = json.dumps([self.prompt, self.choices, self.prefix, str(self.lm.dtype)], sort_keys=True)
        return super().fingerprint() + hashlib.sha256(settings.encode()).hexdigest()[:8]
