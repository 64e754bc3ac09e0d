"""The report card and the survey-style comparison table: what a student cost, measured against its teacher."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import yaml

from distill.atomic import write_bytes_atomic, write_json_atomic, write_text_atomic
from distill.delivery.timing import MIN_SAMPLE_SECONDS
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
                "value_batch1": m["metrics_batch1"][metric],
                "drop_points_batch1": 100 * (base["metrics"][metric] - m["metrics_batch1"][metric]),
                "batch_dependent": m.get("batch_dependent"),  # None: measured before the probe, scored both ways
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
                **accelerator_figures(m.get("accelerator"), base.get("accelerator")),
                **{f"{METRIC_PREFIX}{key}": value for key, value in m["metrics"].items()},
                **{f"{METRIC_PREFIX}{key}": value for key, value in m.get("agreement", {}).items()},
            }
        )
    return rows


METRIC_PREFIX = "dev_"  # a row's every metric of the task, beside the main one its ratios are taken on
GPU = "gpu_"  # a row's figures timed on the GPU, beside the CPU's


def accelerator_figures(timed: dict | None, teacher: dict | None) -> dict[str, Any]:
    """A row's GPU latency and speed-ups against the teacher on the same GPU: none when nothing was timed on a
    GPU; the device and why not for a model that runs on the CPU only."""
    if timed is None:
        return {}
    figures: dict[str, Any] = {f"{GPU}device": timed["device"], f"{GPU}skipped": timed.get("skipped")}
    for b in (1, 32):
        mine = timed.get(f"latency_batch{b}")
        theirs = (teacher or {}).get(f"latency_batch{b}")
        figures[f"{GPU}median_ms_batch{b}"] = mine["median_ms"] if mine else None
        figures[f"{GPU}speedup_batch{b}"] = theirs["median_ms"] / mine["median_ms"] if mine and theirs else None
    figures[f"{GPU}examples_per_second_batch32"] = mine["examples_per_second"] if mine else None
    return figures


def metrics_markdown(rows: list[dict[str, Any]]) -> str:
    """Every dev metric of each model (a task such as QA scores exact match beside F1), and its agreement with the
    teacher where the task measures it (n/a where a model has none, such as a cosine across widths); "" when there
    is one metric only."""
    names = list(dict.fromkeys(key for r in rows for key in r if key.startswith(METRIC_PREFIX)))
    if len(names) < 2:
        return ""
    header = " | ".join(key.removeprefix(METRIC_PREFIX).replace("_", " ") for key in names)
    lines = [f"| model | {header} |", "|---|" + "---|" * len(names)]
    lines += [f"| {r['model']} | " + " | ".join(_fmt(_points(r.get(key)), ".2f") for key in names) + " |" for r in rows]
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


def batch_dependence_markdown(rows: list[dict[str, Any]]) -> str:
    """Which models answer a row differently at batch 1 than at batch 64, and by how much on dev."""
    moved = [r for r in rows if round(r["value"] - r["value_batch1"], 4) != 0]
    probed = [r["model"] for r in rows if r.get("batch_dependent")]
    how = (
        f"A 64-row probe found answers that depend on their batch mates in {', '.join(probed)}, which were scored "
        f"row by row on the whole split; the other models answer each row the same in any batch."
        if probed
        else ""
    )
    if not moved:
        if not probed:
            return "Every model scores the same on dev at batch 1 as at batch 64: no answer depends on its batch mates."
        return f"Every model scores the same on dev at batch 1 as at batch 64. {how}"
    lines = [
        *([how, ""] if how else []),
        "These models answer some rows differently at batch 1 than at batch 64: they compute something per batch "
        "(dynamic quantization takes one activation range per batch, from every row in it). A variant whose "
        "ranges are fixed in advance (static int8, calibrated on training rows) answers each row the same way "
        "whatever it is batched with.",
        "",
        f"| model | {rows[0]['metric']} @64 | @1 | difference (pts) |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {r['model']} | {100 * r['value']:.2f} | {100 * r['value_batch1']:.2f} "
        f"| {100 * (r['value_batch1'] - r['value']):+.2f} |"
        for r in moved
    ]
    return "\n".join(lines)


def fastest_within(
    rows: list[dict[str, Any]], tolerance_points: float, batch: int, prefix: str = ""
) -> dict[str, Any] | None:
    """The fastest model at `batch` (on the CPU, or with prefix GPU on the GPU) that loses at most
    `tolerance_points` against the teacher, scored both at batch 64 and row by row (its worse score counts); None
    when none does."""
    eligible = [
        r
        for r in rows
        if r["model"] != "teacher"
        and max(r["drop_points"], r["drop_points_batch1"]) <= tolerance_points
        and r.get(f"{prefix}speedup_batch{batch}") is not None
    ]
    return max(eligible, key=lambda r: r[f"{prefix}speedup_batch{batch}"], default=None)


def choice_markdown(rows: list[dict[str, Any]], tolerance_points: float) -> str:
    """One line per batch size: which variant to serve, for the tolerance the config states; when a GPU was timed
    too, one line per device and batch size, naming the device."""
    gpu = rows[0].get(f"{GPU}device")
    devices = [("", "CPU, " if gpu else "")] + ([(GPU, f"{gpu}, ")] if gpu else [])
    lines = []
    for prefix, device in devices:
        for batch in (1, 32):
            best = fastest_within(rows, tolerance_points, batch, prefix)
            lines.append(
                f"- {device}batch {batch}: no variant stays within {tolerance_points:g} points of the teacher"
                if best is None
                else f"- {device}batch {batch}: **{best['model']}**, "
                f"{best[f'{prefix}speedup_batch{batch}']:.2f}x the teacher's speed, "
                f"{100 * min(best['value'], best['value_batch1']):.2f} {best['metric']} (worse of batch 64 and 1)"
            )
    return "\n".join(lines)


def _points(value: float | None) -> float | None:
    return None if value is None else 100 * value


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
    """The CPU latency table; then, when a GPU was there, the GPU's (synchronised), models that run on the CPU
    only saying so."""
    lines = [
        "| model | median ms @1 | p90 ms @1 | median ms @32 | p90 ms @32 | examples/s @32 |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['median_ms_batch1']:.2f} | {r['p90_ms_batch1']:.2f} | {r['median_ms_batch32']:.1f} "
            f"| {r['p90_ms_batch32']:.1f} | {r['examples_per_second_batch32']:.0f} |"
        )
    if not rows[0].get(f"{GPU}device"):
        return "\n".join(lines)
    lines += [
        "",
        f"On the {rows[0][f'{GPU}device']}, each call synchronised:",
        "",
        "| model | median ms @1 | speedup @1 | median ms @32 | speedup @32 | examples/s @32 |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        if r.get(f"{GPU}median_ms_batch1") is None:
            lines.append(f"| {r['model']} | {r.get(f'{GPU}skipped') or 'not timed'} | | | | |")
            continue
        lines.append(
            f"| {r['model']} | {r[f'{GPU}median_ms_batch1']:.2f} | {_fmt(r[f'{GPU}speedup_batch1'], '.2f')}x "
            f"| {r[f'{GPU}median_ms_batch32']:.2f} | {_fmt(r[f'{GPU}speedup_batch32'], '.2f')}x "
            f"| {r[f'{GPU}examples_per_second_batch32']:.0f} |"
        )
    return "\n".join(lines)


# The plot's metric axis spans this many points below the best model (or a fifth of the best score, if more: a
# retrieval score of 78 shows down to 62), so a broken outlier does not squash the rest.
SHOWN_POINTS = 12.0
SWEEP = "@"  # `model@knob=value`: one model at several settings of one knob, e.g. an early-exit threshold


def family_of(row: dict[str, Any]) -> str:
    """The colour group of a row: its `family` when the caller gave one, else the model it varies."""
    return row.get("family") or row["model"].split(SWEEP)[0].split("-")[0].split(" / ")[0]


def pareto_front(rows: list[dict[str, Any]], key: str, larger_is_better: bool) -> list[dict[str, Any]]:
    """The rows no other row beats on both `key` and the metric, ordered from the best `key` down."""
    front, best = [], float("-inf")
    for row in sorted(rows, key=lambda r: (-r[key] if larger_is_better else r[key], -r["value"])):
        if row["value"] > best:
            front.append(row)
            best = row["value"]
    return front


def pareto_plot(rows: list[dict[str, Any]], path: Path) -> None:
    """The metric against the speed-up at batch 1 and against the size on disk, both on log axes. Only the
    Pareto front is labelled, colours are method families (`family_of`), and a model's sweep over one knob
    (`name@threshold=0.1`, ...) is one line rather than a dot per setting."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    families = sorted({family_of(r) for r in rows})
    palette = plt.get_cmap("tab10" if len(families) <= 10 else "tab20")
    colour = {family: palette(i % palette.N) for i, family in enumerate(families)}
    best = max(100 * r["value"] for r in rows)
    shown = max(SHOWN_POINTS, best / 5)
    floor = max(min(100 * r["value"] for r in rows) - 1, best - shown)
    panels = (
        ("speedup_batch1", "speed-up over the teacher at batch 1 (CPU, log scale)", True),
        ("size_mb", "size on disk in MB (log scale)", False),
    )
    fronts = [pareto_front([r for r in rows if r.get(key)], key, better) for key, _, better in panels]
    key_inches = 0.8 + 0.15 * (1 + max(len(front) for front in fronts))  # the x label, then the longer key
    height = 5.9 + key_inches
    figure, axes = plt.subplots(1, 2, figsize=(14, height))
    figure.subplots_adjust(left=0.05, right=0.99, wspace=0.15, top=1 - 0.9 / height, bottom=key_inches / height)
    for axis, (key, label, _), front in zip(axes, panels, fronts, strict=True):
        points = [r for r in rows if r.get(key)]
        sweeps: dict[str, list[dict[str, Any]]] = {}
        for r in points:
            if SWEEP in r["model"]:
                sweeps.setdefault(r["model"].split(SWEEP)[0], []).append(r)
            else:
                axis.scatter(r[key], 100 * r["value"], color=colour[family_of(r)], s=24, zorder=3)
        for members in sweeps.values():
            members.sort(key=lambda r: r[key])
            xs, ys = [r[key] for r in members], [100 * r["value"] for r in members]
            axis.plot(xs, ys, color=colour[family_of(members[0])], marker=".", linewidth=1.2, zorder=2)
        axis.plot([r[key] for r in front], [100 * r["value"] for r in front], color="gray", linestyle="--", lw=0.8)
        for n, r in enumerate(front, 1):  # numbered on the plot, named in the key: long names never overlap
            axis.annotate(str(n), (r[key], 100 * r["value"]), textcoords="offset points", xytext=(3, 4), fontsize=8)
        key_text = "\n".join(f"{n}  {r['model']}" for n, r in enumerate(front, 1))
        axis.annotate(
            f"Pareto front:\n{key_text}",
            (0, 0),
            xycoords="axes fraction",
            xytext=(0, -38),
            textcoords="offset points",
            fontsize=8,
            va="top",
        )
        below = sum(100 * r["value"] < floor for r in points)
        axis.set_ylim(floor, best + 0.5)
        axis.set_xscale("log")
        axis.set_xlabel(label)
        axis.set_ylabel(f"dev {rows[0]['metric']} (%)")
        if below:
            axis.set_title(f"{below} model(s) more than {shown:.0f} points below the best are off the axis", fontsize=8)
        axis.grid(alpha=0.3, which="both")
    handles = [plt.Line2D([], [], color=colour[f], marker="o", linestyle="", label=f) for f in families]
    figure.legend(handles=handles, loc="upper center", ncol=min(len(families), 5), fontsize=9, frameon=False)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=120)
    plt.close(figure)
    write_bytes_atomic(path, buffer.getvalue())


UNTRAINED_HEAD = (
    "**No loss of this run trained the student's predictions** (a task-agnostic stage): its task head is "
    "untrained, so the dev score above says nothing about the task yet. Continue with task distillation from this "
    "export, with a student family that starts from an exported model (`model: <this run>/student`; `distill "
    "plugins` lists the students)."
)


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
        *(["", UNTRAINED_HEAD] if report.get("trains_predictions") is False else []),
        "",
        table_markdown(rows),
        *(["", metrics] if (metrics := metrics_markdown(rows)) else []),
        "",
        f"Latency: {mix['examples']} dev inputs ({mix['tokens_median']} tokens median, {mix['tokens_max']} max), "
        f"{mix['threads']} CPU threads, after warm-up; teacher and student timed interleaved in one process, "
        f"a model under {MIN_SAMPLE_SECONDS * 1000:g} ms per call timed over back-to-back calls.",
        "",
        latency_markdown(rows),
        "",
        "## Which variant to serve",
        "",
        f"The fastest variant that loses at most {report['tolerance_points']:g} points against the teacher "
        f"(`report.tolerance_points`), at each batch size:",
        "",
        choice_markdown(rows, report["tolerance_points"]),
        "",
        "## Batch dependence",
        "",
        batch_dependence_markdown(rows),
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
