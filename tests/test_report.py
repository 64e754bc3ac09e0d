from __future__ import annotations

import matplotlib.image
import pytest

from distill.delivery.report import (
    batch_dependence_markdown,
    choice_markdown,
    compare,
    fastest_within,
    pareto_plot,
    report_markdown,
    table_markdown,
)
from distill.registry import task_from_spec

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def measured_model(
    accuracy: float, params: int, size: int, ms1: float, ms32: float, accuracy_batch1: float | None = None
) -> dict:
    latency = {"median_ms": ms1, "p90_ms": ms1 * 1.2, "examples_per_second": 1000 / ms1}
    return {
        "metrics": {"accuracy": accuracy},
        "metrics_batch1": {"accuracy": accuracy if accuracy_batch1 is None else accuracy_batch1},
        "parameters": {"total": params, "without_embeddings": params // 2, "nonzero": params},
        "size_on_disk_bytes": size,
        "latency_batch1": latency,
        "latency_batch32": {**latency, "median_ms": ms32, "examples_per_second": 32000 / ms32},
    }


@pytest.fixture
def rows():
    measured = {
        "teacher": measured_model(0.90, 22_000_000, 90_000_000, 10.0, 200.0),
        "bert_l3": measured_model(0.89, 17_000_000, 70_000_000, 5.0, 100.0),
        "bilstm": measured_model(0.85, 10_000_000, 40_000_000, 1.0, 8.0),
    }
    return compare(measured, task_from_spec("sst2"))


def test_ratios_are_computed_from_the_measurements(rows):
    teacher, student, bilstm = rows
    assert teacher["speedup_batch1"] == 1.0 and teacher["drop_points"] == 0.0
    assert student["speedup_batch1"] == 2.0 and student["speedup_batch32"] == 2.0
    assert bilstm["speedup_batch32"] == 25.0
    assert student["drop_points"] == pytest.approx(1.0)
    assert student["size_ratio"] == pytest.approx(70 / 90)


def test_table_has_one_row_per_model(rows):
    lines = table_markdown(rows).splitlines()
    assert len(lines) == 2 + 3
    assert [line.split("|")[1].strip() for line in lines[2:]] == ["teacher", "bert_l3", "bilstm"]
    assert "| 2.00x | 2.00x | 89.00 | -1.00 |" in lines[3]  # a loss reads as a loss
    assert "vs teacher (pts)" in lines[0]


def test_pareto_plot_is_a_valid_png(rows, tmp_path):
    pareto_plot(rows, tmp_path / "pareto.png")
    data = (tmp_path / "pareto.png").read_bytes()
    assert data.startswith(PNG_SIGNATURE)
    height, width, _ = matplotlib.image.imread(tmp_path / "pareto.png").shape
    assert width > height > 100


def test_report_markdown_states_the_measured_costs(rows):
    report = {
        "task": "sst2",
        "rows": rows[:2],
        "latency_mix": {"examples": 256, "tokens_median": 22, "tokens_max": 60, "threads": 2},
        "training": {"samples": 64, "seconds": 1.0, "samples_per_second": 64.0},
        "config": {"a": 1},
        "tolerance_points": 1.0,
    }
    text = report_markdown(report)
    assert "**89.00** accuracy" in text and "**2.00x** faster at batch 1" in text and "1.29x smaller" in text
    assert "(a loss of 1.00 points against the teacher)" in text
    assert "64.0 samples/s" in text and "a: 1" in text
    assert "untrained" not in text
    assert "task head is untrained" in report_markdown({**report, "trains_predictions": False})


def test_the_card_names_the_fastest_variant_within_the_tolerance_on_its_worse_batch_score():
    measured = {
        "teacher": measured_model(0.90, 22_000_000, 90_000_000, 10.0, 200.0),
        "student": measured_model(0.895, 17_000_000, 70_000_000, 5.0, 100.0),
        # fast, and fine at batch 64, but 1.5 points lower row by row: its worse score decides
        "student-dynamic": measured_model(0.893, 17_000_000, 20_000_000, 2.0, 30.0, accuracy_batch1=0.878),
        "student-static": measured_model(0.892, 17_000_000, 20_000_000, 2.5, 40.0),
    }
    rows = compare(measured, task_from_spec("sst2"))
    assert rows[2]["drop_points_batch1"] == pytest.approx(2.2)
    assert fastest_within(rows, 1.0, batch=1)["model"] == "student-static"
    assert fastest_within(rows, 2.5, batch=32)["model"] == "student-dynamic"
    assert fastest_within(rows, 0.1, batch=1) is None
    lines = choice_markdown(rows, 1.0).splitlines()
    assert lines[0].startswith("- batch 1: **student-static**, 4.00x") and "89.20 accuracy" in lines[0]
    assert "no variant stays within 0.1 points" in choice_markdown(rows, 0.1)
    table = batch_dependence_markdown(rows)
    assert "| student-dynamic | 89.30 | 87.80 | -1.50 |" in table and "student-static |" not in table
    assert "no answer depends on its batch mates" in batch_dependence_markdown(rows[:2])
