"""What follows training, where the training side hands over to the delivery side: score the best checkpoint,
export it, and measure what it cost against the teacher; or export a checkpoint later (`distill export
--checkpoint`). The only module of distill that imports both sides."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lightning.pytorch import LightningDataModule, Trainer
from lightning.pytorch.loggers import Logger
from lightning.pytorch.utilities import rank_zero_warn

from distill.atomic import write_json_atomic
from distill.compression import finalize, shortfalls
from distill.delivery.export import export_student
from distill.delivery.folder import export_variants_in, read_card, task_card
from distill.delivery.loading import load_model
from distill.delivery.measure import measure_models
from distill.delivery.model_card import write_model_card
from distill.delivery.report import compare, pareto_plot, write_report
from distill.delivery.scoring import scores_folder
from distill.delivery.timing import latency_mix
from distill.errors import DistillError
from distill.registry import plugin_versions
from distill.student import Student
from distill.training.callbacks import TrainingThroughput
from distill.training.module import SELECTION, DistillationModule
from distill.training.run_folder import EXPORT_NAME


@dataclass
class ReportSettings:
    """The `report:` section of a config: what the report card after `distill fit` measures.

    Attributes:
        enabled: write report.json, report.md and pareto.png after the export.
        latency_rows: dev examples in the timed mix (batch 1 and batch 32).
        onnx: also export the ONNX serving variants into the export's onnx/ folder (fp32, graph-optimised, and
            the copies installed methods make, such as int8 calibrated on training rows; needs the `onnx` extra),
            and measure them.
        tolerance_points: the card names the fastest variant that loses at most this many points against the
            teacher (at batch 64 and row by row).
    """

    enabled: bool = True
    latency_rows: int = 256
    onnx: bool = False
    tolerance_points: float = 1.0


def finish_fit(
    trainer: Trainer,
    module: DistillationModule,
    data: LightningDataModule,
    run_dir: Path,
    config: dict[str, Any],
    report: ReportSettings,
) -> Path | None:
    """Validate the best checkpoint, write the student's run artefacts, export the student and write the report
    card (on rank 0 only). A student that is not exported (a search space) gets its artefacts only.

    Returns:
        What was written on rank 0 (the export folder, or the first artefact), None on other ranks.
    """
    best = best_checkpoint_path(trainer)
    # Read before validating: validate() attaches fresh callbacks from the module's configure_callbacks.
    training = next(c.summary(trainer) for c in trainer.callbacks if isinstance(c, TrainingThroughput))
    metrics = trainer.validate(module, datamodule=data, ckpt_path=best or None, verbose=False)[0]
    if not trainer.is_global_zero:
        return None
    dev = {k.removeprefix("val/"): v for k, v in metrics.items()}
    artefacts = write_artefacts(
        module.student, run_dir, {"dev_metrics": dev, "checkpoint": best or None, "config": config}
    )
    if not module.student.exported:
        return artefacts[0] if artefacts else None
    missed = shortfalls(module.compression)
    for note in missed:
        rank_zero_warn(f"WARNING: {note}")
    card = {
        **task_card(module.task, data.max_length, data.hub_origin),
        "teacher": module.hparams.teacher,
        "checkpoint": best or None,
        **({"compression_shortfalls": missed} if missed else {}),
        "dev_metrics": dev,
        "training": training,
        "data_notes": {split: notes for split, notes in getattr(data, "notes", {}).items() if notes},
        "config": config,
    }
    target = run_dir / EXPORT_NAME
    finalize(module.compression, module.student)
    export_student(module.student, module.tokenizer, target, card, module.compression, module.task)
    if report.onnx:
        onnx, train = serving_module(), data.read("train")
        calibration = train.select(range(min(onnx.CALIBRATION_ROWS, len(train))))
        onnx.export_onnx_variants(target, module.task, calibration, data.max_length)
    if module.teacher is not None and report.enabled and module.teacher.served is None:
        rank_zero_warn(
            f"no report card: the teacher ({module.teacher.anatomy.family}) answers training rows only and cannot be "
            f"measured on dev beside the student; `distill bench --teacher MODEL {target}` compares against a model"
        )
    elif module.teacher is not None and report.enabled:
        card = report_card(module, target, data, training, config, report)
        write_report(card, run_dir)
        write_model_cards(target, card["rows"])
        pareto_plot(card["rows"], run_dir / "pareto.png")
        log_report(trainer.loggers, card, run_dir / "pareto.png")
    return target


def write_artefacts(student: Student, run_dir: Path, provenance: dict[str, Any]) -> list[Path]:
    """The student's run artefacts as JSON files in the run folder, each with where it came from."""
    written = []
    for name, content in student.run_artefacts().items():
        write_json_atomic(run_dir / name, {**content, **provenance})
        written.append(run_dir / name)
    return written


def write_model_cards(export: Path, rows: list[dict[str, Any]]) -> None:
    """README.md model cards with the measured table, in the export and each variant folder (an ONNX folder is
    described by its first file, the fp32 graph)."""
    card = read_card(export)
    write_model_card(export, card, rows, "student")
    described = {export}
    for name, variant in export_variants_in(export).items():
        folder = variant if variant.is_dir() else variant.parent
        if folder not in described:
            write_model_card(folder, card, rows, f"student-{name}")
            described.add(folder)


def serving_module() -> Any:
    """distill's ONNX serving module, which needs the `onnx` extra.

    Raises:
        DistillError: onnxruntime or onnx is not installed.
    """
    try:
        from distill.delivery import serving
    except ImportError as error:
        raise DistillError(f"ONNX needs {error.name}, which is not installed: pip install 'distill[onnx]'") from None
    return serving


def export_checkpoint(checkpoint: Path, target: Path) -> dict[str, Any]:
    """Export from a training checkpoint, as `distill fit` exports its best one.

    Raises:
        DistillError: the checkpoint does not exist.
    """
    if not checkpoint.is_file():
        raise DistillError(f"checkpoint {checkpoint} does not exist: give a .ckpt written by `distill fit`")
    module = DistillationModule.load_from_checkpoint(checkpoint, map_location="cpu", weights_only=True).eval()
    finalize(module.compression, module.student)
    card = {**task_card(module.task), "teacher": module.hparams.teacher, "checkpoint": str(checkpoint)}
    return export_student(module.student, module.tokenizer, target, card, module.compression, module.task)


def best_checkpoint_path(trainer: Trainer) -> str:
    """The best checkpoint by the selection score, or "" when the run kept none."""
    selecting = [c for c in trainer.checkpoint_callbacks if c.monitor == SELECTION]
    return selecting[0].best_model_path if selecting else ""


def report_card(
    module: DistillationModule,
    student_dir: Path,
    data: LightningDataModule,
    training: dict,
    config: dict[str, Any],
    settings: ReportSettings,
) -> dict[str, Any]:
    """Teacher and exported student, measured in this process on the validation examples the run was scored on."""
    teacher = module.teacher
    task = module.task
    student, student_tokenizer = load_model(student_dir)
    examples = data.read("validation")
    members = {name: (t.served, t.tokenizer, t.folder()) for name, t in teacher.members().items()}
    models = {
        "teacher": (teacher.served, teacher.tokenizer, teacher.folder()),
        **members,
        "student": (student, student_tokenizer, student_dir),
    }
    for name, variant in export_variants_in(student_dir).items():  # e.g. the int8 copy, the ONNX files
        models[f"student-{name}"] = (*load_model(variant), variant)
    max_length = data.max_length
    scores = scores_folder(getattr(data, "cache_dir", None))
    measured = measure_models(models, task, examples, settings.latency_rows, max_length, scores)
    if members:  # an ensemble's weights are its members' together
        sizes = [measured[name]["size_on_disk_bytes"] for name in members]
        measured["teacher"]["size_on_disk_bytes"] = sum(sizes) if all(sizes) else None
    sections = measured["student"]["sections"]
    return {
        "task": task.name,
        "rows": compare(measured, task),
        "measured": measured,
        "latency_mix": latency_mix(task, teacher.tokenizer, examples, settings.latency_rows, max_length),
        "tolerance_points": settings.tolerance_points,
        "training": training,
        "trains_predictions": module.trains_predictions,
        "sections": sections,
        "plugins": plugin_versions(),
        "config": config,
    }


def log_report(loggers: list[Logger], report: dict[str, Any], plot: Path) -> None:
    """Scalars for every logger; a table and the plot for loggers that take them (wandb)."""
    student = next(r for r in report["rows"] if r["model"] == "student")
    scalars = {f"report/{k}": v for k, v in student.items() if isinstance(v, int | float)}
    for logger in loggers:
        logger.log_metrics(scalars)
        if hasattr(logger, "log_table"):
            columns = list(report["rows"][0])
            logger.log_table(key="report/card", columns=columns, data=[[r[c] for c in columns] for r in report["rows"]])
        if hasattr(logger, "log_image"):
            logger.log_image(key="report/pareto", images=[str(plot)])
