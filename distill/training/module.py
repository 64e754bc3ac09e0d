"""DistillationModule: a frozen teacher, a student, and the loss hooks that tie them together."""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any

import torch
from lightning.pytorch import Callback, LightningModule
from lightning.pytorch.strategies import FSDPStrategy
from lightning.pytorch.utilities import rank_zero_warn
from torch import Tensor, nn
from torchmetrics import MeanMetric
from transformers import PreTrainedTokenizerBase, SchedulerType, get_scheduler
from typing_extensions import override

from distill.compression import Compression, check_combination, ordered, served_logits
from distill.errors import DistillError
from distill.features import Features
from distill.loss import LossTerm, check_task_output
from distill.plugin_manager import registered
from distill.registry import task_from_spec
from distill.student import StudentConfig
from distill.teacher import check_vocabulary
from distill.teachers import build_teacher
from distill.training.cache import CacheStore, TeacherCache, at_cache_precision, cache_layout, real_tokens
from distill.training.callbacks import ResumeRandomState, TrainingThroughput
from distill.training.data import tokenizer_fingerprint
from distill.training.tokenizations import check_crossing, student_view

SELECTION = "val/selection"  # what the best checkpoint is chosen on
TOTAL_LOSS = "loss"  # train/loss: the weighted sum of the terms; no term may take this name
_NO_DECAY = ("bias", "LayerNorm.weight", "layer_norm.weight", "norm.weight")


def check_optimisation(learning_rate: float, weight_decay: float, warmup_ratio: float, losses: list[LossTerm]) -> None:
    """Refuse settings that train nothing or diverge, naming the key and its valid range.

    Raises:
        DistillError: a learning rate that is not positive, a negative weight decay, a warm-up ratio outside
            0..1, or loss weights that are negative or add up to nothing.
    """
    if not learning_rate > 0:
        raise DistillError(f"model.learning_rate must be above 0, got {learning_rate}")
    if not weight_decay >= 0:
        raise DistillError(f"model.weight_decay must be 0 or more, got {weight_decay}")
    if not 0 <= warmup_ratio <= 1:
        raise DistillError(
            f"model.warmup_ratio is the share of steps spent warming up, from 0 to 1; got {warmup_ratio}"
        )
    if negative := [term.name for term in losses if term.weight < 0]:
        raise DistillError(f"model.losses: {negative} have negative weights; a loss weight is 0 or more")
    if not sum(term.weight for term in losses) > 0:
        raise DistillError("model.losses: every weight is 0, so nothing would be trained: give one a weight above 0")


def max_positions(model: nn.Module | None) -> int | None:
    """How many positions a Hugging Face model (or a module holding one as `model`) can read, when it says."""
    config = getattr(model, "config", None) or getattr(getattr(model, "model", None), "config", None)
    limit = getattr(config, "max_position_embeddings", None)
    return limit if isinstance(limit, int) and limit > 0 else None


class DistillationModule(LightningModule):
    """Trains `student` on the sum of weighted loss terms; the teacher only serves the features they need."""

    def __init__(
        self,
        student: StudentConfig,
        losses: list[LossTerm],
        task: str | dict[str, Any],
        teacher: str | list[Any] | dict[str, Any] | None = None,
        learning_rate: float = 5e-5,
        weight_decay: float = 0.01,
        warmup_ratio: float = 0.06,
        lr_schedule: str = "linear",
        teacher_cache: TeacherCache | None = None,
        compression: list[Compression] | None = None,
        trust_remote_code: bool = False,
    ) -> None:
        """Args:
        student: the student family and its size (`class_path: BertStudent`, ...).
        losses: the loss hooks and their weights (`class_path: LogitsKD`, ...).
        task: the task as its spec (`Task.spec()`, labels fixed) or a preset name; the CLI links it from the
            data, whose training split fixes the label space.
        teacher: folder or hub id of a model fine-tuned for the task (its head, its labels); a file of soft
            labels (Parquet, JSONL, CSV); a registered teacher kind as `{class_path: KIND, init_args: ...}`;
            or a list of these, combined as one (`Ensemble`). None trains the student on labels alone (how a
            teacher is fine-tuned).
        learning_rate: AdamW peak learning rate.
        weight_decay: AdamW weight decay (not applied to biases and LayerNorm weights).
        warmup_ratio: fraction of the steps spent warming the learning rate up.
        lr_schedule: a transformers scheduler name: linear, cosine, constant_with_warmup, ...
        teacher_cache: keep the teacher's logits (and pooled vectors) per training example on disk, so epochs
            after the first skip the teacher. Losses that read per-token features still run it live.
        compression: compression methods (`class_path: MagnitudePruning`, ...); they compound in stage order
            (structure, masks, fake-quant, exits) and the distillation losses act on the result.
        trust_remote_code: run the Python code a teacher folder or hub repository ships (`auto_map` in its
            config). Off by default, and such a teacher is refused: set it only for code you have read.
        """
        super().__init__()
        self.save_hyperparameters()
        self.task = task_from_spec(task)
        if lr_schedule not in {s.value for s in SchedulerType}:
            raise DistillError(f"unknown lr_schedule {lr_schedule!r}: use one of {[s.value for s in SchedulerType]}")
        if not losses:
            raise DistillError(
                f"model.losses is empty: name at least one (class_path: NAME); installed losses are "
                f"{', '.join(sorted(registered('losses')))}"
            )
        check_optimisation(learning_rate, weight_decay, warmup_ratio, losses)
        self.teacher = build_teacher(teacher, self.task, trust_remote_code) if teacher else None
        self.losses = nn.ModuleList(losses)
        for term in self.losses:
            term.task = self.task
            check_task_output(term, self.task)
        self.teacher_needs = self._teacher_needs()
        self.student = student.build(teacher=self.teacher, task=self.task)
        if self.teacher is not None and self.teacher.model is not None and self.teacher.tokenizer is not None:
            # after the student, whose family refusal says more than the vocabulary
            check_vocabulary(self.teacher.model, self.teacher.tokenizer, self.teacher.source)
        self.student_needs = self._student_needs()
        for term in self.losses:
            term.setup(student=self.student.anatomy, teacher=self.teacher.anatomy if self.teacher else None)
        self.log_names = term_log_names(list(self.losses))
        self.compression = ordered(list(compression or []))  # the order every lifecycle method is called in
        check_combination(self.compression, self.student.anatomy)
        self._configured = False
        self.tokenizer = getattr(self.teacher, "tokenizer", None) or self.student.tokenizer
        if self.tokenizer is None:
            raise DistillError(
                "no tokenizer: set model.teacher to a model, name one in the teacher's `tokenizer:` (a teacher with "
                "no model of its own), or use a student that brings its own tokenizer"
            )
        self.student_tokenizer = self._own_tokenizer()
        self.cache_settings = teacher_cache
        self.cache: CacheStore | None = None
        self.val_metrics = self.task.build_metrics(prefix="val/")
        self.val_objective = MeanMetric()  # the objective on dev, for a stage that trains no predictions
        self.test_metrics = self.task.build_metrics(prefix="test/")

    def _own_tokenizer(self) -> PreTrainedTokenizerBase | None:
        """The student's tokenizer where it differs from the teacher's, checked against what can cross to it."""
        own = self.student.tokenizer
        if self.teacher is None or own is None or tokenizer_fingerprint(own) == tokenizer_fingerprint(self.tokenizer):
            return None
        check_crossing(list(self.losses), self.task, self.tokenizer, own)
        return own

    def _teacher_needs(self) -> frozenset[str]:
        """The teacher features some loss reads; a loss that reads any needs a teacher."""
        for term in self.losses:
            if term.from_teacher and self.teacher is None:
                raise DistillError(
                    f"loss {term.name!r} reads the teacher's {sorted(term.from_teacher)}: set model.teacher"
                )
            if self.teacher is not None and (missing := term.from_teacher - self.teacher.anatomy.provides):
                raise DistillError(
                    f"loss {term.name!r} reads the teacher's {sorted(missing)}, but the teacher "
                    f"({self.teacher.anatomy.family}: {self.teacher.source}) gives only "
                    f"{sorted(self.teacher.anatomy.provides)}: drop that loss, or use a model as the teacher"
                )
        return frozenset().union(*(term.from_teacher for term in self.losses))

    def _student_needs(self) -> frozenset[str]:
        """The student features the losses read, each checked against what the student family provides."""
        provides = self.student.anatomy.provides
        for term in self.losses:
            if missing := term.needs - provides:
                raise DistillError(
                    f"loss {term.name!r} needs {sorted(missing)}; the {self.student.anatomy.family} student provides "
                    f"only {sorted(provides)}. Drop that loss or choose another student"
                )
        return frozenset({"logits"}).union(*(term.needs for term in self.losses))

    # --- compression methods --------------------------------------------------------------------------------

    @override
    def configure_model(self) -> None:
        """Let the compression methods prepare the student, once, and add the loss terms they bring; keep the
        frozen teacher out of FSDP's sharding."""
        self._keep_teacher_whole()
        if self._configured:
            return
        data = self._trainer.datamodule if self._trainer is not None else None
        for method in self.compression:
            method.configure_student(self.student, self.teacher, data)
        teacher = self.teacher.anatomy if self.teacher is not None else None
        for method in self.compression:
            for term in method.loss_terms(self.student):
                term.task = self.task
                check_task_output(term, self.task)
                term.setup(student=self.student.anatomy, teacher=teacher)
                self.losses.append(term)
        self.log_names = term_log_names(list(self.losses))
        self.teacher_needs, self.student_needs = self._teacher_needs(), self._student_needs()
        if self.student_tokenizer is not None:
            check_crossing(list(self.losses), self.task, self.tokenizer, self.student_tokenizer)
        self._configured = True

    def _keep_teacher_whole(self) -> None:
        """FSDP shards what trains. The frozen teacher joins FSDP's `ignored_modules`: never flattened or sharded
        for gradients, whole on every rank, moved to the device in `on_fit_start` (FSDP moves only what it wraps).
        Called before the strategy wraps the module."""
        strategy = self._trainer.strategy if self._trainer is not None else None
        if self.teacher is None or not isinstance(strategy, FSDPStrategy):
            return
        ignored = strategy.kwargs.setdefault("ignored_modules", [])
        if all(module is not self.teacher for module in ignored):
            ignored.append(self.teacher)

    # --- training -------------------------------------------------------------------------------------------

    def features(self, batch: Mapping[str, Tensor]) -> tuple[Features, Features | None]:
        """Student features for the active losses, and teacher features only if some loss reads them."""
        teacher = None
        if self.teacher_needs and self.cache is not None and self.training:
            teacher = self.cache.lookup(batch, lambda: self.teacher(batch, self.teacher_needs))
        elif self.teacher_needs:
            teacher = at_cache_precision(self.teacher(batch, self.teacher_needs))
        return self.student(student_view(batch), self.student_needs), teacher

    @override
    def setup(self, stage: str) -> None:
        """Refuse a max_length the models cannot read, before any batch reaches them."""
        data = self.trainer.datamodule if self._trainer is not None else None
        max_length = getattr(data, "max_length", None)
        models = {"teacher": self.teacher.model if self.teacher is not None else None, "student": self.student}
        for role, model in models.items():
            limit = max_positions(model)
            if max_length is not None and limit is not None and max_length > limit:
                raise DistillError(
                    f"data.max_length {max_length} is longer than the {role} reads ({limit} positions): give "
                    f"data.max_length of at most {limit}"
                )

    @override
    def on_fit_start(self) -> None:
        """Check the teacher against the gold labels, and open the teacher cache once the data is set up (its
        fingerprint names the cache)."""
        if self.teacher is not None:
            self.teacher.to(self.device)  # a no-op, except where FSDP left the ignored teacher behind
            data = self.trainer.datamodule
            if getattr(data, "augmentation", None) is not None and not self.teacher.labels_new_rows:
                raise DistillError(
                    f"data.augmentation adds training rows, but the teacher ({self.teacher.anatomy.family}) answers "
                    f"only the training examples it was given: drop the augmentation, or use a model as the teacher"
                )
            self.teacher.prepare(data)
        self._check_teacher_agreement()
        settings = self.cache_settings
        if settings is None or self.teacher is None or not self.teacher_needs or not self.teacher.cacheable:
            return
        if not self.teacher_needs <= set(settings.features):
            raise DistillError(
                f"teacher_cache keeps {sorted(settings.features)}, but the losses read the teacher's "
                f"{sorted(self.teacher_needs)}: add the missing ones to teacher_cache.features, or drop "
                f"teacher_cache (attention maps and values are not cached)"
            )
        data = self.trainer.datamodule
        fingerprint = getattr(data, "fingerprints", {}).get("train") if data is not None else None
        if fingerprint is None:
            raise DistillError(
                "teacher_cache needs a datamodule that fingerprints its training split (TaskDataModule does)"
            )
        train = data.splits["train"]
        features = sorted(set(settings.features) & self.teacher_needs | {"logits"})
        layout = cache_layout(
            features, self.teacher, self._teacher_layers(), self.task.per_token, len(train), lambda: real_tokens(train)
        )
        if self.trainer.local_rank == 0:  # one process per machine creates the folder; the others then open it
            self.cache = CacheStore.open(settings, self.teacher, fingerprint, layout)
        self.trainer.strategy.barrier("teacher cache")
        if self.trainer.local_rank != 0:
            self.cache = CacheStore.open(settings, self.teacher, fingerprint, layout)

    def _teacher_layers(self) -> frozenset[int] | None:
        """The teacher layers whose hidden states some loss reads (None: any of them)."""
        readers = [term for term in self.losses if "hidden_states" in term.from_teacher]
        layers = [term.teacher_layers() for term in readers]
        return None if any(chosen is None for chosen in layers) else frozenset().union(*layers)

    @override
    def on_train_epoch_end(self) -> None:
        """Flush the cache and record its checksum once every process on the machine has written its rows."""
        if self.cache is not None:
            self.cache.flush()
            self.trainer.strategy.barrier("teacher cache flushed")
            if self.trainer.local_rank == 0:
                self.cache.seal()

    @torch.no_grad()
    def _check_teacher_agreement(self, batches: int = 2) -> None:
        """Warn loudly (and note it for the card) when the teacher's dev predictions agree with the gold labels far
        less than chance would: a label order that does not match the teacher's shows here, not in the card."""
        data = self.trainer.datamodule
        if self.teacher is None or data is None or "validation" not in getattr(data, "splits", {}):
            return
        logits, labels = [], []
        for batch in itertools.islice(data.val_dataloader(), batches):
            batch = {k: v.to(self.device) for k, v in batch.items() if isinstance(v, Tensor)}
            if "labels" not in batch:
                return
            answer = self.teacher.answer(batch)  # the teacher itself, not its training path (a cache, counters)
            if answer is None:  # a teacher of training rows only (a soft-label file)
                return
            answer = answer.float().cpu()
            # one row per position that has an answer: batches of a token-level task differ in length
            logits.append(answer.flatten(0, -2))
            labels.append(batch["labels"].cpu().flatten(0, answer.dim() - 2))
        note = self.task.teacher_note(torch.cat(logits), torch.cat(labels)) if logits else None
        if note is not None:
            rank_zero_warn(f"WARNING: {note}")
            data.notes.setdefault("validation", []).append(note)

    def objective(
        self, student: Features, teacher: Features | None, batch: Mapping[str, Tensor]
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """Σ weight · term, and each unweighted term by its log name."""
        terms = {name: term(student, teacher, batch) for name, term in zip(self.log_names, self.losses, strict=True)}
        total = sum(term.current_weight() * terms[name] for name, term in zip(self.log_names, self.losses, strict=True))
        return total, terms

    @override
    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        progress = self.progress()
        for term in self.losses:
            term.progress = progress

    @override
    def training_step(self, batch: Mapping[str, Tensor], batch_idx: int) -> Tensor:
        student, teacher = self.features(batch)
        loss, terms = self.objective(student, teacher, batch)
        if not torch.isfinite(loss):
            raise DistillError(non_finite_message(terms, self.global_step))
        size = len(student.logits)
        terms = {f"train/{name}": value.detach() for name, value in terms.items()}
        self.log_dict(terms, batch_size=size, prog_bar=True)  # each term live on the progress bar
        schedules = {
            f"schedule/{name}_{key}": value
            for name, term in zip(self.log_names, self.losses, strict=True)
            for key, value in term.scheduled().items()
        }
        if schedules:
            self.log_dict(schedules, batch_size=size)
        self.log(f"train/{TOTAL_LOSS}", loss.detach(), prog_bar=True, batch_size=size)
        return loss

    def progress(self) -> float:
        """Fraction of the planned optimizer steps done."""
        return self.global_step / max(self.trainer.estimated_stepping_batches, 1)

    # --- evaluation -----------------------------------------------------------------------------------------

    def _evaluate(self, batch: Mapping[str, Tensor], metrics: nn.Module, stage: str) -> None:
        """Score the student as it will be served (a compression method may answer for it, e.g. from exits)."""
        batch = student_view(batch)
        logits = served_logits(self.compression, self.student, batch)
        if logits is None:
            logits = self.student(batch, frozenset({"logits"})).logits
        labels = batch["labels"]
        self.task.update_metrics(metrics, logits, batch)
        self.log(f"{stage}/loss", self.task.label_loss(logits, labels), batch_size=len(labels), sync_dist=True)

    def _log_metrics(self, metrics: nn.Module) -> dict[str, Tensor]:
        values = metrics.compute()  # synchronised across ranks by torchmetrics
        metrics.reset()
        self.log_dict(values, prog_bar=True, sync_dist=True)  # already equal on every rank; no-op reduction
        return values

    @property
    def trains_predictions(self) -> bool:
        """Whether some loss reads the student's predictions. A stage that only matches the teacher's inner
        features (task-agnostic distillation, TinyBERT's first stage) leaves the task head untrained, so its dev
        metric says nothing and its checkpoints are chosen on the objective over dev instead."""
        return any("logits" in term.needs for term in self.losses)

    @override
    def validation_step(self, batch: Mapping[str, Tensor], batch_idx: int) -> None:
        self._evaluate(batch, self.val_metrics, "val")
        if not self.trains_predictions:
            student, teacher = self.features(batch)
            self.val_objective.update(self.objective(student, teacher, batch)[0], weight=len(student.logits))

    @override
    def on_validation_epoch_end(self) -> None:
        """Log the dev metrics, and the selection score once every compression method has settled (-inf before,
        so the best checkpoint always has the final structure): the main metric, or the negated objective over
        dev where no loss trains the predictions."""
        values = self._log_metrics(self.val_metrics)
        score = values[f"val/{self.task.main_metric}"]
        if not self.trains_predictions:
            objective = self.val_objective.compute()
            self.val_objective.reset()
            self.log("val/objective", objective, sync_dist=True)
            score = -objective
        fitting = self.trainer.state.fn == "fit" and not self.trainer.sanity_checking
        settled = not fitting or self.progress() >= self.settled_at
        self.log(SELECTION, score if settled else torch.tensor(float("-inf")), sync_dist=True)

    @property
    def settled_at(self) -> float:
        return max((method.settled_at for method in self.compression), default=0.0)

    @override
    def test_step(self, batch: Mapping[str, Tensor], batch_idx: int) -> None:
        self._evaluate(batch, self.test_metrics, "test")

    @override
    def on_test_epoch_end(self) -> None:
        self._log_metrics(self.test_metrics)

    # --- optimisation and run outputs -----------------------------------------------------------------------

    @override
    def configure_optimizers(self) -> dict[str, Any]:
        """AdamW over the trainable parameters, grouped by weight decay and by the learning rates that
        compression methods and loss terms ask for their own parts."""
        exempt = {f"student.{name}" for name in self.student.no_weight_decay()}
        rates = {
            f"student.{path}.": rate
            for method in self.compression
            for path, rate in method.learning_rates(self.student).items()
        }
        for index, term in enumerate(self.losses):
            rates |= {f"losses.{index}.{path}.": rate for path, rate in term.learning_rates().items()}
        groups: dict[tuple[float, float], list[nn.Parameter]] = {}
        for name, parameter in self.named_parameters():
            if not parameter.requires_grad:
                continue
            decay = 0.0 if name.endswith(_NO_DECAY) or name in exempt else self.hparams.weight_decay
            rate = next((r for prefix, r in rates.items() if name.startswith(prefix)), self.hparams.learning_rate)
            groups.setdefault((decay, rate), []).append(parameter)
        optimizer = torch.optim.AdamW(
            [{"params": ps, "weight_decay": decay, "lr": rate} for (decay, rate), ps in groups.items()],
            lr=self.hparams.learning_rate,
        )
        total = int(self.trainer.estimated_stepping_batches)
        scheduler = get_scheduler(
            self.hparams.lr_schedule,
            optimizer,
            num_warmup_steps=int(self.hparams.warmup_ratio * total),
            num_training_steps=total,
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    @override
    def configure_callbacks(self) -> list[Callback]:
        """Time the training, and run the compression methods' per-step callbacks."""
        methods = [callback for method in self.compression for callback in method.callbacks()]
        return [TrainingThroughput(), ResumeRandomState(), *methods]

    @override
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """The teacher is reloaded from its source, so its frozen weights stay out of every checkpoint."""
        checkpoint["state_dict"] = {k: v for k, v in checkpoint["state_dict"].items() if not k.startswith("teacher.")}

    @override
    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if self.teacher is not None:
            teacher_state = {f"teacher.{k}": v for k, v in self.teacher.state_dict().items()}
            checkpoint["state_dict"] = {**checkpoint["state_dict"], **teacher_state}


def term_log_names(terms: list[LossTerm]) -> list[str]:
    """Each term's log name (`train/<name>`): its class's `name`, with a numeric suffix when the same kind is used
    again (hidden_states, hidden_states_2).

    Raises:
        DistillError: a term takes the total's name, or two different kinds share a name, so one would
            silently overwrite the other in the logs.
    """
    kinds: dict[str, type[LossTerm]] = {}
    seen: dict[str, int] = {}
    names = []
    for term in terms:
        kind = type(term)
        if term.name == TOTAL_LOSS:
            raise DistillError(
                f"loss term {kind.__name__} is named {TOTAL_LOSS!r}, the name the total objective is logged as "
                f"(train/{TOTAL_LOSS}): give the class a name of its own, e.g. name = {kind.__name__.lower()!r}"
            )
        if kinds.setdefault(term.name, kind) is not kind:
            raise DistillError(
                f"loss terms {kinds[term.name].__name__} and {kind.__name__} are both named {term.name!r}, so one "
                f"would overwrite the other in the logs: give one of the classes another `name`"
            )
        seen[term.name] = seen.get(term.name, 0) + 1
        names.append(term.name if seen[term.name] == 1 else f"{term.name}_{seen[term.name]}")
    if len(set(names)) < len(names):
        clash = next(name for name in names if names.count(name) > 1)
        raise DistillError(f"two loss terms are logged as {clash!r}: give one of their classes another `name`")
    return names


def non_finite_message(terms: dict[str, Tensor], step: int) -> str:
    """Which terms went NaN or infinite, for the error that stops the run."""
    bad = [f"train/{name} = {value.item()}" for name, value in terms.items() if not torch.isfinite(value)]
    culprit = ", ".join(bad) if bad else f"every term is finite, but their weighted sum (train/{TOTAL_LOSS}) is not"
    return (
        f"the loss went non-finite at optimizer step {step} ({culprit}); training stopped and nothing was exported. "
        f"Lower model.learning_rate, or check the teacher and the data"
    )
