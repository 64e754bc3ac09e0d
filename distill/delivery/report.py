"""The report card and the survey-style comparison table: what a student cost, measured against its teacher."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import yaml

from distill.delivery.export import write_bytes_atomic, write_json_atomic, write_text_atomic
from distill.task import Task


def compare(measured: dict[str, dict], task: Task, teacher: str = "teacher") -> list[dict[str, Any]]:
    """One row per model with its figures and its ratios to the teacher, all from the same measurement."""
    base = measured[teacher]
    metric = task.main_metric
    rows = []
    for name, m in measured.items():
        rows.append(
            {
                "model": name,
                "metric": metric,
                "value": m["metrics"][metric],
                "drop_points": 100 * (base["metrics"][metric] - m["metrics"][metric]),
                "parameters": m["parameters"]["total"],
                "parameters_without_embeddings": m["parameters"]["without_embeddings"],
                "nonzero_parameters": m["parameters"]["nonzero"],
                "size_mb": m["size_on_disk_bytes"] / 1e6 if m["size_on_disk_bytes"] else None,
                "size_ratio": (
                    m["size_on_disk_bytes"] / base["size_on_disk_bytes"]
                    if m["size_on_disk_bytes"] and base["size_on_disk_bytes"]
                    else None
                ),
                **{
                    f"{stat}_ms_batch{b}": m[f"latency_batch{b}"][f"{stat}_ms"]
                    for b in (1, 32)
                    for stat in ("median", "p90")
                },
                **{
                    f"speedup_batch{b}": base[f"latency_batch{b}"]["median_ms"] / m[f"latency_batch{b}"]["median_ms"]
                    for b in (1, 32)
                },
                "examples_per_second_batch32": m["latency_batch32"]["examples_per_second"],
                **{f"{METRIC_PREFIX}{key}": value for key, value in m["metrics"].items()},
            }
        )
    return rows


METRIC_PREFIX = "dev_"  # a row's every metric of the task, beside the main one its ratios are taken on


def metrics_markdown(rows: list[dict[str, Any]]) -> str:
    """Every dev metric of each model (a task such as QA scores exact match beside F1); "" when there is one."""
    names = [key for key in rows[0] if key.startswith(METRIC_PREFIX)]
    if len(names) < 2:
        return ""
    header = " | ".join(key.removeprefix(METRIC_PREFIX).replace("_", " ") for key in names)
    lines = [f"| model | {header} |", "|---|" + "---|" * len(names)]
    lines += [f"| {r['model']} | " + " | ".join(f"{100 * r[key]:.2f}" for key in names) + " |" for r in rows]
    return "\n".join(lines)


def signed_change(drop_points: float) -> str:
    """Student minus teacher, signed so that a loss reads as a loss: "-1.15" lost, "+0.23" gained."""
    return f"{0.0 - drop_points:+.2f}"  # 0.0 - x, not -x: the teacher's own row reads +0.00, not -0.00


def change_in_words(drop_points: float) -> str:
    """ "a loss of 1.15 points" or "a gain of 0.23 points" against the teacher."""
    if round(drop_points, 2) == 0:
        return "the same score as the teacher"
    kind = "a loss" if drop_points > 0 else "a gain"
    return f"{kind} of {abs(drop_points):.2f} points against the teacher"


def _fmt(value: float | None, pattern: str) -> str:
    return "n/a" if value is None else format(value, pattern)


def table_markdown(rows: list[dict[str, Any]]) -> str:
    """The survey's Table 1 layout: size with and without embeddings, speedups, metric, and its change against
    the teacher (negative: points lost)."""
    metric = rows[0]["metric"]
    lines = [
        f"| model | params | params w/o emb. | non-zero | MB on disk | speedup @1 | speedup @32 | {metric} "
        "| vs teacher (pts) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['parameters'] / 1e6:.2f}M | {r['parameters_without_embeddings'] / 1e6:.2f}M "
            f"| {r['nonzero_parameters'] / 1e6:.2f}M | {_fmt(r['size_mb'], '.1f')} | {r['speedup_batch1']:.2f}x "
            f"| {r['speedup_batch32']:.2f}x | {100 * r['value']:.2f} | {signed_change(r['drop_points'])} |"
        )
    return "\n".join(lines)


def latency_markdown(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| model | median ms @1 | p90 ms @1 | median ms @32 | p90 ms @32 | examples/s @32 |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['median_ms_batch1']:.2f} | {r['p90_ms_batch1']:.2f} | {r['median_ms_batch32']:.1f} "
            f"| {r['p90_ms_batch32']:.1f} | {r['examples_per_second_batch32']:.0f} |"
        )
    return "\n".join(lines)


def pareto_plot(
    rows: list[dict[str, Any]], path: Path, latency_label: str = "median latency at batch 1 (ms, CPU)"
) -> None:
    """Metric against batch-1 latency and against size on disk; the non-dominated models are joined by a line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metric = rows[0]["metric"]
    figure, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for axis, key, label in (
        (axes[0], "median_ms_batch1", latency_label),
        (axes[1], "size_mb", "size on disk (MB)"),
    ):
        points = [(r[key], 100 * r["value"], r["model"]) for r in rows if r[key] is not None]
        for x, y, name in points:
            axis.scatter(x, y, color="tab:red" if name == "teacher" else "tab:blue")
            axis.annotate(name, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
        frontier = _frontier([(x, y) for x, y, _ in points])
        axis.plot(*zip(*frontier, strict=True), color="tab:gray", linestyle="--", linewidth=1)
        axis.set_xlabel(label)
        axis.set_ylabel(f"dev {metric} (%)")
        axis.grid(alpha=0.3)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=120)
    plt.close(figure)
    write_bytes_atomic(path, buffer.getvalue())


def _frontier(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Points no other point beats on both axes (lower x and higher y), sorted by x."""
    frontier, best = [], float("-inf")
    for x, y in sorted(points, key=lambda p: (p[0], -p[1])):
        if y > best:
            frontier.append((x, y))
            best = y
    return frontier


def report_markdown(report: dict[str, Any]) -> str:
    """The human-readable report card."""
    rows = report["rows"]
    student = next(r for r in rows if r["model"] != "teacher")
    mix = report["latency_mix"]
    speed1, speed32 = student["speedup_batch1"], student["speedup_batch32"]
    smaller = _fmt(1 / student["size_ratio"] if student["size_ratio"] else None, ".2f")
    parts = [
        f"# Report card: {report['task']}",
        "",
        f"The student keeps **{100 * student['value']:.2f}** {student['metric']} on dev "
        f"({change_in_words(student['drop_points'])}), is **{speed1:.2f}x** faster at batch 1 "
        f"and **{speed32:.2f}x** at batch 32, and is {smaller}x smaller on disk.",
        "",
        table_markdown(rows),
        *(["", metrics] if (metrics := metrics_markdown(rows)) else []),
        "",
        f"Latency: {mix['examples']} dev inputs ({mix['tokens_median']} tokens median, {mix['tokens_max']} max), "
        f"{mix['threads']} CPU threads, after warm-up; teacher and student timed interleaved in one process.",
        "",
        latency_markdown(rows),
    ]
    if report.get("training"):
        t = report["training"]
        parts += [
            "",
            f"Training: {t['samples']} samples in {t['seconds']} s of training steps "
            f"({t['samples_per_second']} samples/s).",
        ]
    for section in report.get("sections", []):
        parts += ["", f"## {section['title']}", "", _mapping_table(section["data"])]
    if report.get("config"):
        parts += [
            "",
            "## Resolved config",
            "",
            "```yaml",
            yaml.safe_dump(report["config"], sort_keys=False).strip(),
            "```",
        ]
    return "\n".join(parts) + "\n"


def _mapping_table(data: dict[str, Any]) -> str:
    lines = ["| name | value |", "|---|---|"]
    lines += [
        f"| {key} | {value:.4f} |" if isinstance(value, float) else f"| {key} | {value} |"
        for key, value in data.items()
    ]
    return "\n".join(lines)


def write_report(report: dict[str, Any], folder: Path) -> None:
    """report.json and report.md, each written atomically."""
    write_json_atomic(folder / "report.json", report)
    write_text_atomic(folder / "report.md", report_markdown(report))
