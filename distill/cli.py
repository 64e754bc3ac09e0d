"""`distill`: LightningCLI's fit / validate / test / predict on a YAML config, plus `distill plugins`."""

from __future__ import annotations

import inspect
import os
import re
import shutil
import sys
import warnings
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml
from jsonargparse import ActionConfigFile, ArgumentError, ArgumentParser, Namespace, set_parsing_settings
from lightning.fabric.utilities.rank_zero import rank_zero_only
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI, SaveConfigCallback
from lightning.pytorch.plugins.io import TorchCheckpointIO
from lightning.pytorch.utilities.exceptions import MisconfigurationException
from transformers.utils import logging as transformers_logging
from typing_extensions import override

from distill.after_fit import (
    ReportSettings,
    best_checkpoint_path,
    export_checkpoint,
    finish_fit,
    serving_module,
)
from distill.augmentation import Augmentation
from distill.compression import Compression
from distill.delivery.batching import MAX_LENGTH
from distill.delivery.bench import BENCH_FILES, run_bench
from distill.delivery.export import export_depth
from distill.delivery.folder import CARD_NAME, card_max_length, model_folder, read_card
from distill.delivery.model_card import push_to_hub
from distill.delivery.predict import predict, predict_with_teacher
from distill.delivery.report import table_markdown
from distill.errors import DistillError
from distill.hf import check_remote_code
from distill.lazy import lazy_module
from distill.registry import KINDS, get_plugin_manager, plugin_versions, plugins_listing, registered, task_from_spec
from distill.sources import DataFiles, DataSource, HubDataset
from distill.student import StudentConfig
from distill.task import Task
from distill.training.checkpoints import AtomicCheckpointIO, check_checkpoint
from distill.training.data import WIRED_FROM_MODEL, TaskDataModule, resolve_data
from distill.training.module import SELECTION, DistillationModule
from distill.training.run_folder import (
    BEST_PATTERN,
    CHECKPOINTS,
    EXPORT_NAME,
    CreatedRunFolder,
    find_run_folder,
    remove_superseded_best,
)

datasets = lazy_module("datasets")

DEFAULT_ROOT = "runs"
RUN_DIR_ENV = "DISTILL_RUN_DIR"
# Which registry answers for a YAML key, so a misspelt class name gets the list of valid ones.
_REGISTRY_FOR_KEY = {
    "data.task": ("tasks", "task"),
    "model.losses": ("losses", "loss"),
    "model.student": ("students", "student"),
    "model.compression": ("compression", "compression method"),
    "data.augmentation": ("augmentations", "augmentation"),
}


class LoggedConfig(SaveConfigCallback):
    """Saves config.yaml as LightningCLI does, and gives every logger the resolved config and the plugins
    (name and version) that shaped the run."""

    @override
    def save_config(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        config = yaml.safe_load(self.parser.dump(self.config, skip_none=False))
        for wired in WIRED_FROM_MODEL:
            config.get("data", {}).pop(wired, None)
        for logger in trainer.loggers:
            logger.log_hyperparams({"config": config, "plugins": plugin_versions()})


class DistillCLI(LightningCLI):
    """LightningCLI wired for distillation: task and tokenizer links, one directory per run, export at the end."""

    run_dir: Path | None = None
    _given_model: Namespace | None = None  # model.* as the user gave it, when a checkpoint's settings follow
    _created: CreatedRunFolder | None = None  # the run folder this invocation made, the only one it may remove

    def __init__(self, args: list[str] | None = None) -> None:
        """Args:
        args: command-line arguments (None reads sys.argv).
        """
        self._published = False
        try:
            super().__init__(
                DistillationModule,
                TaskDataModule,
                args=args,
                seed_everything_default=42,
                save_config_callback=LoggedConfig,
                # distill's samplers shard and resume themselves; Lightning's wrapper would lose their position.
                trainer_defaults={"use_distributed_sampler": False},
                auto_configure_optimizers=False,
                # One clear error instead of usage text, and no silent expansion of a misspelt key's prefix.
                parser_kwargs={"exit_on_error": False, "allow_abbrev": False},
            )
        except BaseException:  # bad input, a traceback, Ctrl-C: a run with no checkpoint leaves no folder
            self._discard_unfinished_run()
            raise
        finally:
            if self._published:
                os.environ.pop(RUN_DIR_ENV, None)

    @override
    def instantiate_trainer(self, **kwargs: Any) -> Trainer:
        """Lightning's refusal of an accelerator/strategy pair (FSDP on CPU, say) as one line, not a traceback."""
        try:
            return super().instantiate_trainer(**kwargs)
        except (ValueError, MisconfigurationException) as error:
            raise DistillError(f"trainer settings: {error}") from None

    @override
    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_argument(
            "--run_name",
            type=str | None,
            default=None,
            help="Name of the run folder under trainer.default_root_dir (default: config name + time)",
        )
        parser.add_class_arguments(ReportSettings, "report")
        # The data is read first: its training split fixes the label space the model's head is built for. The data
        # takes the tokenizer (and the teacher, for an augmentation) from the model when training starts.
        parser.link_arguments("data.task", "model.task", compute_fn=task_spec, apply_on="instantiate")

    @override
    def parse_arguments(self, parser: LightningArgumentParser, args: list[str] | dict | Namespace | None) -> None:
        """Parse, then check a named checkpoint before Lightning reads its hyperparameters from it."""
        super().parse_arguments(parser, args)
        subcommand = self.config.get("subcommand")
        if subcommand and self.config[subcommand].get("ckpt_path"):
            checked = check_checkpoint(self.config[subcommand].ckpt_path, "--ckpt_path", resume=subcommand == "fit")
            self.config[subcommand].ckpt_path = str(checked)
            # Lightning then fills model.* from the checkpoint; what the user gave is compared with it before use.
            self._given_model = self.config[subcommand].model.clone()
        if subcommand and "weights_only" in self.config[subcommand]:
            self.config[subcommand].weights_only = True  # a checkpoint never runs code (see training.checkpoints)

    @override
    def before_instantiate_classes(self) -> None:
        """fit gets its run folder; validate/test log in the run folder holding the checkpoint they evaluate."""
        config = self.config[self.subcommand]
        check_trainer_limits(config.trainer)
        if self._given_model is not None:
            refuse_resume_conflicts(self._given_model, config.model)
        if self.subcommand == "fit":
            # The processes Lightning launches for DDP inherit the first process's choice through RUN_DIR_ENV.
            inherited = os.environ.get(RUN_DIR_ENV)
            self.run_dir = Path(inherited) if inherited else self._fit_run_dir(config)
            if not inherited:
                os.environ[RUN_DIR_ENV] = str(self.run_dir)
                self._published = True
            config.trainer.default_root_dir = str(self.run_dir)
            keep_loggers_in(config.trainer, self.run_dir)
            config.trainer.callbacks = [*(config.trainer.callbacks or []), *run_checkpoints(self.run_dir)]
        elif config.trainer.default_root_dir is None:
            run = find_run_folder(Path(config.ckpt_path)) if config.get("ckpt_path") else None
            config.trainer.default_root_dir = str(run or DEFAULT_ROOT)

    def _fit_run_dir(self, config: Namespace) -> Path:
        """The run's folder, the same in every process of a distributed run.

        A resumed run (--ckpt_path) continues in the distill run folder holding its checkpoint, unless that
        run already exported (its export is never overwritten) or the checkpoint lies outside any run folder:
        then it gets a new folder. A new folder is runs/<name>, from --run_name or the config's file name and
        the time; an existing folder is never reused.
        """
        if config.get("ckpt_path"):
            run = find_run_folder(Path(config.ckpt_path))
            if run is not None and not (run / EXPORT_NAME).exists():
                return run
            if rank_zero_only.rank == 0:
                print(f"resuming {config.ckpt_path} in a new run folder: {_resume_note(run)}", file=sys.stderr)
        if rank_zero_only.rank != 0:  # a separately launched rank (torchrun, SLURM) must share rank 0's name
            if not config.run_name:
                raise DistillError("multi-node runs need --run_name, so that every node writes to the same run folder")
            check_run_name(config.run_name)
            return Path(config.trainer.default_root_dir or DEFAULT_ROOT) / config.run_name
        self._created = CreatedRunFolder.create(_new_run_dir(config))
        return self._created.path

    def before_fit(self) -> None:
        if type(self.trainer.strategy.checkpoint_io) is TorchCheckpointIO:  # a strategy's own writer is kept
            self.trainer.strategy.checkpoint_io = AtomicCheckpointIO()
        if self.config[self.subcommand].get("ckpt_path") and self.trainer.is_global_zero:
            for folder in filter(None, (getattr(logger, "log_dir", None) for logger in self.trainer.loggers)):
                print(f"resumed: metrics from here on are logged in {folder}", file=sys.stderr)

    def after_fit(self) -> None:
        """Export the best student with its card, and report what it cost against the teacher (a student that is
        not exported, such as a search space, writes its run artefacts only). Logger runs are closed either way."""
        try:
            self._finish()
        finally:
            _close_runs(self.trainer)

    def _finish(self) -> None:
        if self.trainer.global_step == 0:
            raise DistillError(
                "the run finished no optimizer step, so there is nothing to export: check trainer.max_steps, "
                "trainer.max_epochs, trainer.limit_train_batches and the size of the training split"
            )
        if self.trainer.is_global_zero:
            remove_superseded_best(self.run_dir, best_checkpoint_path(self.trainer))
        self._dump_config()
        for wired in WIRED_FROM_MODEL:
            self.config_dump["data"].pop(wired, None)
        settings = ReportSettings(**self.config[self.subcommand].report)
        target = finish_fit(self.trainer, self.model, self.datamodule, self.run_dir, self.config_dump, settings)
        if target is not None and target.is_file():
            print(f"\nwritten: {target}")
        elif target is not None:
            print(f"\nstudent: {target}\ncard:    {target / 'card.json'}")
            if (self.run_dir / "report.md").exists():
                print(f"report:  {self.run_dir / 'report.md'}")

    def _discard_unfinished_run(self) -> None:
        """A run stopped by bad input leaves nothing behind, unless it already saved a checkpoint. Only a folder
        this invocation created and marked is ever removed (see distill.training.run_folder)."""
        if self._created is not None:
            self._created.discard()


def check_trainer_limits(trainer: Namespace) -> None:
    """Lightning reads -1 as "no limit"; anything below it is a mistake it would meet only mid-run.

    Raises:
        DistillError: naming the key and its valid range.
    """
    for key in ("max_steps", "max_epochs", "min_steps", "min_epochs"):
        value = trainer.get(key)
        if value is not None and value < -1:
            raise DistillError(f"trainer.{key} must be -1 (no limit) or more, got {value}")


def refuse_resume_conflicts(given: Namespace, restored: Namespace) -> None:
    """A resumed run trains the model its checkpoint holds: a model setting given with --ckpt_path that differs
    from the checkpoint's is refused, never silently replaced.

    Raises:
        DistillError: naming the key and both values.
    """
    ours, theirs = flat_settings(given), flat_settings(restored)
    for key in sorted(ours.keys() & theirs.keys()):
        if key != "task" and not key.startswith("task.") and ours[key] != theirs[key]:
            raise DistillError(
                f"--ckpt_path holds model.{key} = {theirs[key]!r}, but the config gives {ours[key]!r}: a resumed run "
                f"keeps its checkpoint's settings, so drop model.{key} from the command (or start a new run)"
            )


def flat_settings(namespace: Namespace) -> dict[str, Any]:
    """A namespace's leaves by dotted key, with class paths by their short name (YAML may use either)."""
    flat = {}
    for key, value in yaml.safe_load(yaml.safe_dump(namespace.as_dict(), default_flow_style=False)).items():
        flat.update(_leaves(key, value))
    return flat


def _leaves(key: str, value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        return {k: v for name, inner in value.items() for k, v in _leaves(f"{key}.{name}", inner).items()}
    if isinstance(value, list):
        return {k: v for i, inner in enumerate(value) for k, v in _leaves(f"{key}.{i}", inner).items()}
    if key.endswith("class_path") and isinstance(value, str):
        return {key: value.rsplit(".", 1)[-1]}
    return {key: value}


def keep_loggers_in(trainer: Namespace, run_dir: Path) -> None:
    """Loggers write under the run folder unless the config says where (wandb's default is the working folder,
    where the next run's config.yaml would collide)."""
    loggers = trainer.get("logger")
    for logger in loggers if isinstance(loggers, list) else [loggers]:
        arguments = getattr(logger, "init_args", None) if isinstance(logger, Namespace) else None
        if arguments is not None and "save_dir" in arguments and arguments.save_dir in (None, ".", "./"):
            arguments.save_dir = str(run_dir)


def task_spec(task: Task) -> dict:
    """The data's task as the model receives it and checkpoints keep it: a spec with its labels fixed."""
    return task.spec()


def _close_runs(trainer: Trainer) -> None:
    """Finish experiment runs (wandb) once the report is logged, so everything reaches disk or the server."""
    for logger in trainer.loggers:
        finish = getattr(getattr(logger, "_experiment", None), "finish", None)
        if callable(finish):
            finish()


def run_checkpoints(run_dir: Path) -> list[Namespace]:
    """The run's own checkpoints, in run_dir/checkpoints: `best-step=N.ckpt`, the student's weights at the best
    dev score once every compression method has settled (what is exported: no optimizer state, a third of the
    bytes with AdamW), and `last.ckpt`, the whole training state rewritten at every validation (what to resume
    from). Lightning's save_last only follows the best, so `last` is a checkpoint of its own.

    They join, never replace, checkpoint callbacks of the config (say, one every N steps against preemption).
    """
    folder = str(run_dir / CHECKPOINTS)
    best = Namespace(dirpath=folder, filename=BEST_PATTERN, monitor=SELECTION, mode="max", save_weights_only=True)
    last = Namespace(dirpath=folder, filename="last", enable_version_counter=False)
    return [Namespace(class_path="distill.training.checkpoints.RunCheckpoint", init_args=a) for a in (best, last)]


def _resume_note(run: Path | None) -> str:
    if run is None:
        return "the checkpoint is not inside a distill run folder"
    return f"run {run} has already exported its student, which is never overwritten"


def _new_run_dir(config) -> Path:
    root = Path(config.trainer.default_root_dir or DEFAULT_ROOT)
    if config.run_name:
        check_run_name(config.run_name)
        run_dir = root / config.run_name
        if run_dir.exists():
            raise DistillError(f"run folder {run_dir} already exists: pick another --run_name or remove that folder")
        return run_dir
    configs = config.get("config") or []
    stem = Path(str(configs[-1])).stem if configs else "run"
    base = root / f"{stem}-{datetime.now():%Y%m%d-%H%M%S}"
    run_dir, suffix = base, 1
    while run_dir.exists():
        suffix += 1
        run_dir = base.with_name(f"{base.name}-{suffix}")
    return run_dir


def check_run_name(name: str) -> None:
    """A run name names one folder under the runs root: no separators, no `..`, nothing absolute.

    Raises:
        DistillError: the name would put the run anywhere else.
    """
    if not name or name in (".", "..") or "/" in name or "\\" in name or name.startswith("~") or "\0" in name:
        raise DistillError(
            f"--run_name {name!r} is not a folder name (it has a path separator, '..' or '~'): give a plain name; "
            f"trainer.default_root_dir chooses where runs go"
        )


def bench_command(argv: list[str]) -> None:
    """`distill bench`: measure a teacher and exported students on one dev split, in one process."""
    parser = ArgumentParser(prog="distill bench", exit_on_error=False, description=bench_command.__doc__)
    parser.add_argument("--config", action=ActionConfigFile)
    parser.add_argument("students", nargs="+", type=str, help="exported student folders")
    parser.add_argument("--teacher", type=str, required=True, help="the fine-tuned teacher folder")
    parser.add_argument(
        "--task",
        type=str | None,
        default=None,
        help="a task preset (`distill plugins` lists them; default: the students' cards)",
    )
    parser.add_argument(
        "--data_dir", type=str | None, default=None, help="the preset's data folder (default: the cards' data)"
    )
    parser.add_argument(
        "--validation", type=str | None, default=None, help="a validation file to score on instead of the cards'"
    )
    parser.add_argument("--out", type=str, default="bench", help="folder for bench.json, bench.md, pareto.png")
    parser.add_argument("--names", type=list[str] | None, default=None, help="one display name per student")
    parser.add_argument("--latency_rows", type=int, default=256, help="validation examples in the timed mix")
    parser.add_argument(
        "--tolerance", type=float, default=1.0, help="name the fastest model losing at most this many points"
    )
    parser.add_argument("--overwrite", type=bool, default=False, help="replace bench files already in --out")
    add_trust_option(parser)
    args = parser.parse_args(argv)
    refuse_existing([Path(args.out) / name for name in BENCH_FILES], args.overwrite, "--out", "pass another --out")
    for folder in (args.teacher, *args.students):
        if not Path(folder).expanduser().exists():
            raise DistillError(
                f"model folder {folder} does not exist: give folders written by distill or save_pretrained "
                f"(or an export's ONNX file)"
            )
        check_remote_code(model_folder(Path(folder).expanduser()), "model", args.trust_remote_code)
    task, examples = bench_data(args.students, args.task, args.data_dir, args.validation)
    max_length = card_max_length(Path(args.students[0]), MAX_LENGTH)
    rows = run_bench(
        args.teacher,
        args.students,
        task,
        examples,
        Path(args.out),
        args.names,
        args.latency_rows,
        max_length,
        args.tolerance,
        args.trust_remote_code,
    )
    print(table_markdown(rows))
    print(f"\nwritten: {Path(args.out) / 'bench.md'}, bench.json, pareto.png")


def bench_data(
    students: list[str], task: str | None, data_dir: str | None, validation: str | None
) -> tuple[Task, datasets.Dataset]:
    """The task and the validation examples to bench on: a preset as given, else the task and data the students
    were trained on (their cards), optionally with another validation file.

    A card's data is used only where its files exist here; with none, a preset tries the hub (whose error
    says what to pass).
    """
    cards = [card for card in map(read_card, students) if card]
    if task is not None:
        chosen, source = resolve_data(task, None, None, data_dir)
    else:
        names = {card["task"] for card in cards}
        if len(names) != 1:
            found = f"the cards name {sorted(names)}" if names else "no student folder has a card.json"
            raise DistillError(f"pass --task: {found}")
        chosen, source = card_data(cards[0], data_dir)
    if validation is not None:
        source = DataFiles(validation=validation)
    return chosen, chosen.read(source, "validation")


def card_data(card: dict, data_dir: str | None) -> tuple[Task, DataSource]:
    """The task of a card and the data its config was trained on (files kept only where they exist here)."""
    task = task_from_spec(card.get("task_spec") or card["task"])
    data = card.get("config", {}).get("data", {})
    if data_dir is None and data.get("data_dir") and Path(data["data_dir"]).expanduser().is_dir():
        data_dir = data["data_dir"]
    if data.get("files"):
        return task, DataFiles(**data["files"])
    if data.get("hub"):
        return task, HubDataset(**data["hub"])
    _, source = resolve_data(card["task"], None, None, data_dir)
    return task, source


def export_command(argv: list[str]) -> None:
    """`distill export`: export a checkpoint like `distill fit` does, and/or add ONNX copies and the export
    variants of compression methods (`--variants [DynamicQuantization]` adds int8/)."""
    parser = ArgumentParser(prog="distill export", exit_on_error=False, description=export_command.__doc__)
    parser.add_argument("--checkpoint", type=str | None, default=None, help="a .ckpt written by distill fit")
    parser.add_argument("--model", type=str | None, default=None, help="an existing export folder to add to")
    parser.add_argument("--out", type=str | None, default=None, help="export folder (default: <run>/student)")
    parser.add_argument(
        "--onnx",
        type=bool,
        default=False,
        help="add onnx/: model.onnx, model_optimized.onnx and the installed methods' copies (int8)",
    )
    parser.add_argument(
        "--calibration",
        type=str | None,
        default=None,
        help="static int8's calibration rows: a file laid out like the training split (default: the card's data)",
    )
    parser.add_argument(
        "--variants",
        type=list[str],
        default=[],
        help="compression methods whose export variants to add, by name (see `distill plugins`)",
    )
    parser.add_argument(
        "--layers", type=int | None, default=None, help="with --model and --out: cut the export to this many layers"
    )
    parser.add_argument(
        "--push_to_hub", type=str | None, default=None, help="then upload the export folder to this hub repository"
    )
    parser.add_argument("--private", type=bool, default=False, help="with --push_to_hub: make the repository private")
    args = parser.parse_args(argv)
    if (args.checkpoint is None) == (args.model is None):
        raise DistillError("give exactly one of --checkpoint (export it) or --model (add formats to an export)")
    if args.layers is not None:
        if args.model is None or args.out is None:
            raise DistillError("--layers cuts an existing export: give --model (the export) and --out (a new folder)")
        source = Path(args.model)
        if not (source / CARD_NAME).is_file():
            raise DistillError(f"{source} is not a distill export (no card.json): export it first")
        card = export_depth(source, args.layers, Path(args.out))
        print(f"written: {args.out} (layers {card['layers_kept']} of {source})")
        return
    if args.checkpoint is not None:
        checkpoint = check_checkpoint(args.checkpoint, "--checkpoint")
        folder = _export_folder(checkpoint, args.out)
        export_checkpoint(checkpoint, folder)
    else:
        folder = Path(args.model)
        if not (folder / CARD_NAME).is_file():
            raise DistillError(f"{folder} is not a distill export (no card.json): use --checkpoint to make one")
    try:
        written = [folder, *add_formats(folder, args.variants, args.onnx, args.calibration)]
    except BaseException:
        if args.checkpoint is not None:  # made by this command: a half-finished export would block the rerun
            shutil.rmtree(folder, ignore_errors=True)
        raise
    print("\n".join(f"written: {path}" for path in written))
    if args.push_to_hub:
        print(f"pushed: {push_to_hub(folder, args.push_to_hub, args.private)}")


def add_formats(folder: Path, variants: list[str], onnx: bool, calibration: str | None) -> list[Path]:
    """The export variants of the named compression methods and, with `onnx`, the ONNX serving variants."""
    methods = registered("compression")
    written = []
    for name in variants:
        if name not in methods:
            raise DistillError(f"unknown compression method {name!r}: known ones are {', '.join(sorted(methods))}")
        written += methods[name][0]().export_variants(folder)
    if onnx:
        written += onnx_variants(folder, calibration)
    return written


def onnx_variants(folder: Path, calibration: str | None) -> list[Path]:
    """The ONNX serving variants of an export, static int8 calibrated on the first training rows of its data."""
    task, source = card_data(read_card(folder), None)
    if calibration is not None:
        source = DataFiles(train=calibration)
    module = serving_module()
    try:
        rows = task.read(source, "train", module.CALIBRATION_ROWS)
    except DistillError as error:
        raise DistillError(
            f"static int8 calibrates on training rows, which could not be read: {error}; or pass "
            f"--calibration FILE, a file laid out like the training split"
        ) from None
    return module.export_onnx_variants(folder, task, rows, card_max_length(folder, MAX_LENGTH))


def _export_folder(checkpoint: Path, out: str | None) -> Path:
    """Where `distill export --checkpoint` writes: --out, or the checkpoint's run folder; never over a folder
    that already exists (distill overwrites nothing it did not create in this invocation)."""
    run = find_run_folder(checkpoint)
    if out is None and run is None:
        raise DistillError(f"{checkpoint} is not inside a distill run folder: pass --out, a new folder to export to")
    folder = Path(out).expanduser() if out is not None else run / EXPORT_NAME
    if folder.exists():
        raise DistillError(f"{folder} already exists and is never overwritten: pass --out with a new folder")
    return folder


def predict_command(argv: list[str]) -> None:
    """`distill predict`: label a CSV, TSV, JSON, JSONL or Parquet file with an exported model."""
    parser = ArgumentParser(prog="distill predict", exit_on_error=False, description=predict_command.__doc__)
    parser.add_argument("--model", type=str | None, default=None, help="an export folder (or its int8/ copy)")
    parser.add_argument("--teacher", type=str | None, default=None,
                        help="instead of --model, a teacher as model.teacher names it (a folder, a file, YAML of a "
                             "causal LM or a list); writes logit_<label> columns, a soft-label file")  # fmt: skip
    parser.add_argument("--input", type=str, required=True, help="a file holding the task's text columns")
    parser.add_argument("--output", type=str | None, default=None, help="default: <input>.predictions.<suffix>")
    parser.add_argument("--task", type=str | None, default=None, help="a preset (default: the model card's task)")
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--overwrite", type=bool, default=False, help="replace --output if it exists")
    parser.add_argument("--logits", type=bool, default=False,
                        help="add logit_<label> columns: a soft-label file a run can learn from")  # fmt: skip
    add_trust_option(parser)
    args = parser.parse_args(argv)
    if args.batch_size < 1:
        raise DistillError(f"--batch_size must be at least 1; got {args.batch_size}")
    source = Path(args.input)
    output = Path(args.output) if args.output else source.with_suffix(f".predictions{source.suffix}")
    if os.path.realpath(output.expanduser()) == os.path.realpath(source.expanduser()):
        raise DistillError(
            f"--output {output} is the input file, which distill never overwrites: pass another --output"
        )
    refuse_existing([output], args.overwrite, "--output", "pass another --output")
    if (args.model is None) == (args.teacher is None):
        raise DistillError("give --model (an export) or --teacher (a teacher as model.teacher names it), not both")
    if args.teacher is not None:
        if args.task is None:
            raise DistillError("--teacher needs --task: a teacher's labels are checked against the task's")
        spec = yaml.safe_load(args.teacher) if args.teacher.lstrip().startswith(("{", "[")) else args.teacher
        count = predict_with_teacher(spec, source, output, args.task, args.batch_size, args.trust_remote_code)
    else:
        count = predict(Path(args.model), source, output, args.task, args.batch_size, args.trust_remote_code,
                        args.logits)  # fmt: skip
    print(f"{count} rows labelled: {output}")


def add_trust_option(parser: ArgumentParser) -> None:
    """`--trust_remote_code`: the one switch that lets a model folder's own Python code run (README, "What distill
    reads and writes")."""
    parser.add_argument(
        "--trust_remote_code",
        type=bool,
        default=False,
        help="run Python code that a model folder ships (auto_map); only for code you have read",
    )


def refuse_existing(paths: list[Path], overwrite: bool, flag: str, fix: str) -> None:
    """A command writes over files that are already there only when told to (`--overwrite true`).

    Raises:
        DistillError: one of `paths` exists and `overwrite` is off.
    """
    if not overwrite and (taken := [p for p in paths if p.exists() or p.is_symlink()]):
        raise DistillError(f"{flag}: {taken[0]} already exists and is not overwritten: {fix}, or --overwrite true")


def _explain(error: ArgumentError) -> str:
    """jsonargparse's message, or a plain sentence with the valid names when YAML names an unknown class."""
    message = str(error).strip()
    unknown = re.search(r"Expected a dot import path string: (\S+)", message)
    for key, (kind, singular) in _REGISTRY_FOR_KEY.items():
        if unknown and f'"{key}"' in message:
            return (
                f"unknown {singular} {unknown.group(1)!r} in {key}: known {kind} are "
                f"{', '.join(sorted(registered(kind)))} (`distill plugins` lists every installed name)"
            )
    option = re.search(
        r"Parser key \"([^\"]+)\".*class_path '([^']+)':\s*Option '([^']+)' is not accepted", message, re.S
    )
    if option:
        key, class_path, name = option.groups()
        accepted = _init_arguments(class_path)
        known = f": it takes {', '.join(accepted)}" if accepted else ""
        return f"{key}: {class_path.rsplit('.', 1)[-1]} has no option {name!r}{known}"
    return message


def invalid_yaml(argv: list[str]) -> str | None:
    """The first --config file that is not valid YAML, named with the line and column of the problem."""
    files = [argv[i + 1] for i, arg in enumerate(argv[:-1]) if arg in ("--config", "-c")]
    files += [arg.split("=", 1)[1] for arg in argv if arg.startswith("--config=")]
    for name in files:
        try:
            yaml.safe_load(Path(name).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError):
            continue  # jsonargparse's own message says a file is missing or unreadable
        except yaml.YAMLError as error:
            mark = getattr(error, "problem_mark", None)
            place = f", line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
            problem = getattr(error, "problem", None) or str(error).splitlines()[0]
            tabs = " (YAML indents with spaces, never tabs)" if "\t" in Path(name).read_text(encoding="utf-8") else ""
            return f"config {name}{place}: not valid YAML: {problem}{tabs}"
    return None


def _init_arguments(class_path: str) -> list[str]:
    """The keyword arguments a registered class takes in YAML (its init_args)."""
    name = class_path.rsplit(".", 1)[-1]
    for kind in KINDS:
        if name in registered(kind):
            parameters = inspect.signature(registered(kind)[name][0]).parameters
            return [p for p in parameters if p not in ("self", "args", "kwargs")]
    return []


def _quiet_expected_warnings() -> None:
    transformers_logging.disable_progress_bar()  # a bar per weight load drowns the training progress bar
    # The teacher is frozen in eval mode on purpose; Lightning >= 2.5.5 warns about such modules at fit start.
    warnings.filterwarnings("ignore", message=r".*module\(s\) in eval mode.*")
    # Batches are tokenised ahead of time, so extra loader workers buy nothing on small CPU machines.
    warnings.filterwarnings("ignore", message=r".*does not have many workers.*")


def main(argv: list[str] | None = None) -> None:
    """Entry point of the `distill` console script."""
    command = (sys.argv[1:] if argv is None else argv)[:1]
    _quiet_expected_warnings()
    try:
        get_plugin_manager()  # import every plugin first, so YAML can name their classes by short name
        if command == ["plugins"]:
            print(plugins_listing())
            return
        rest = (sys.argv[1:] if argv is None else argv)[1:]
        commands = {"bench": bench_command, "export": export_command, "predict": predict_command}
        if command and command[0] in commands:
            commands[command[0]](rest)
            return
        set_parsing_settings(subclasses_enabled=[StudentConfig, Compression, Task, Augmentation])
        DistillCLI(args=argv)
    except DistillError as error:
        sys.exit(f"distill: error: {error}")
    except ArgumentError as error:
        arguments = sys.argv[1:] if argv is None else argv
        sys.exit(f"distill: error: {invalid_yaml(arguments) or _explain(error)}")
    except OSError as error:  # a folder that cannot be written, a full disk: one line, not a traceback
        place = f" {error.filename}" if error.filename else ""
        sys.exit(
            f"distill: error: cannot use{place}: {error.strerror or error}: check the path, its permissions and space"
        )


if __name__ == "__main__":
    main()
