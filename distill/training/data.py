"""A task's data: read by the task from files or the hub, tokenised once, cached, padded per batch."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import pyarrow.compute
import torch
from lightning.pytorch import LightningDataModule
from lightning.pytorch.utilities import rank_zero_warn
from torch import Tensor
from torch.utils.data import DataLoader
from transformers import PreTrainedTokenizerBase

from distill.augmentation import Augmentation
from distill.errors import DistillError
from distill.lazy import lazy_module
from distill.registry import find_preset
from distill.sources import DataFiles, DataSource, HubDataset
from distill.sources import fingerprint as _fingerprint
from distill.task import GROUP, Task
from distill.teacher import Teacher
from distill.training.corpus import Corpus
from distill.training.sampling import (
    EpochSeededSampler,
    GroupKeepingSampler,
    LengthGroupedSampler,
    LengthOrderedSampler,
    ResumableLoader,
)
from distill.training.tokenizations import STUDENT_PREFIX, PairedCollator

datasets = lazy_module("datasets")

WIRED_FROM_MODEL = ("tokenizer", "student_tokenizer", "teacher")  # filled when training starts; not YAML keys
MODEL_COLUMNS = ("labels", "idx")  # kept from a task's read rows; the rest is replaced by what it encodes
Batching = Literal["length_grouped", "random"]


def tokenizer_fingerprint(tokenizer: PreTrainedTokenizerBase) -> str:
    """Changes whenever the vocabulary or the tokenisation rules change.

    The backend's truncation and padding state is left out: it changes as a side effect of every call.
    """
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return _fingerprint(type(tokenizer).__name__, sorted(tokenizer.get_vocab().items()))
    rules = {k: v for k, v in json.loads(backend.to_str()).items() if k not in ("truncation", "padding")}
    return _fingerprint(type(tokenizer).__name__, json.dumps(rules, sort_keys=True))


class TaskDataModule(LightningDataModule):
    """A task's splits, tokenised with the teacher's tokenizer. Every example keeps its row index as `idx`."""

    def __init__(
        self,
        task: str | Task,
        files: DataFiles | None = None,
        hub: HubDataset | None = None,
        data_dir: str | None = None,
        tokenizer: PreTrainedTokenizerBase | None = None,
        student_tokenizer: PreTrainedTokenizerBase | None = None,
        max_length: int = 128,
        batch_size: int = 32,
        eval_batch_size: int = 64,
        train_limit: int | None = None,
        eval_limit: int | None = None,
        num_workers: int = 0,
        cache_dir: str | None = None,
        augmentation: Augmentation | None = None,
        corpus: Corpus | None = None,
        teacher: Teacher | None = None,
        seed: int = 0,
        batching: Batching = "length_grouped",
        length_pool: int = 50,
    ) -> None:
        """Args:
        task: a task class with its settings (`class_path: TextClassification`, `init_args: {text_columns: ...}`),
            or a preset name such as sst2 (`distill plugins` lists them).
        files: local train / validation / test files (CSV, TSV, JSON, JSONL or Parquet).
        hub: a Hugging Face hub dataset, by path, config name and split names.
        data_dir: for a preset, a folder holding its files in their own layout (GLUE's train.tsv and dev.tsv);
            with none of files, hub and data_dir, a preset loads its hub dataset.
        tokenizer: set from the model (the teacher's tokenizer) when training starts; not a YAML key.
        student_tokenizer: set from the model when the student has a vocabulary of its own; each example is then
            tokenised by both, the student's columns under `student_` names. Not a YAML key.
        max_length: truncation length in tokens.
        batch_size: training batch size.
        eval_batch_size: validation, test and prediction batch size.
        train_limit: use only the first N training rows (quick runs and tests).
        eval_limit: use only the first N validation and test rows.
        num_workers: DataLoader worker processes.
        cache_dir: where tokenised splits are cached; defaults to the datasets cache.
        augmentation: grows the training split with rows the teacher labels (`TransferSet`, Tang et al.; `distill
            plugins` lists the installed ones); None trains on it as is.
        corpus: unlabelled text the teacher labels, added to the training split or in its place (a task-agnostic
            stage); the augmentation, if any, grows the result.
        teacher: set from the model when training starts; an augmentation may read it (neighbour words).
        seed: seeds the shuffle of every epoch (with the epoch number), so runs and resumed runs agree. It is
            separate from seed_everything (which seeds initialisation and dropout): a seed study varies both.
        batching: "length_grouped" batches training sentences of similar length, so little compute goes into
            padding; "random" draws every batch from the whole shuffle.
        length_pool: with length grouping, how many batches of shuffled examples are sorted by length together:
            larger pools pad less but make batches less random.
        """
        super().__init__()
        self.task, self.source = resolve_data(task, files, hub, data_dir)
        self.hub_origin = hub or (find_preset(task)[1].hub if isinstance(task, str) and not files else None)
        self.tokenizer = tokenizer
        self.student_tokenizer = student_tokenizer
        self.max_length = max_length
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size
        self.limits = {"train": train_limit, "validation": eval_limit, "test": eval_limit}
        self.num_workers = num_workers
        self.cache_dir = Path(cache_dir or datasets.config.HF_DATASETS_CACHE) / "distill"
        if augmentation is not None:
            augmentation.check(self.task, own_tokenizer=False)
        self.augmentation = augmentation
        self.corpus = corpus
        self.corpus_source = corpus.source(self.task.text_columns) if corpus is not None else None
        self.teacher = teacher
        self.seed = seed
        if length_pool < 1:
            raise DistillError(f"data.length_pool must be at least 1 batch, got {length_pool}")
        for key, value in (
            ("max_length", max_length),
            ("batch_size", batch_size),
            ("eval_batch_size", eval_batch_size),
        ):
            if value < 1:
                raise DistillError(f"data.{key} must be at least 1, got {value}")
        self.batching, self.length_pool = batching, length_pool
        # Read now: the training split fixes the label space, which the model's head is built for.
        self.examples = {"train": self._training_examples(train_limit)}
        self.splits: dict[str, datasets.Dataset] = {}
        self.fingerprints: dict[str, str] = {}  # split -> key of its exact tokenised contents
        self.notes: dict[str, list[str]] = {}  # split -> what the task says of how it was read and encoded

    def setup(self, stage: str | None = None) -> None:
        """Tokenise the splits with the model's tokenizer (the teacher's, or a student's own vocabulary)."""
        module = self.trainer.lightning_module if self.trainer is not None else None
        self.tokenizer = self.tokenizer or getattr(module, "tokenizer", None)
        self.student_tokenizer = self.student_tokenizer or getattr(module, "student_tokenizer", None)
        self.teacher = self.teacher or getattr(module, "teacher", None)
        if self.tokenizer is None:
            raise DistillError("TaskDataModule needs a tokenizer: pass the teacher's (the CLI does this for you)")
        if self.augmentation is not None:
            self.augmentation.check(self.task, own_tokenizer=self.student_tokenizer is not None)
        for split in ("train", "validation", *(("test",) if stage == "test" else ())):
            if split not in self.splits:
                self.splits[split] = self._tokenised(split)

    def _training_examples(self, limit: int | None) -> datasets.Dataset:
        """The task's training rows (they fix the label space), with the corpus's rows after them or instead."""
        train = self.task.read(self.source, "train", limit)
        if self.corpus is None:
            return train
        rows = self.task.read_unlabelled(self.corpus_source, "train", self.corpus.limit)
        if self.corpus.only:
            return rows.cast(train.features)
        numbered = rows.remove_columns("idx").add_column("idx", list(range(len(train), len(train) + len(rows))))
        return datasets.concatenate_datasets([train, numbered.cast(train.features)])

    def evaluation_split(self, split: str) -> str:
        """`distill test` scores the test split when the data has one, else the validation split."""
        return split if split != "test" or self.source.has("test") else "validation"

    def read(self, split: str) -> datasets.Dataset:
        """The split's examples as the task reads them (text and labels), before tokenising."""
        split = self.evaluation_split(split)
        if split not in self.examples:
            self.examples[split] = self.task.read(self.source, split, self.limits[split])
        return self.examples[split]

    def _tokenised(self, split: str) -> datasets.Dataset:
        raw = self.read(split)
        tokenised, key = self._encoded(raw, split, self.tokenizer)
        self.fingerprints[split] = key
        self.notes[split] = self.task.notes(raw, tokenised, self.max_length)
        for note in self.notes[split]:
            rank_zero_warn(f"{self.task.name} {split}: {note}")
        if self.student_tokenizer is not None:
            own, _ = self._encoded(raw, split, self.student_tokenizer)
            for column in own.column_names:
                if column not in MODEL_COLUMNS:
                    tokenised = tokenised.add_column(STUDENT_PREFIX + column, own[column])
        if split == "train" and self.augmentation is not None:
            return self._augmented(tokenised, key)
        return tokenised

    def _encoded(
        self, raw: datasets.Dataset, split: str, tokenizer: PreTrainedTokenizerBase
    ) -> tuple[datasets.Dataset, str]:
        """The split encoded by one tokenizer, cached under a key of its exact contents, and that key."""
        source = (self.source.identity(self.evaluation_split(split)), self.limits[split])
        if split == "train" and self.corpus is not None:
            source += (self.corpus_source.identity("train"), self.corpus.only, self.corpus.limit)
        side = [path.read_bytes() for path in self.task.side_files() if path.is_file()]
        key = _fingerprint(source, tokenizer_fingerprint(tokenizer), self.max_length, self.task.spec(), side)
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        tokenised = raw.map(
            self.task.encode,
            fn_kwargs={"tokenizer": tokenizer, "max_length": self.max_length},
            batched=True,
            remove_columns=[c for c in raw.column_names if c not in MODEL_COLUMNS],
            cache_file_name=str(self.cache_dir / f"{_safe(self.task.name)}-{split}-{key}.arrow"),
            # `key` already names the exact result; without it datasets pickles this whole module (the teacher
            # included) to fingerprint the transform, seconds of every run spent outside training.
            new_fingerprint=key,
            desc=f"tokenising {self.task.name} {split}",
        )
        return tokenised, key

    def _augmented(self, train: datasets.Dataset, key: str) -> datasets.Dataset:
        """The grown training split, built once per (split, tokenizer, settings, what the augmentation reads)."""
        self.fingerprints["train"] = _fingerprint(key, self.augmentation, self.augmentation.fingerprint(self.teacher))
        folder = self.cache_dir / f"{_safe(self.task.name)}-augmented-{self.fingerprints['train']}"
        if not folder.is_dir():
            built = self.augmentation.grow(train, self.tokenizer, self.teacher, self.task)
            scratch = folder.with_name(folder.name + ".partial")
            built.save_to_disk(str(scratch))
            scratch.rename(folder)
        return datasets.load_from_disk(str(folder))

    def collator(self):
        """The task's padding, by each tokenizer for its own columns when the student has its own."""
        if self.student_tokenizer is None:
            return self.task.collator(self.tokenizer)
        return PairedCollator(self.task.collator(self.tokenizer), self.task.collator(self.student_tokenizer))

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

    def _replicas(self) -> tuple[int, int]:
        """(rank, world size) of this process; (0, 1) outside distributed training."""
        trainer = self.trainer
        return (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)

    def _loader_generator(self) -> torch.Generator:
        """A loader's own generator: building its iterator (each epoch, each validation) then draws nothing from
        the global random stream that dropout uses, so where a run is resumed cannot change its draws."""
        return torch.Generator().manual_seed(self.seed)

    def _loader(self, split: str) -> DataLoader:
        """Evaluation, longest examples first: each rank scores its share of the examples; torchmetrics adds the
        shares up."""
        rank, replicas = self._replicas()
        return DataLoader(
            self.splits[split],
            sampler=LengthOrderedSampler(self._lengths(split), rank, replicas),
            batch_size=self.eval_batch_size,
            collate_fn=self.collator(),
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
            collate_fn=self.collator(),
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            generator=self._loader_generator(),
        )
        self._check_validation_interval(len(loader))
        return loader

    def _train_sampler(self) -> EpochSeededSampler:
        rank, replicas = self._replicas()
        train = self.splits["train"]
        groups = torch.tensor(train[GROUP]) if GROUP in train.column_names else None
        if groups is not None and (groups >= 0).any():  # examples of several texts share a batch, whatever `batching`
            return GroupKeepingSampler(groups, self.batch_size, self.seed, rank, replicas)
        if self.batching == "random":
            return EpochSeededSampler(len(train), seed=self.seed, rank=rank, replicas=replicas)
        return LengthGroupedSampler(
            self._lengths("train"), self.batch_size, self.seed, rank, replicas, self.length_pool
        )

    def _lengths(self, split: str) -> Tensor:
        """Each encoded example's length in word pieces."""
        ids = self.splits[split].with_format("arrow")["input_ids"]
        return torch.tensor(pyarrow.compute.list_value_length(ids).to_numpy(zero_copy_only=False))

    def val_dataloader(self) -> DataLoader:
        return self._loader("validation")

    def test_dataloader(self) -> DataLoader:
        """The test split, or the validation split when the data has no test split (GLUE hides its labels)."""
        return self._loader("test")


def resolve_data(
    task: str | Task, files: DataFiles | None, hub: HubDataset | None, data_dir: str | None
) -> tuple[Task, DataSource]:
    """The task and where its examples come from: files, the hub, or a preset's own folder layout or hub dataset.

    Raises:
        DistillError: the sources conflict, data_dir is not a folder, or a task class is given no data.
    """
    given = [key for key, value in (("files", files), ("hub", hub), ("data_dir", data_dir)) if value]
    if len(given) > 1:
        raise DistillError(f"data.{given[0]} and data.{given[1]} are both set: give the data one way")
    if isinstance(task, str):
        cls, preset = find_preset(task)
        task = cls(**preset.init_args)
        if files or hub:
            return task, files or hub
        folder = Path(data_dir).expanduser() if data_dir else None
        if folder is not None and not folder.is_dir():
            raise DistillError(
                f"data.data_dir {data_dir!r} is not a folder: point it at a folder holding "
                f"{', '.join(preset.files.values())} for {task.name}, or remove it to load from the hub"
            )
        return task, preset.source(folder)
    if data_dir:
        raise DistillError(
            "data.data_dir is a preset's folder (data.task: a preset name); for a task class give data.files "
            "(train, validation) or data.hub"
        )
    if not (files or hub):
        raise DistillError(
            f"task {task.name} has no data: give data.files (train and validation paths) or data.hub (a hub dataset)"
        )
    return task, files or hub


def _safe(name: str) -> str:
    """A task name as part of a file name."""
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name)
