"""Exports a user already has keep working: each kind saved by an earlier distill (tests/exports/, written by
make_exports.py at the commit in made_at.txt) loads with today's code and labels its rows as it did then."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import run_cli

SAVED = Path(__file__).parent / "exports"
ANSWERS = json.loads((SAVED / "answers.json").read_text())
QUANTISED = ("int8", "int8.onnx")  # integer kernels may round the last digit differently on another CPU


@pytest.mark.parametrize("export", sorted(ANSWERS))
def test_a_saved_export_labels_its_rows_as_when_it_was_written(export, tmp_path):
    output = tmp_path / "answers.jsonl"
    run_cli("predict", "--model", str(SAVED / export), "--input", str(SAVED / "rows.jsonl"), "--output",
            str(output), "--task", "sst2")  # fmt: skip
    answers = [json.loads(line) for line in output.read_text().splitlines()]
    tolerance = 2e-3 if export.endswith(QUANTISED) else 2e-5
    assert [row["prediction"] for row in answers] == [row["prediction"] for row in ANSWERS[export]]
    for now, then in zip(answers, ANSWERS[export], strict=True):
        assert now["probability_1"] == pytest.approx(then["probability_1"], abs=tolerance)
