"""Sentence embeddings: one vector per text, learned from an embedding teacher on unlabelled text and scored by
retrieval (queries against a passage file).

The teacher is a sentence-transformers folder or hub id (its `modules.json` and `1_Pooling/config.json` give the
pooling and whether vectors are normalised), or a plain encoder with `pooling` stated. A Transformer student
exports in the same layout, so `SentenceTransformer(path)` loads it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from distill import (
    GROUP,
    UNLABELLED,
    DataSource,
    DistillError,
    ExportFormat,
    Task,
    TaskOutput,
    lazy_module,
    load_table,
    load_transformer,
)

if TYPE_CHECKING:
    from torchmetrics import MetricCollection
    from transformers import PreTrainedTokenizerBase

datasets = lazy_module("datasets")

Pooling = Literal["mean", "cls", "last"]
PASSAGE = "passage"  # per validation row: the passage's index, or -1 for a query
PAIR = "pair"  # per validation row of a scored-pairs file: the pair it belongs to (its score is the label)
AGREEMENT_ROWS = 2000  # texts whose pairwise similarities are compared with the teacher's (2M pairs)
CARRIED = (PASSAGE, PAIR, GROUP)  # per-row indices the collator hands the metrics and losses as tensors
MODULES = "modules.json"
POOLING_FOLDER = "1_Pooling"
_POOLING_KEYS = {"mean": "pooling_mode_mean_tokens", "cls": "pooling_mode_cls_token", "last": "pooling_mode_lasttoken"}


def sentence_transformer_settings(source: str) -> tuple[Pooling | None, bool | None]:
    """(pooling, normalise) as a sentence-transformers folder or hub repository states them; (None, None) for a
    plain encoder.

    Raises:
        DistillError: it holds a module distill does not reproduce (a Dense layer after pooling, say).
    """
    modules = _read(source, MODULES)
    if modules is None:
        return None, None
    kinds = {entry["type"].rsplit(".", 1)[-1]: entry.get("path", "") for entry in modules}
    if unknown := set(kinds) - {"Transformer", "Pooling", "Normalize"}:
        raise DistillError(
            f"teacher {source!r} has sentence-transformers module(s) {sorted(unknown)} after its encoder, which "
            f"distill does not reproduce: use a teacher of Transformer, Pooling and Normalize modules only"
        )
    settings = _read(source, f"{kinds['Pooling']}/config.json") if "Pooling" in kinds else None
    chosen = [mode for mode, key in _POOLING_KEYS.items() if settings and settings.get(key)]
    return (chosen[0] if len(chosen) == 1 else None), "Normalize" in kinds


def _read(source: str, name: str) -> Any:
    """A JSON file of a local folder or, for a hub id, of its repository (None when it has none)."""
    folder = Path(source).expanduser()
    if folder.is_dir():
        path = folder / name
        return json.loads(path.read_text()) if path.is_file() else None
    from huggingface_hub import hf_hub_download  # a hub id only
    from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError

    try:
        return json.loads(Path(hf_hub_download(source, name)).read_text())
    except (EntryNotFoundError, LocalEntryNotFoundError):
        return None


def pool(hidden: Tensor, attention_mask: Tensor, pooling: Pooling) -> Tensor:
    """One vector per row from (B, T, H) token states: the mean over real tokens, the first, or the last real one."""
    if pooling == "cls":
        return hidden[:, 0]
    mask = attention_mask.to(hidden.dtype).unsqueeze(-1)
    if pooling == "mean":
        return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
    last = attention_mask.long().cumsum(1).argmax(1)  # the last real position, on either padding side
    return hidden[torch.arange(len(hidden), device=hidden.device), last]


@dataclass
class SentenceEmbedding(Task):
    """One vector per text (semantic search, retrieval, clustering), distilled from an embedding teacher.

    Training rows are unlabelled text, or, with `group_columns`, groups of texts such as (query, positive) or
    (query, positive, negative): each row's texts train side by side in one batch, where MarginMSE reads the
    triplets. For retrieval, the validation file pairs each query with the id of its
    relevant passage, and `passages` holds the passages (id and text): the dev metrics are recall@1/5/10, MRR@10
    and nDCG@10. Without `passages`, the validation file holds scored pairs (`pair_columns`, `score_column`), and
    the dev metric is the Spearman correlation of their cosine similarities with the scores.

    Attributes:
        name: the task's name in cards and logs.
        text_column: the column holding each text, in the training corpus and the passage file.
        group_columns: the training file's columns holding each row's texts, such as [query, positive,
            negative]; None reads one text per row from `text_column`.
        pooling: mean, cls or last; None reads it from the teacher's sentence-transformers folder.
        normalize: unit-length vectors; None reads it from the teacher (a Normalize module) or, for a plain
            encoder, leaves them as they are.
        passages: the passage file (CSV, TSV, JSON, JSONL or Parquet) retrieval is scored against.
        query_column: the validation file's column holding each query.
        relevant_column: the validation file's column holding the id of the query's relevant passage.
        id_column: the passage file's column holding each passage's id.
        pair_columns: a scored-pairs validation file's two text columns.
        score_column: a scored-pairs validation file's column holding each pair's score.
        width: the teacher's vectors' width, which students that are not Transformers output; None reads it from
            the teacher.
    """

    name: str = "embedding"
    text_column: str = "text"
    group_columns: list[str] | None = None
    pooling: Pooling | None = None
    normalize: bool | None = None
    passages: str | None = None
    query_column: str = "query"
    relevant_column: str = "passage_id"
    id_column: str = "id"
    pair_columns: tuple[str, str] = ("sentence1", "sentence2")
    score_column: str = "score"
    width: int | None = None

    head: ClassVar[str] = "AutoModel"
    output: ClassVar[str] = "embedding"
    labels: ClassVar[None] = None

    def __post_init__(self) -> None:
        if self.group_columns is not None and len(self.group_columns) < 2:
            raise DistillError(
                f"data.task.init_args.group_columns {self.group_columns} names one column: give two or more, such "
                f"as [query, positive, negative], or use text_column for one text per row"
            )

    @property
    def text_columns(self) -> list[str]:
        return [self.text_column]

    @property
    def num_labels(self) -> int:
        if self.width is None:
            raise DistillError("SentenceEmbedding.width is not known yet: it is read from the teacher (model.teacher)")
        return self.width

    def head_config(self) -> dict[str, Any]:
        return {}

    def teacher_order(self, id2label: Mapping[int, str], teacher: str) -> list[int] | None:
        return None

    # --- the teacher's pooling ----------------------------------------------------------------------------------

    def adopt_teacher(self, source: str) -> None:
        from transformers import AutoConfig  # loads the teacher's settings only

        pooling, normalize = sentence_transformer_settings(source)
        self.pooling = self.pooling or pooling
        if self.pooling is None:
            raise DistillError(
                f"teacher {source!r} says nothing of its pooling (no sentence-transformers {MODULES} with a Pooling "
                f"module): give data.task.init_args.pooling: mean, cls or last"
            )
        self.normalize = bool(normalize) if self.normalize is None else self.normalize
        self.width = self.width or AutoConfig.from_pretrained(source).hidden_size

    def read_output(self, output: Any, attention_mask: Tensor) -> Tensor:
        vectors = pool(output.last_hidden_state, attention_mask, self.pooling or "mean")
        return F.normalize(vectors, dim=-1) if self.normalize else vectors

    def output_width(self, config: Any) -> int:
        return config.hidden_size  # pooling keeps a Transformer's width

    def export_files(self, folder: Path) -> None:
        """sentence-transformers' layout beside a Transformer export: `SentenceTransformer(folder)` loads it with
        the same pooling and normalisation (a static student's folder is model2vec's own, and left alone)."""
        config = json.loads((folder / "config.json").read_text()) if (folder / "config.json").is_file() else {}
        if "model_type" not in config or config["model_type"] == "model2vec":
            return
        modules = [
            {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
            {"idx": 1, "name": "1", "path": POOLING_FOLDER, "type": "sentence_transformers.models.Pooling"},
        ]
        if self.normalize:
            modules.append(
                {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}
            )
        (folder / MODULES).write_text(json.dumps(modules, indent=2))
        settings = {
            "word_embedding_dimension": config["hidden_size"],
            "pooling_mode_max_tokens": False,
            "pooling_mode_mean_sqrt_len_tokens": False,
        }
        settings |= {key: mode == self.pooling for mode, key in _POOLING_KEYS.items()}
        (folder / POOLING_FOLDER).mkdir(exist_ok=True)
        (folder / POOLING_FOLDER / "config.json").write_text(json.dumps(settings, indent=2))  # fmt: skip

    # --- examples -----------------------------------------------------------------------------------------------

    def read(self, source: DataSource, split: str, limit: int | None = None) -> datasets.Dataset:
        """Training: the texts, unlabelled. Validation and test: the queries, each labelled with its relevant
        passage's index, followed by every passage; or, without passages, both texts of every scored pair."""
        if split == "train" and self.group_columns:
            return self._groups(source, split, limit)
        if split == "train":
            return self.read_unlabelled(source, split, limit)
        if self.passages is None:
            return self._scored_pairs(source, split, limit)
        columns = {self.query_column: "query_column", self.relevant_column: "relevant_column"}
        raw = self.load_columns(source, split, columns, limit)
        passages = load_table(Path(self.passages).expanduser(), "data.task.init_args.passages")
        if missing := [c for c in (self.id_column, self.text_column) if c not in passages.column_names]:
            raise DistillError(
                f"data.task.init_args.passages ({self.passages}) has no column(s) {missing}; its columns are "
                f"{passages.column_names}: name them in data.task.init_args (id_column, text_column)"
            )
        index = {str(pid): position for position, pid in enumerate(passages[self.id_column])}
        queries = self._texts(raw[self.query_column], source, split)
        targets = []
        for row, pid in enumerate(raw[self.relevant_column]):
            if str(pid) not in index:
                raise DistillError(
                    f"{source.where(split, row)}: relevant passage id {pid!r} is not in the passage file "
                    f"{self.passages}: fix the id, or add that passage"
                )
            targets.append(index[str(pid)])
        texts = queries + self._texts(passages[self.text_column], None, "passages")
        return self._examples(texts, labels=targets + [UNLABELLED] * len(index),
                              passage=[-1] * len(queries) + list(range(len(index))))  # fmt: skip

    def _scored_pairs(self, source: DataSource, split: str, limit: int | None) -> datasets.Dataset:
        """Both texts of each pair, one after the other, each labelled with the pair's score."""
        first, second = self.pair_columns
        keys = {first: "pair_columns", second: "pair_columns", self.score_column: "score_column (or give passages)"}
        raw = self.load_columns(source, split, keys, limit)
        a, b = self._texts(raw[first], source, split), self._texts(raw[second], source, split)
        scores = []
        for row, value in enumerate(raw[self.score_column]):
            try:
                scores.append(float(value))
            except (TypeError, ValueError):
                raise DistillError(f"{source.where(split, row)}: score {value!r} is not a number") from None
        texts = [text for pair in zip(a, b, strict=True) for text in pair]
        return self._examples(texts, labels=[score for score in scores for _ in range(2)],
                              pair=[i // 2 for i in range(len(texts))])  # fmt: skip

    def read_unlabelled(self, source: DataSource, split: str, limit: int | None = None) -> datasets.Dataset:
        raw = self.load_columns(source, split, {self.text_column: "text_column"}, limit)
        return self._examples(self._texts(raw[self.text_column], source, split))

    def _groups(self, source: DataSource, split: str, limit: int | None) -> datasets.Dataset:
        """Each row's texts (`group_columns`) one after the other, sharing the row's number as their group."""
        raw = self.load_columns(source, split, dict.fromkeys(self.group_columns, "group_columns"), limit)
        columns = [self._texts(raw[column], source, split) for column in self.group_columns]
        texts = [text for row in zip(*columns, strict=True) for text in row]
        width = len(self.group_columns)
        return self._examples(texts, group=[i // width for i in range(len(texts))])

    def _examples(
        self,
        texts: list[str],
        labels: list[Any] | None = None,
        passage: list[int] | None = None,
        pair: list[int] | None = None,
        group: list[int] | None = None,
    ) -> datasets.Dataset:
        """The texts with the columns every split carries; what a split does not use is -1 (or UNLABELLED)."""
        absent = [-1] * len(texts)
        return datasets.Dataset.from_dict({
            self.text_column: texts,
            "labels": labels if labels is not None else [UNLABELLED] * len(texts),
            PASSAGE: passage or absent,
            PAIR: pair or absent,
            GROUP: group or absent,
            "idx": list(range(len(texts))),
        })  # fmt: skip

    def _texts(self, values: list[Any], source: DataSource | None, split: str) -> list[str]:
        for row, value in enumerate(values):
            if not isinstance(value, str) or not value.strip():
                place = source.where(split, row) if source is not None else f"{self.passages}, row {row + 1}"
                raise DistillError(f"{place}: {value!r} is not a text: fix that row or drop it")
        return list(values)

    def side_files(self) -> list[Path]:
        return [Path(self.passages).expanduser()] if self.passages else []

    def encode(self, rows: dict[str, list], tokenizer: PreTrainedTokenizerBase, max_length: int) -> dict[str, list]:
        encoded = tokenizer(rows[self.text_column], truncation=True, max_length=max_length)
        return {**encoded, **{key: rows[key] for key in CARRIED if key in rows}}

    def collator(self, tokenizer: PreTrainedTokenizerBase) -> Any:
        from transformers import DataCollatorWithPadding

        return _CarryPassages(DataCollatorWithPadding(tokenizer))

    # --- training and evaluation --------------------------------------------------------------------------------

    def label_loss(self, logits: Tensor, labels: Tensor) -> Tensor:
        return logits.sum() * 0.0  # no gold vectors: the teacher's are the only target

    def compared(self, logits: Tensor, batch: Mapping[str, Tensor]) -> Tensor:
        """The vectors the losses compare: unit length when the teacher's are."""
        return F.normalize(logits, dim=-1) if self.normalize else logits

    def build_metrics(self, prefix: str, sync: bool = True) -> MetricCollection:
        from torchmetrics import MetricCollection  # imported on first use: torchmetrics alone costs 2 s of start-up

        from distill.plugins.tasks.retrieval_scores import SCORES, PairScores, RetrievalScores

        if self.passages is None:
            return MetricCollection({"spearman": PairScores(sync_on_compute=sync)}, prefix=prefix)
        metrics = {name: RetrievalScores(name, sync_on_compute=sync) for name in SCORES}
        return MetricCollection(metrics, prefix=prefix, compute_groups=[list(SCORES)])

    @property
    def main_metric(self) -> str:
        return "mrr_at_10" if self.passages is not None else "spearman"

    def update_metrics(self, metrics: MetricCollection, logits: Tensor, batch: Mapping[str, Tensor]) -> None:
        if self.passages is None:
            metrics.update(logits, batch["labels"], batch[PAIR])
        else:
            metrics.update(logits, batch["labels"], batch[PASSAGE])

    def agreement(self, outputs: Sequence[Tensor], teacher: Sequence[Tensor]) -> dict[str, float]:
        """`teacher_cosine`: the mean cosine between each text's vector and the teacher's, where the widths meet
        (1 for the teacher). `teacher_similarity_r`: for any width, Pearson's r between the two models' cosine
        similarities over every pair of the first AGREEMENT_ROWS texts: how well the geometry retrieval reads is
        kept."""
        from distill.plugins.tasks.retrieval_scores import cosines

        mine, theirs = torch.cat(list(outputs)).float(), torch.cat(list(teacher)).float()
        rows = min(len(mine), AGREEMENT_ROWS)
        pairs = torch.triu_indices(rows, rows, offset=1)
        ours, reference = (cosines(v[:rows], v[:rows])[pairs[0], pairs[1]] for v in (mine, theirs))
        scores = {"teacher_similarity_r": float(torch.corrcoef(torch.stack([ours, reference]))[0, 1])}
        if mine.shape == theirs.shape:
            scores["teacher_cosine"] = float(F.cosine_similarity(mine, theirs, dim=-1).mean())
        return scores

    def predictions(self, logits: Tensor) -> Tensor:
        return logits

    def prediction_columns(
        self, logits: Tensor, batch: Mapping[str, Tensor], rows: Mapping[str, list]
    ) -> dict[str, list]:
        return {"embedding": logits.float().tolist()}


class _CarryPassages:
    """Padding, plus each row's passage and pair index (validation) and group (training) as tensors."""

    def __init__(self, pad: Any) -> None:
        self.pad = pad

    def __call__(self, rows: list[dict[str, Any]]) -> dict[str, Tensor]:
        carried = {key: torch.tensor([row.pop(key, -1) for row in rows]) for key in CARRIED}
        return {**self.pad(rows), **carried}


class SentenceTransformersFolder(ExportFormat):
    """A sentence-transformers folder (modules.json): an embedding export, or an embedding teacher."""

    marker = MODULES

    @classmethod
    def load(cls, folder: Path, trust_remote_code: bool) -> tuple[nn.Module, PreTrainedTokenizerBase]:
        from transformers import AutoTokenizer

        pooling, normalize = sentence_transformer_settings(str(folder))
        if pooling is None:
            raise DistillError(
                f"{folder}/{MODULES} names no Pooling module with one pooling mode: distill cannot serve it"
            )
        model = load_transformer(folder, "AutoModel", trust_remote_code)
        tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=trust_remote_code)
        return TaskOutput(model, SentenceEmbedding(pooling=pooling, normalize=bool(normalize))), tokenizer
