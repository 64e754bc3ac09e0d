"""Issue 31 §1: checkpoints and export folders are data people download; loading one never runs code.

Each crafted file carries a pickle whose payload creates a marker file. Every entry point must refuse it in one
line with a non-zero exit, and the marker must never appear.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from tests.conftest import SST2, cli_error, run_cli, tree


class Payload:
    """Unpickling this runs `exec`, which creates the marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return exec, (f"open({str(self.marker)!r}, 'w').close()",)


def crafted_pickle(path: Path, marker: Path, **content) -> Path:
    """A file torch.load would unpickle, shaped like a distill checkpoint, with the payload inside."""
    torch.save({"state_dict": {}, "hyper_parameters": {}, **content, "payload": Payload(marker)}, path)
    return path


@pytest.fixture
def marker(tmp_path) -> Path:
    return tmp_path / "payload-ran"


@pytest.fixture
def student(fitted_run, tmp_path) -> Path:
    """A copy of the shared run's export, which a test may tamper with."""
    return Path(shutil.copytree(fitted_run / "student", tmp_path / "student"))


@pytest.mark.parametrize("command", ["fit", "validate", "test"])
def test_crafted_checkpoint_is_refused_by_ckpt_path(command, fitted_run, marker, tmp_path):
    checkpoint = crafted_pickle(tmp_path / "evil.ckpt", marker)
    config = fitted_run.parent / "tiny.yaml"
    before = tree(fitted_run.parent)
    message = cli_error(command, "--config", str(config), "--ckpt_path", str(checkpoint), "--run_name", "evil")
    assert not marker.exists()
    assert "exec" in message and "refused" in message and "\n" not in message
    assert tree(fitted_run.parent) == before  # no run folder either


def test_crafted_checkpoint_is_refused_by_export(marker, tmp_path):
    checkpoint = crafted_pickle(tmp_path / "evil.ckpt", marker)
    message = cli_error("export", "--checkpoint", str(checkpoint), "--out", str(tmp_path / "out"))
    assert not marker.exists() and not (tmp_path / "out").exists()
    assert "exec" in message and "\n" not in message


@pytest.mark.parametrize(
    ("variant", "settings", "pickled", "method"),
    [
        ("int8", "distill_int8.json", "model_int8.pt", "DynamicQuantization"),
        ("w4", "distill_lowbit.json", "model_lowbit.pt", "OutlierQuantization"),
    ],
)
def test_pickled_quantized_export_is_refused_with_how_to_re_export(
    variant, settings, pickled, method, student, marker, tmp_path
):
    folder = student / variant
    folder.mkdir()
    (folder / settings).write_text(json.dumps({"base": "..", "per_channel": True, "embeddings": True, "bits": 4}))
    crafted_pickle(folder / pickled, marker)
    for tokenizer_file in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(student / tokenizer_file, folder)
    rows = tmp_path / "rows.tsv"
    rows.write_text("sentence\na fine film\n")
    predicted = cli_error("predict", "--model", str(folder), "--input", str(rows))
    bench = ["bench", str(folder), "--teacher", str(student), "--task", "sst2", "--data_dir", str(SST2)]
    benched = cli_error(*bench, "--out", str(tmp_path / "bench"))
    assert not marker.exists() and not (tmp_path / "rows.predictions.tsv").exists()
    for message in (predicted, benched):
        assert pickled in message and f"--variants [{method}]" in message and "\n" not in message


def test_int8_and_low_bit_exports_are_safetensors_and_load_back(student):
    run_cli("export", "--model", str(student), "--variants", "[DynamicQuantization, OutlierQuantization]")
    assert (student / "int8" / "model_int8.safetensors").is_file()
    assert (student / "w4" / "model_lowbit.safetensors").is_file()
    assert not list(student.rglob("*.pt"))
    rows = SST2 / "dev.tsv"
    for variant in ("int8", "w4"):
        out = student.parent / f"{variant}.tsv"
        run_cli(
            "predict", "--model", str(student / variant), "--input", str(rows), "--output", str(out), "--task", "sst2"
        )
        assert len(out.read_text().splitlines()) == len(rows.read_text().splitlines())


def test_a_variant_that_names_itself_as_its_base_is_refused(student):
    run_cli("export", "--model", str(student), "--variants", "[DynamicQuantization]")
    settings = student / "int8" / "distill_int8.json"
    settings.write_text(json.dumps({**json.loads(settings.read_text()), "base": "."}))
    message = cli_error("predict", "--model", str(student / "int8"), "--input", str(SST2 / "dev.tsv"), "--task", "sst2")
    assert "not a folder above it" in message and "\n" not in message


def ship_code(folder: Path, marker: Path) -> Path:
    """Make a model folder custom code: config.json names a module in the folder, which creates the marker."""
    (folder / "evil_model.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    config = json.loads((folder / "config.json").read_text())
    config["auto_map"] = {"AutoModelForSequenceClassification": "evil_model.EvilModel"}
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def test_custom_code_teacher_is_refused_unless_trusted(tiny_teacher, fitted_run, marker, tmp_path):
    teacher = ship_code(Path(shutil.copytree(tiny_teacher, tmp_path / "teacher")), marker)
    config = fitted_run.parent / "tiny.yaml"
    before = tree(fitted_run.parent)
    message = cli_error("fit", "--config", str(config), "--model.teacher", str(teacher), "--run_name", "custom")
    assert "auto_map" in message and "trust_remote_code" in message and "\n" not in message
    assert not marker.exists() and tree(fitted_run.parent) == before


def test_custom_code_export_is_refused_by_predict_and_bench(student, marker, tmp_path):
    ship_code(student, marker)
    rows = tmp_path / "rows.tsv"
    rows.write_text("sentence\na fine film\n")
    for message in (
        cli_error("predict", "--model", str(student), "--input", str(rows)),
        cli_error("bench", str(student), "--teacher", str(student), "--task", "sst2", "--out", str(tmp_path / "b")),
    ):
        assert "auto_map" in message and "--trust_remote_code true" in message
    assert not marker.exists()
