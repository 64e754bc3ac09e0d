"""GLUE data: a local folder in GLUE's TSV layout, or the hub; tokenised once, cached, padded per batch."""

from __future__ import annotations

import csv
import hashlib
import json
import sys
from pathlib import Path
from typing import Literal

import datasets
import pyarrow.compute
import torch
from lightning.pytorch import LightningDataModule
from torch.utils.data import DataLoader, DistributedSampler
from transformers import DataCollatorWithPadding, PreTrainedTokenizerBase

from distill.errors import DistillError
from distill.tasks import GlueTask, get_task
from distill.teacher import Teacher
from distill.training.sampling import EpochSeededSampler, LengthGroupedSampler, ResumableLoader
from distill.training.transfer import TransferSet, build_transfer_set

csv.field_size_limit(sys.maxsize)  # some GLUE rows hold long passages

MODEL_COLUMNS = ["input_ids", "attention_mask", "token_type_ids", "labels", "idx"]
Batching = Literal["length_grouped", "random"]


def read_glue_tsv(path: Path, task: GlueTask, limit: int | None = None) -> dict[str, list]:
    """Read one GLUE TSV split into text columns, `labels` (class ids or floats) and `idx` (row number).

    Quoting is off: GLUE sentences contain unbalanced quote characters that a CSV parser would join into one field.

    Raises:
        DistillError: the file is missing, or a row has the wrong number of fields or an unknown label
            (the message gives the line number).
    """
    if not path.is_file():
        raise DistillError(
            f"data file {path} does not exist: data.data_dir must be a folder in GLUE's TSV layout "
            f"holding train.tsv and {task.dev_file} for {task.name}"
        )
    texts: list[list[str]] = [[] for _ in task.text_columns]
    labels: list[int | float] = []
    with path.open(newline="", encoding="utf-8") as handle:
        rows = csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
        header = task.header or next(rows, None) or []
        positions = _column_positions(path, header, task)
        first_line = 1 if task.header else 2
        for line_number, row in enumerate(rows, start=first_line):
            if limit is not None and len(labels) >= limit:
                break
            if len(row) != len(header):
                raise DistillError(
                    f"{path}, line {line_number}: expected {len(header)} tab-separated fields "
                    f"({', '.join(header)}), found {len(row)}. Fix or delete that line."
                )
            for column, position in zip(texts, positions[:-1], strict=True):
                column.append(row[position])
            labels.append(_parse_label(row[positions[-1]], task, path, line_number))
    return {**dict(zip(task.text_columns, texts, strict=True)), "labels": labels, "idx": list(range(len(labels)))}


def _column_positions(path: Path, header: list[str], task: GlueTask) -> list[int]:
    wanted = [*task.text_columns, task.label_column]
    missing = [name for name in wanted if name not in header]
    if missing:
        raise DistillError(
            f"{path}: header lacks column(s) {missing} needed for {task.name}; found {header}. "
            f"Is data.data_dir the folder for task {task.name}?"
        )
    return [header.index(name) for name in wanted]


def _parse_label(raw: str, task: GlueTask, path: Path, line_number: int) -> int | float:
    if task.labels is None:
        try:
            return float(raw)
        except ValueError:
            raise DistillError(f"{path}, line {line_number}: label {raw!r} is not a number") from None
    if raw not in task.labels:
        raise DistillError(f"{path}, line {line_number}: label {raw!r} is not one of {list(task.labels)}")
    return task.labels.index(raw)


def load_glue_from_hub(task: GlueTask, split: str) -> datasets.Dataset:
    """`glue/<task>` from the Hugging Face hub.

    Raises:
        DistillError: the hub cannot be reached (offline, or HF_DATASETS_OFFLINE=1) and nothing is cached.
    """
    try:
        return datasets.load_dataset("glue", task.name, split=split)
    except Exception as error:  # datasets raises a different type for each way of being offline
        raise DistillError(
            f"could not load glue/{task.name} ({split}) from the Hugging Face hub ({type(error).__name__}); "
            f"offline, point data.data_dir (for distill bench: --data_dir) at a local folder in GLUE's TSV layout "
            f"(train.tsv, {task.dev_file}), e.g. ../shared/data/glue/{task.folder}"
        ) from None


def _fingerprint(*parts: object) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part if isinstance(part, bytes) else repr(part).encode())
    return digest.hexdigest()[:16]


def embedding_digest(matrix: torch.Tensor) -> str:
    """Changes whenever the embedding weights change."""
    return _fingerprint(matrix.detach().cpu().numpy().tobytes())


def tokenizer_fingerprint(tokenizer: PreTrainedTokenizerBase) -> str:
    """Changes whenever the vocabulary or the tokenisation rules change.

    The backend's truncation and padding state is left out: it changes as a side effect of every call.
    """
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return _fingerprint(type(tokenizer).__name__, sorted(tokenizer.get_vocab().items()))
    rules = {k: v for k, v in json.loads(backend.to_str()).items() if k not in ("truncation", "padding")}
    return _fingerprint(type(tokenizer).__name__, json.dumps(rules, sort_keys=True))


class GlueDataModule(LightningDataModule):
    """A GLUE task, tokenised with the teacher's tokenizer. Every example keeps its row index as `idx`."""

    def __init__(
        self,
        task: str = "sst2",
        data_dir: str | None = None,
        tokenizer: PreTrainedTokenizerBase | None = None,
        max_length: int = 128,
        batch_size: int = 32,
        eval_batch_size: int = 64,
        train_limit: int | None = None,
        eval_limit: int | None = None,
        num_workers: int = 0,
        cache_dir: str | None = None,
        transfer: TransferSet | None = None,
        teacher: Teacher | None = None,
        seed: int = 0,
        batching: Batching = "length_grouped",
        length_pool: int = 50,
    ) -> None:
        """Args:
        task: GLUE task name (sst2, cola, mrpc, qqp, stsb, mnli, qnli, rte).
        data_dir: folder in GLUE's TSV layout (train.tsv, dev.tsv); None loads `glue/<task>` from the hub.
        tokenizer: set by the CLI from the model (the teacher's tokenizer); not a YAML key.
        max_length: truncation length in tokens.
        batch_size: training batch size.
        eval_batch_size: validation, test and prediction batch size.
        train_limit: use only the first N training rows (quick runs and tests).
        eval_limit: use only the first N dev rows.
        num_workers: DataLoader worker processes.
        cache_dir: where tokenised splits are cached; defaults to the datasets cache.
        transfer: grow the training split into an augmented transfer set (Tang et al.); None trains on it as is.
        teacher: set by the CLI from the model; the transfer set finds neighbour words in its embeddings.
        seed: seeds the shuffle of every epoch (with the epoch number), so runs and resumed runs agree.
        batching: "length_grouped" batches training sentences of similar length, so little compute goes into
            padding; "random" draws every batch from the whole shuffle.
        length_pool: with length grouping, how many batches of shuffled examples are sorted by length together:
            larger pools pad less but make batches less random.
        """
        super().__init__()
        self.task = get_task(task)
        self.data_dir = Path(data_dir).expanduser() if data_dir else None
        if self.data_dir is not None and not self.data_dir.is_dir():
            raise DistillError(
                f"data.data_dir {data_dir!r} is not a folder: point it at a GLUE task folder such as "
                f"../shared/data/glue/{self.task.folder}, or remove it to load from the hub"
            )
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size
        self.limits = {"train": train_limit, "dev": eval_limit}
        self.num_workers = num_workers
        self.cache_dir = Path(cache_dir or datasets.config.HF_DATASETS_CACHE) / "distill"
        self.transfer = transfer
        self.teacher = teacher
        self.seed = seed
        if length_pool < 1:
            raise DistillError(f"data.length_pool must be at least 1 batch, got {length_pool}")
        self.batching, self.length_pool = batching, length_pool
        self.splits: dict[str, datasets.Dataset] = {}
        self.fingerprints: dict[str, str] = {}  # split -> key of its exact tokenised contents

    def setup(self, stage: str | None = None) -> None:
        if self.tokenizer is None:
            raise DistillError("GlueDataModule needs a tokenizer: pass the teacher's (the CLI does this for you)")
        for split in ("train", "dev"):
            if split not in self.splits:
                self.splits[split] = self._tokenised(split)

    def _raw(self, split: str) -> tuple[datasets.Dataset, str]:
        """The split as text, with a fingerprint of its source."""
        limit = self.limits[split]
        if self.data_dir is None:
            raw = load_glue_from_hub(self.task, "train" if split == "train" else self.task.hub_dev_split)
            raw = raw.rename_columns(dict(zip(self.task.hub_text_columns, self.task.text_columns, strict=True)))
            raw = raw.rename_column("label", "labels").select(range(min(limit or len(raw), len(raw))))
            return raw, raw._fingerprint
        path = self.data_dir / ("train.tsv" if split == "train" else self.task.dev_file)
        rows = read_glue_tsv(path, self.task, limit)
        return datasets.Dataset.from_dict(rows), _fingerprint(path.read_bytes(), limit)

    def _tokenised(self, split: str) -> datasets.Dataset:
        raw, source = self._raw(split)
        if len(raw) == 0:
            where = self.data_dir or f"glue/{self.task.name} on the hub"
            raise DistillError(f"the {split} split of {where} has no rows: give a file with at least one example")
        key = _fingerprint(source, tokenizer_fingerprint(self.tokenizer), self.max_length, self.task.name)
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        tokenised = raw.map(
            self._tokenise,
            batched=True,
            remove_columns=list(self.task.text_columns),
            cache_file_name=str(self.cache_dir / f"{self.task.name}-{split}-{key}.arrow"),
            # `key` already names the exact result; without it datasets pickles this whole module (the teacher
            # included) to fingerprint the transform, seconds of every run spent outside training.
            new_fingerprint=key,
            desc=f"tokenising {self.task.name} {split}",
        )
        tokenised = tokenised.select_columns([c for c in MODEL_COLUMNS if c in tokenised.column_names])
        self.fingerprints[split] = key
        if split == "train" and self.transfer is not None:
            return self._transfer_set(tokenised, key)
        return tokenised

    def _transfer_set(self, train: datasets.Dataset, key: str) -> datasets.Dataset:
        """The augmented transfer set, built once per (split, tokenizer, settings, teacher embeddings)."""
        if self.teacher is None:
            raise DistillError(
                "data.transfer needs the teacher's embeddings to find neighbour words: set model.teacher"
            )
        embeddings = self.teacher.model.get_input_embeddings().weight
        self.fingerprints["train"] = _fingerprint(key, self.transfer, embedding_digest(embeddings))
        folder = self.cache_dir / f"{self.task.name}-transfer-{self.fingerprints['train']}"
        if not folder.is_dir():
            built = build_transfer_set(train, self.tokenizer, embeddings, self.transfer, self.task.is_pair)
            scratch = folder.with_name(folder.name + ".partial")
            built.save_to_disk(str(scratch))
            scratch.rename(folder)
        return datasets.load_from_disk(str(folder))

    def _check_validation_interval(self, batches: int) -> None:
        """Lightning refuses an integer val_check_interval longer than an epoch with a traceback; say it plainly."""
        trainer = self.trainer
        if trainer is None or not isinstance(trainer.val_check_interval, int) or not trainer.limit_val_batches:
            return
        limit = trainer.limit_train_batches
        batches = min(batches, limit) if isinstance(limit, int) else int(batches * limit)
        if 0 < batches < trainer.val_check_interval and trainer.check_val_every_n_epoch is not None:
            raise DistillError(
                f"trainer.val_check_interval {trainer.val_check_interval} is longer than an epoch ({batches} "
                f"batches): give at most {batches}, a fraction of an epoch such as 0.25, or set "
                f"trainer.check_val_every_n_epoch: null to count batches across epochs"
            )

    def _tokenise(self, rows: dict[str, list]) -> dict[str, list]:
        texts = [rows[column] for column in self.task.text_columns]
        return self.tokenizer(*texts, truncation=True, max_length=self.max_length)

    def _replicas(self) -> tuple[int, int]:
        """(rank, world size) of this process; (0, 1) outside distributed training."""
        trainer = self.trainer
        return (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)

    def _loader_generator(self) -> torch.Generator:
        """A loader's own generator: building its iterator (each epoch, each validation) then draws nothing from
        the global random stream that dropout uses, so where a run is resumed cannot change its draws."""
        return torch.Generator().manual_seed(self.seed)

    def _loader(self, split: str) -> DataLoader:
        """Evaluation: each rank scores its share of the examples; torchmetrics adds the shares up."""
        rank, replicas = self._replicas()
        sharded = DistributedSampler(self.splits[split], replicas, rank, shuffle=False) if replicas > 1 else None
        return DataLoader(
            self.splits[split],
            sampler=sharded,
            batch_size=self.eval_batch_size,
            collate_fn=DataCollatorWithPadding(self.tokenizer),
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            generator=self._loader_generator(),
        )

    def train_dataloader(self) -> DataLoader:
        """Shuffled by (seed, epoch), sharded across ranks, resumable mid-epoch: an interrupted run continues
        exactly. The samplers shard themselves, so the CLI sets `use_distributed_sampler: false`."""
        train = self.splits["train"]
        loader = ResumableLoader(
            train,
            sampler=self._train_sampler(),
            batch_size=self.batch_size,
            collate_fn=DataCollatorWithPadding(self.tokenizer),
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            generator=self._loader_generator(),
        )
        self._check_validation_interval(len(loader))
        return loader

    def _train_sampler(self) -> EpochSeededSampler:
        rank, replicas = self._replicas()
        train = self.splits["train"]
        if self.batching == "random":
            return EpochSeededSampler(len(train), seed=self.seed, rank=rank, replicas=replicas)
        ids = train.with_format("arrow")["input_ids"]
        lengths = torch.tensor(pyarrow.compute.list_value_length(ids).to_numpy(zero_copy_only=False))
        return LengthGroupedSampler(lengths, self.batch_size, self.seed, rank, replicas, self.length_pool)

    def val_dataloader(self) -> DataLoader:
        return self._loader("dev")

    def test_dataloader(self) -> DataLoader:
        """GLUE's test labels are hidden, so `distill test` scores the dev split."""
        return self._loader("dev")
