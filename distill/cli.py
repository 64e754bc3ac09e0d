"""`distill`: LightningCLI's fit / validate / test / predict on a YAML config, plus `distill plugins`."""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import warnings
from datetime import datetime
from pathlib import Path

import yaml
from jsonargparse import ActionConfigFile, ArgumentError, ArgumentParser, Namespace, set_parsing_settings
from lightning.fabric.utilities.rank_zero import rank_zero_only
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI, SaveConfigCallback
from transformers.utils import logging as transformers_logging
from typing_extensions import override

from distill.bench import run_bench
from distill.compression import Compression, run_plugin_manager
from distill.data import GlueDataModule
from distill.errors import DistillError
from distill.export import export_checkpoint, export_onnx_variants
from distill.finish import ReportSettings, finish_fit, finish_search
from distill.module import SELECTION, DistillationModule
from distill.predict import predict
from distill.registry import KINDS, get_plugin_manager, plugin_versions, registered
from distill.report import table_markdown
from distill.student import StudentConfig
from distill.tasks import get_task

DEFAULT_ROOT = "runs"
RUN_DIR_ENV = "DISTILL_RUN_DIR"
# Which registry answers for a YAML key, so a misspelt class name gets the list of valid ones.
_REGISTRY_FOR_KEY = {
    "model.losses": ("losses", "loss"),
    "model.student": ("students", "student"),
    "model.compression": ("compression", "compression method"),
}


class LoggedConfig(SaveConfigCallback):
    """Saves config.yaml as LightningCLI does, and gives every logger the resolved config and the plugins
    (name and version) that shaped the run."""

    @override
    def save_config(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        config = yaml.safe_load(self.parser.dump(self.config, skip_none=False))
        config.get("data", {}).pop("tokenizer", None)
        for logger in trainer.loggers:
            logger.log_hyperparams({"config": config, "plugins": plugin_versions()})


class DistillCLI(LightningCLI):
    """LightningCLI wired for distillation: task and tokenizer links, one directory per run, export at the end."""

    run_dir: Path | None = None

    def __init__(self, args: list[str] | None = None, search: bool = False) -> None:
        """Args:
        args: command-line arguments (None reads sys.argv).
        search: `distill search`: train a search-space student and write the architecture it finds.
        """
        self.search = search
        self._published = False
        try:
            super().__init__(
                DistillationModule,
                GlueDataModule,
                args=args,
                seed_everything_default=42,
                save_config_callback=LoggedConfig,
                # distill's samplers shard and resume themselves; Lightning's wrapper would lose their position.
                trainer_defaults={"use_distributed_sampler": False},
                auto_configure_optimizers=False,
                # One clear error instead of usage text, and no silent expansion of a misspelt key's prefix.
                parser_kwargs={"exit_on_error": False, "allow_abbrev": False},
            )
        except DistillError:
            self._discard_unfinished_run()
            raise
        finally:
            if self._published:
                os.environ.pop(RUN_DIR_ENV, None)

    @override
    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_argument(
            "--run_name",
            type=str | None,
            default=None,
            help="Name of the run folder under trainer.default_root_dir (default: config name + time)",
        )
        parser.add_class_arguments(ReportSettings, "report")
        parser.link_arguments("data.task", "model.task")
        parser.link_arguments("model.tokenizer", "data.tokenizer", apply_on="instantiate")
        parser.link_arguments("model.teacher", "data.teacher", apply_on="instantiate")

    @override
    def before_instantiate_classes(self) -> None:
        """fit gets a fresh run folder; validate/test/predict log next to the checkpoint they evaluate."""
        config = self.config[self.subcommand]
        if self.subcommand == "fit":
            # The processes Lightning launches for DDP inherit the first process's choice through RUN_DIR_ENV.
            inherited = os.environ.get(RUN_DIR_ENV)
            self.run_dir = Path(inherited) if inherited else _run_dir(config)
            if not inherited:
                os.environ[RUN_DIR_ENV] = str(self.run_dir)
                self._published = True
            config.trainer.default_root_dir = str(self.run_dir)
            config.trainer.callbacks = [*(config.trainer.callbacks or []), best_checkpoint(self.run_dir)]
        elif config.trainer.default_root_dir is None:
            ckpt = config.get("ckpt_path")
            config.trainer.default_root_dir = str(Path(ckpt).parent.parent) if ckpt else DEFAULT_ROOT

    def before_fit(self) -> None:
        if self.search and self.model.student.search_result() is None:
            raise DistillError(
                f"`distill search` needs a search-space student; the {self.model.student.family} "
                f"student is not one (use `distill fit`, or a student such as NasCnnSearch)"
            )

    def after_fit(self) -> None:
        """Export the best student with its card, and report what it cost against the teacher; or, for
        `distill search`, write the architecture found. Logger runs are closed either way."""
        try:
            self._finish()
        finally:
            _close_runs(self.trainer)

    def _finish(self) -> None:
        self._dump_config()
        for wired in ("tokenizer", "teacher"):  # filled from the model at instantiation; not YAML keys
            self.config_dump["data"].pop(wired, None)
        if self.search:
            path = finish_search(self.trainer, self.model, self.datamodule, self.run_dir, self.config_dump)
            if path is not None:
                print(f"\ngenotype: {path}")
            return
        settings = ReportSettings(**self.config[self.subcommand].report)
        target = finish_fit(self.trainer, self.model, self.datamodule, self.run_dir, self.config_dump, settings)
        if target is not None:
            print(f"\nstudent: {target}\ncard:    {target / 'card.json'}")
            if (self.run_dir / "report.md").exists():
                print(f"report:  {self.run_dir / 'report.md'}")

    def _discard_unfinished_run(self) -> None:
        """A run stopped by bad input leaves nothing behind, unless it already saved a checkpoint."""
        if self.run_dir is not None and self.run_dir.exists() and not any(self.run_dir.rglob("*.ckpt")):
            shutil.rmtree(self.run_dir, ignore_errors=True)


def _close_runs(trainer: Trainer) -> None:
    """Finish experiment runs (wandb) once the report is logged, so everything reaches disk or the server."""
    for logger in trainer.loggers:
        finish = getattr(getattr(logger, "_experiment", None), "finish", None)
        if callable(finish):
            finish()


def best_checkpoint(run_dir: Path) -> Namespace:
    """The checkpoint the export is made from: the best dev score once every compression method has settled.

    It joins, never replaces, checkpoint callbacks of the config (say, one every N steps against preemption).
    """
    return Namespace(
        class_path="lightning.pytorch.callbacks.ModelCheckpoint",
        init_args=Namespace(
            dirpath=str(run_dir / "checkpoints"), filename="best-{step}", monitor=SELECTION, mode="max", save_last=True
        ),
    )


def _run_dir(config) -> Path:
    """The run's folder, the same in every process of a distributed run.

    A resumed run (--ckpt_path) continues in the run folder holding its checkpoint. Otherwise: runs/<name>, from
    --run_name or the config's file name and the time; an existing folder is never reused.
    """
    root = Path(config.trainer.default_root_dir or DEFAULT_ROOT).resolve()
    if config.get("ckpt_path"):
        checkpoint = Path(config.ckpt_path).resolve()
        run_dir = next((p for p in checkpoint.parents if p.parent == root), checkpoint.parent.parent)
    elif rank_zero_only.rank != 0:  # a separately launched rank (torchrun, SLURM) must share rank 0's name
        if not config.run_name:
            raise DistillError("multi-node runs need --run_name, so that every node writes to the same run folder")
        run_dir = Path(config.trainer.default_root_dir or DEFAULT_ROOT) / config.run_name
    else:
        run_dir = _new_run_dir(config)
    return run_dir


def _new_run_dir(config) -> Path:
    root = Path(config.trainer.default_root_dir or DEFAULT_ROOT)
    if config.run_name:
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


def bench_command(argv: list[str]) -> None:
    """`distill bench`: measure a teacher and exported students on one dev split, in one process."""
    parser = ArgumentParser(prog="distill bench", exit_on_error=False, description=bench_command.__doc__)
    parser.add_argument("--config", action=ActionConfigFile)
    parser.add_argument("students", nargs="+", type=str, help="exported student folders")
    parser.add_argument("--teacher", type=str, required=True, help="the fine-tuned teacher folder")
    parser.add_argument("--task", type=str, default="sst2")
    parser.add_argument("--data_dir", type=str | None, default=None, help="GLUE task folder; None loads the hub")
    parser.add_argument("--out", type=str, default="bench", help="folder for bench.json, bench.md, pareto.png")
    parser.add_argument("--names", type=list[str] | None, default=None, help="one display name per student")
    parser.add_argument("--latency_rows", type=int, default=256, help="dev examples in the timed mix")
    args = parser.parse_args(argv)
    rows = run_bench(
        args.teacher,
        args.students,
        get_task(args.task),
        Path(args.data_dir) if args.data_dir else None,
        Path(args.out),
        args.names,
        args.latency_rows,
    )
    print(table_markdown(rows))
    print(f"\nwritten: {Path(args.out) / 'bench.md'}, bench.json, pareto.png")


def export_command(argv: list[str]) -> None:
    """`distill export`: export a checkpoint like `distill fit` does, and/or add ONNX and int8 copies."""
    parser = ArgumentParser(prog="distill export", exit_on_error=False, description=export_command.__doc__)
    parser.add_argument("--checkpoint", type=str | None, default=None, help="a .ckpt written by distill fit")
    parser.add_argument("--model", type=str | None, default=None, help="an existing export folder to add to")
    parser.add_argument("--out", type=str | None, default=None, help="export folder (default: <run>/student)")
    parser.add_argument("--onnx", type=bool, default=False, help="add onnx/model.onnx and onnx/model_int8.onnx")
    parser.add_argument(
        "--int8", type=bool, default=False, help="add int8/: shorthand for --variants [DynamicQuantization]"
    )
    parser.add_argument(
        "--variants",
        type=list[str],
        default=[],
        help="compression methods whose export variants to add, by name (see `distill plugins`)",
    )
    args = parser.parse_args(argv)
    if (args.checkpoint is None) == (args.model is None):
        raise DistillError("give exactly one of --checkpoint (export it) or --model (add formats to an export)")
    if args.checkpoint is not None:
        checkpoint = Path(args.checkpoint)
        folder = Path(args.out) if args.out else checkpoint.resolve().parent.parent / "student"
        card = export_checkpoint(checkpoint, folder)
    else:
        folder = Path(args.model)
        if not (folder / "card.json").is_file():
            raise DistillError(f"{folder} is not a distill export (no card.json): use --checkpoint to make one")
        card = json.loads((folder / "card.json").read_text())
    written = [folder]
    methods = registered("compression")
    for name in [*args.variants, *(["DynamicQuantization"] if args.int8 else [])]:
        if name not in methods:
            raise DistillError(f"unknown compression method {name!r}: known ones are {', '.join(sorted(methods))}")
        method = methods[name][0]()
        written += [
            path
            for group in run_plugin_manager([method]).hook.distill_export_variants(directory=folder)
            for path in group
        ]
    if args.onnx:
        written += export_onnx_variants(folder, get_task(card["task"]).is_pair)
    print("\n".join(f"written: {path}" for path in written))


def predict_command(argv: list[str]) -> None:
    """`distill predict`: label a TSV file with an exported model."""
    parser = ArgumentParser(prog="distill predict", exit_on_error=False, description=predict_command.__doc__)
    parser.add_argument("--model", type=str, required=True, help="an export folder (or its int8/ copy)")
    parser.add_argument("--input", type=str, required=True, help="TSV with a header naming the task's text columns")
    parser.add_argument("--output", type=str | None, default=None, help="default: <input>.predictions.tsv")
    parser.add_argument("--task", type=str | None, default=None, help="default: the task in the model's card")
    parser.add_argument("--batch_size", type=int, default=64)
    args = parser.parse_args(argv)
    source = Path(args.input)
    output = Path(args.output) if args.output else source.with_suffix(".predictions.tsv")
    count = predict(Path(args.model), source, output, args.task, args.batch_size)
    print(f"{count} rows labelled: {output}")


def list_plugins() -> None:
    """`distill plugins`: each installed plugin, its distribution, and the YAML names it provides."""
    versions = plugin_versions()
    provided: dict[str, list[str]] = {}
    for kind in KINDS:
        for name, (_, plugin) in registered(kind).items():
            provided.setdefault(plugin, []).append(f"{kind}: {name}")
    for plugin in sorted(versions):
        print(f"{plugin}  ({versions[plugin]})")
        for line in provided.get(plugin, []):
            print(f"    {line}")


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
    return message


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
            list_plugins()
            return
        rest = (sys.argv[1:] if argv is None else argv)[1:]
        commands = {"bench": bench_command, "export": export_command, "predict": predict_command}
        if command and command[0] in commands:
            commands[command[0]](rest)
            return
        set_parsing_settings(subclasses_enabled=[StudentConfig, Compression])
        if command == ["search"]:
            DistillCLI(args=["fit", *rest], search=True)
            return
        DistillCLI(args=argv)
    except DistillError as error:
        sys.exit(f"distill: error: {error}")
    except ArgumentError as error:
        sys.exit(f"distill: error: {_explain(error)}")


if __name__ == "__main__":
    main()
