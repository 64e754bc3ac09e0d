"""The static embedding student: a sentence is the weighted mean of its word pieces' vectors, a table lookup with
no network, hundreds of times faster than a Transformer on a CPU.

It starts the way model2vec starts (Tulkens and van Dongen, 2024): each vocabulary entry's vector is the
teacher's output for that word piece alone, reduced by PCA, and its weight follows Zipf's law as SIF weighting
does (rarer pieces count more). Then, unlike model2vec, it is trained against the teacher's sentence vectors on
the corpus, vectors and weights both. It exports in model2vec's layout, so `StaticModel.from_pretrained` loads it.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from distill import (
    STUDENT_META,
    Anatomy,
    DistillError,
    ExportFormat,
    Features,
    Student,
    StudentClassifier,
    StudentConfig,
    Task,
    Teacher,
    hookimpl,
    require_teacher_model,
)
from distill import reduce_to as reduced

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

MODEL2VEC_CONFIG = {"model_type": "model2vec", "architectures": ["StaticModel"]}


class StaticEmbeddingModel(Student):
    """Per text: Σ wᵢ·vᵢ over its word pieces, divided by their count, then unit length if the task's vectors are.

    Special pieces ([CLS], [SEP], padding, [UNK]) are left out, as model2vec leaves them out when it tokenises.
    """

    family = "static"

    def __init__(self, vocab_size: int, dim: int, normalize: bool, ignored: list[int]) -> None:
        super().__init__()
        self.architecture = {"vocab_size": vocab_size, "dim": dim, "normalize": normalize, "ignored": ignored}
        self.vectors = nn.Embedding(vocab_size, dim)
        self.weights = nn.Parameter(torch.ones(vocab_size))
        counted = torch.ones(vocab_size, dtype=torch.bool)
        counted[ignored] = False
        self.register_buffer("counted", counted, persistent=False)  # a lookup, which ONNX can trace
        self.normalize = normalize
        self.anatomy = Anatomy(family=self.family, provides=frozenset({"logits"}), hidden_size=dim, num_labels=dim)

    def forward(self, batch: Mapping[str, Tensor], needs: frozenset[str]) -> Features:
        ids = batch["input_ids"]
        kept = batch["attention_mask"].bool() & self.counted[ids]
        summed = F.embedding_bag(ids, self.vectors.weight, per_sample_weights=self.weights[ids] * kept, mode="sum")
        if self.normalize:  # unit length: dividing by the count first would change nothing
            vectors = F.normalize(summed, dim=-1)
        else:
            vectors = summed / kept.sum(1, keepdim=True).clamp(min=1)
        return Features(logits=vectors, attention_mask=batch["attention_mask"])

    def no_weight_decay(self) -> set[str]:
        return {"weights"}  # a weight decayed toward 0 would silence its word piece

    def save(self, directory: Path) -> None:
        """model2vec's layout (embeddings and weights in model.safetensors, its config.json), plus distill's meta
        file; the tokenizer is saved beside it by the export."""
        directory = Path(directory)
        tensors = {"embeddings": self.vectors.weight.detach().contiguous(), "weights": self.weights.detach()}
        save_file(tensors, str(directory / "model.safetensors"))
        dim = self.architecture["dim"]
        config = {**MODEL2VEC_CONFIG, "hidden_dim": dim, "apply_pca": dim, "normalize": self.normalize}
        (directory / "config.json").write_text(json.dumps(config, indent=2))
        meta = {"family": self.family, "architecture": self.architecture}
        (directory / STUDENT_META).write_text(json.dumps(meta, indent=2))

    @classmethod
    def load(cls, folder: Path) -> StaticEmbeddingModel:
        from transformers import AutoTokenizer

        meta = json.loads((Path(folder) / STUDENT_META).read_text())
        ignored = AutoTokenizer.from_pretrained(folder).all_special_ids  # renumbered, if the vocabulary was cut
        student = cls(**{**meta["architecture"], "ignored": ignored})
        tensors = load_file(str(Path(folder) / "model.safetensors"))
        student.load_state_dict({"vectors.weight": tensors["embeddings"], "weights": tensors["weights"]})
        return student


def piece_vectors(teacher: Teacher, task: Task, batch_size: int = 1024) -> Tensor:
    """(vocabulary, width): the teacher's pooled output for every word piece alone, as `[CLS] piece [SEP]`, before
    any normalisation (unit-length piece vectors start 2 MRR@10 points lower on the SQuAD sample: the norm
    carries how much a piece says)."""
    raw = copy.copy(task)
    raw.normalize = False
    tokenizer = teacher.tokenizer
    first = tokenizer.cls_token_id if tokenizer.cls_token_id is not None else tokenizer.bos_token_id
    last = tokenizer.sep_token_id if tokenizer.sep_token_id is not None else tokenizer.eos_token_id
    outputs = []
    for chunk in torch.arange(len(tokenizer)).split(batch_size):
        columns = [torch.full_like(chunk, i) for i in (first,) if i is not None]
        columns += [chunk, *(torch.full_like(chunk, i) for i in (last,) if i is not None)]
        ids = torch.stack(columns, dim=1)
        mask = torch.ones_like(ids)
        outputs.append(raw.read_output(teacher.model(input_ids=ids, attention_mask=mask), mask).float())
    return torch.cat(outputs)


def zipf_weights(count: int, sif_coefficient: float) -> Tensor:
    """SIF weights a / (a + p) with p the Zipf probability of each rank (a vocabulary's ids roughly follow
    frequency): frequent pieces weigh little, rare ones nearly 1."""
    ranks = torch.arange(1, count + 1, dtype=torch.float64)
    probability = (1 / ranks) / (1 / ranks).sum()
    return (sif_coefficient / (sif_coefficient + probability)).float()


@dataclass
class StaticEmbeddingStudent(StudentConfig):
    """A static embedding model for an embedding task: word-piece vectors and weights over the teacher's
    vocabulary, started from the teacher (model2vec's start) and then trained.

    Attributes:
        dim: the vectors' width (PCA of the teacher's, which must be at least this wide).
        sif_coefficient: a in the starting weights a / (a + p(piece)); smaller favours rare pieces more.
    """

    dim: int = 256
    sif_coefficient: float = 1e-4

    student_class: ClassVar[type[Student]] = StaticEmbeddingModel

    def build(self, teacher: Teacher | None, task: Task) -> StaticEmbeddingModel:
        if task.output != "embedding":
            raise DistillError(
                f"StaticEmbeddingStudent makes one vector per text; task {task.name} outputs {task.output}: use "
                f"it with SentenceEmbedding, or choose another student"
            )
        require_teacher_model(teacher, "StaticEmbeddingStudent starts from the word-piece vectors")
        if not 0 < self.sif_coefficient < 1 or self.dim < 1:
            raise DistillError("StaticEmbeddingStudent needs dim >= 1 and 0 < sif_coefficient < 1")
        tokenizer = teacher.tokenizer
        if not getattr(tokenizer, "is_fast", False):
            raise DistillError(
                f"the teacher's tokenizer ({type(tokenizer).__name__}) has no fast (tokenizer.json) form, which a "
                f"static export needs for model2vec to tokenise as training did: give a teacher whose folder holds "
                f"tokenizer.json"
            )
        with torch.no_grad():
            vectors = reduced(piece_vectors(teacher, task), self.dim)
        ignored = sorted(set(tokenizer.all_special_ids))
        model = StaticEmbeddingModel(len(tokenizer), self.dim, bool(getattr(task, "normalize", False)), ignored)
        with torch.no_grad():
            model.vectors.weight.copy_(vectors)
            model.weights.copy_(zipf_weights(len(tokenizer), self.sif_coefficient))
        return model


class Model2VecFolder(ExportFormat):
    """A model2vec folder (config.json of model_type "model2vec"): a static export, or a model model2vec made
    itself, served with the same maths as model2vec (special pieces left out of the mean). Asked first: model2vec
    also writes a modules.json, which sentence-transformers folders are recognised by."""

    order = -1

    @classmethod
    def recognises(cls, folder: Path) -> bool:
        """model2vec's config, or a sentence-transformers module list of one StaticEmbedding (what model2vec
        writes for a model it did not distil itself)."""
        config, modules = Path(folder) / "config.json", Path(folder) / "modules.json"
        if config.is_file() and json.loads(config.read_text()).get("model_type") == "model2vec":
            return True
        kinds = [m.get("type", "") for m in json.loads(modules.read_text())] if modules.is_file() else []
        return bool(kinds) and kinds[0].endswith("StaticEmbedding")

    @classmethod
    def load(cls, folder: Path, trust_remote_code: bool) -> tuple[nn.Module, PreTrainedTokenizerBase]:
        from transformers import AutoTokenizer, PreTrainedTokenizerFast

        tensors = load_file(str(Path(folder) / "model.safetensors"))
        if "mapping" in tensors or "embeddings" not in tensors:
            raise DistillError(f"{folder} is a model2vec folder distill does not read (a quantised vocabulary)")
        if (Path(folder) / "tokenizer_config.json").is_file():
            tokenizer = AutoTokenizer.from_pretrained(folder)
        else:  # model2vec's own: tokenizer.json alone, its special pieces marked there
            tokenizer = PreTrainedTokenizerFast(tokenizer_file=str(Path(folder) / "tokenizer.json"))
            special = [t.content for t in tokenizer.added_tokens_decoder.values() if t.special]
            tokenizer.pad_token = next((t for t in special if "pad" in t.lower()), special[0] if special else None)
        config = json.loads((Path(folder) / "config.json").read_text())
        ignored = sorted(
            {*tokenizer.all_special_ids, *(i for i, t in tokenizer.added_tokens_decoder.items() if t.special)}
        )
        vocab, dim = tensors["embeddings"].shape
        model = StaticEmbeddingModel(vocab, dim, bool(config.get("normalize", False)), ignored)
        weights = tensors.get("weights", torch.ones(vocab))
        model.load_state_dict({"vectors.weight": tensors["embeddings"].float(), "weights": weights.float()})
        return StudentClassifier(model), tokenizer


@hookimpl
def distill_register_students() -> list[type]:
    return [StaticEmbeddingStudent]


@hookimpl
def distill_register_export_formats() -> list[type]:
    return [Model2VecFolder]
