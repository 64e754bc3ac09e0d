"""`distill bench`: a teacher and exported students measured in one process, written as a table, JSON and a plot."""

from __future__ import annotations

from pathlib import Path

from distill.atomic import write_json_atomic, write_text_atomic
from distill.delivery.batching import MAX_LENGTH
from distill.delivery.loading import load_model
from distill.delivery.measure import measure_models
from distill.delivery.report import (
    batch_dependence_markdown,
    choice_markdown,
    compare,
    latency_markdown,
    metrics_markdown,
    pareto_plot,
    table_markdown,
)
from distill.delivery.scoring import scores_folder
from distill.delivery.timing import latency_mix
from distill.errors import DistillError
from distill.export_format import bench_variants
from distill.lazy import lazy_module
from distill.task import Task
from distill.teacher import Teacher

datasets = lazy_module("datasets")

BENCH_FILES = ("bench.json", "bench.md", "pareto.png")  # what `distill bench` writes into --out


def run_bench(
    teacher: str,
    students: list[str],
    task: Task,
    examples: datasets.Dataset,
    out: Path,
    names: list[str] | None = None,
    latency_rows: int = 256,
    max_length: int = MAX_LENGTH,
    tolerance_points: float = 1.0,
    trust_remote_code: bool = False,
) -> list[dict]:
    """`distill bench`: teacher and exported students in one process; writes bench.json, bench.md, pareto.png.

    Raises:
        DistillError: a folder holds no loadable model, or names and students differ in number.
    """
    names = names or [_model_name(Path(s)) for s in students]
    if len(names) != len(students) or len(set(names)) != len(names) or "teacher" in names:
        raise DistillError(f"--names must give one distinct name per student (not 'teacher'); got {names}")
    reference = Teacher(teacher, task, trust_remote_code)  # its labels checked by name and put in the task's order
    models = {"teacher": (reference.served, reference.tokenizer, Path(teacher))}
    for name, folder in zip(names, students, strict=True):
        model, tokenizer = load_model(folder, trust_remote_code)
        models[name] = (model, tokenizer, Path(folder))
        models |= {label: (variant, tokenizer, Path(folder)) for label, variant in bench_variants(name, model)}
    measured = measure_models(models, task, examples, latency_rows, max_length, scores_folder())
    rows = compare(measured, task)
    mix = latency_mix(task, models["teacher"][1], examples, latency_rows, max_length)
    markdown = "\n".join(
        [
            f"# distill bench: {task.name} validation split",
            "",
            table_markdown(rows),
            *(["", metrics] if (metrics := metrics_markdown(rows)) else []),
            "",
            f"Latency over {mix['examples']} dev inputs ({mix['tokens_median']} tokens median), "
            f"{mix['threads']} threads.",
            "",
            latency_markdown(rows),
            "",
            f"Fastest within {tolerance_points:g} points of the teacher (`--tolerance`):",
            "",
            choice_markdown(rows, tolerance_points),
            "",
            batch_dependence_markdown(rows),
            "",
            "![Pareto plot](pareto.png)",
            "",
        ]
    )
    write_json_atomic(
        out / "bench.json",
        {"task": task.name, "rows": rows, "latency_mix": mix, "models": {n: str(m[2]) for n, m in models.items()}},
    )
    write_text_atomic(out / "bench.md", markdown)
    pareto_plot(rows, out / "pareto.png")
    return rows


def _model_name(folder: Path) -> str:
    """A run's export folder is <run>/student: name it after the run; an ONNX file after its export and stem."""
    if folder.suffix == ".onnx":
        return f"{_model_name(folder.parent.parent)}-{folder.parent.name}-{folder.stem}"
    return folder.parent.name if folder.name == "student" else folder.name
