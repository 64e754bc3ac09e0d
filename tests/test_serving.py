"""The CPU serving path after `distill fit` with `report.onnx`: ONNX variants scored and timed in the report card,
the variant choice, batch dependence, `distill predict` on an ONNX file, and the hub model card."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import huggingface_hub
import pytest
import yaml

from distill.delivery.model_card import model_card
from tests.conftest import SST2, base_config, cli_error, run_cli, write_config

ONNX_ROWS = {"student-onnx-fp32", "student-onnx-optimized", "student-onnx-dynamic_int8", "student-onnx-static_int8"}


@pytest.fixture(scope="module")
def served(tiny_teacher, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("serving")
    config = base_config(tiny_teacher, root)
    config["report"] |= {"onnx": True, "tolerance_points": 5.0}
    run_cli("fit", "--config", str(write_config(root / "c.yaml", config)), "--run_name", "r")
    return root / "r"


def front_matter(readme: Path) -> dict:
    _, meta, _ = readme.read_text().split("---\n", 2)
    return yaml.safe_load(meta)


def test_the_report_card_scores_and_times_every_onnx_variant_at_both_batch_sizes(served):
    report = json.loads((served / "report.json").read_text())
    rows = {r["model"]: r for r in report["rows"]}
    assert ONNX_ROWS <= set(rows)
    for name in ONNX_ROWS:
        row = rows[name]
        assert 0 <= row["value"] <= 1 and 0 <= row["value_batch1"] <= 1
        assert row["median_ms_batch1"] > 0 and row["median_ms_batch32"] > 0 and row["size_mb"] > 0
    # the float graphs answer like the PyTorch student, row by row as in batches
    assert rows["student-onnx-fp32"]["value"] == pytest.approx(rows["student"]["value"], abs=1e-9)
    assert rows["student-onnx-static_int8"]["value"] == rows["student-onnx-static_int8"]["value_batch1"]
    assert rows["student-onnx-static_int8"]["size_mb"] < rows["student-onnx-fp32"]["size_mb"] / 2
    text = (served / "report.md").read_text()
    assert "## Which variant to serve" in text and "loses at most 5 points" in text
    assert "- batch 1: **" in text and "## Batch dependence" in text


def test_every_export_folder_carries_a_hub_model_card_with_its_measured_metrics(served):
    report = json.loads((served / "report.json").read_text())
    rows = {r["model"]: r for r in report["rows"]}
    for folder, model in ((served / "student", "student"), (served / "student" / "onnx", "student-onnx-fp32")):
        meta = front_matter(folder / "README.md")
        assert meta["pipeline_tag"] == "text-classification" and meta["datasets"] == ["nyu-mll/glue"]
        (result,) = meta["model-index"][0]["results"]
        assert result["dataset"]["config"] == "sst2"
        stated = {m["type"]: m["value"] for m in result["metrics"]}
        assert stated["accuracy"] == pytest.approx(rows[model]["value"], abs=1e-4)
        assert "| teacher |" in (folder / "README.md").read_text()  # the report card's table
    assert "base_model" not in meta  # the teacher is a local folder, no hub id


def test_a_hub_teacher_becomes_the_base_model():
    card = {"task": "sst2", "teacher": "sentence-transformers/all-MiniLM-L6-v2", "dev_metrics": {"accuracy": 0.9}}
    meta = yaml.safe_load(model_card(card, "my-student").split("---\n")[1])
    assert meta["base_model"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert meta["model-index"][0]["name"] == "my-student"
    assert meta["model-index"][0]["results"][0]["metrics"] == [{"type": "accuracy", "value": 0.9}]


def test_predict_serves_an_onnx_file_like_the_pytorch_export(served, tmp_path):
    texts = [line.split("\t")[0] for line in (SST2 / "dev.tsv").read_text().splitlines()[1:41]]
    source = tmp_path / "in.tsv"
    source.write_text("sentence\n" + "\n".join(texts) + "\n")
    labels = {}
    for name, model in (("torch", served / "student"), ("onnx", served / "student/onnx/model_static_int8.onnx")):
        run_cli("predict", "--model", str(model), "--input", str(source), "--output", str(tmp_path / f"{name}.tsv"))
        with (tmp_path / f"{name}.tsv").open() as handle:
            labels[name] = [r["prediction"] for r in csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)]
    agreement = sum(a == b for a, b in zip(labels["torch"], labels["onnx"], strict=True)) / len(texts)
    assert agreement >= 0.9
    missing = served / "student/onnx/model_none.onnx"
    assert "does not exist" in cli_error("predict", "--model", str(missing), "--input", str(source))


def test_push_to_hub_uploads_the_folder_as_it_is(served, monkeypatch):
    calls = []

    class RecordingApi:
        def create_repo(self, repo_id, private, exist_ok):
            calls.append(("create", repo_id, private, exist_ok))

        def upload_folder(self, folder_path, repo_id, commit_message, ignore_patterns):
            calls.append(("upload", Path(folder_path).name, repo_id))
            return "https://huggingface.co/me/student/commit/abc"

    monkeypatch.setattr(huggingface_hub, "HfApi", RecordingApi)
    run_cli("export", "--model", str(served / "student"), "--push_to_hub", "me/student")
    assert calls == [("create", "me/student", False, True), ("upload", "student", "me/student")]


def test_push_to_hub_offline_is_one_clear_error(served):
    message = cli_error("export", "--model", str(served / "student"), "--push_to_hub", "me/student")
    assert "could not push" in message and "hf auth login" in message
