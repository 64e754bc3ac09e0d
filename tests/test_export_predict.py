from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest
import torch

from distill.delivery.batching import model_inputs
from distill.delivery.folder import export_variants_in
from distill.delivery.loading import load_model
from distill.delivery.onnx import export_onnx
from distill.hf import head_logits
from distill.registry import task_from_spec
from distill.student import StudentClassifier
from distill.students.bilstm import BiLSTMStudent
from distill.students.cnn import CNNStudent
from distill.teacher import Teacher
from tests.conftest import SST2, base_config, cli_error, run_cli, write_config

TEXTS = [line.split("\t")[0] for line in (SST2 / "dev.tsv").read_text().splitlines()[1:13]]


@pytest.fixture(scope="module")
def run(tiny_teacher, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("export")
    run_cli("fit", "--config", str(write_config(root / "c.yaml", base_config(tiny_teacher, root))), "--run_name", "r")
    return root / "r"


# How close each served variant must stay to the PyTorch student on dev rows: float graphs to the logit, int8
# ones in their predicted labels (a tiny random model has small margins, so a few rows may flip).
FLOAT_ATOL = 1e-4
INT8_AGREEMENT = 0.9


def test_export_from_a_checkpoint_with_onnx_serving_variants_and_int8(run, tmp_path):
    checkpoint = next((run / "checkpoints").glob("best-*.ckpt"))
    target = tmp_path / "exported"
    export = ["export", "--checkpoint", str(checkpoint), "--out", str(target), "--onnx", "true"]
    run_cli(*export, "--variants", "[DynamicQuantization]", "--calibration", str(SST2 / "train.tsv"))
    card = json.loads((target / "card.json").read_text())
    assert card["task"] == "sst2" and card["checkpoint"] == str(checkpoint)
    variants = export_variants_in(target)
    assert set(variants) == {"int8", "onnx-fp32", "onnx-optimized", "onnx-dynamic_int8", "onnx-static_int8"}
    assert {"config.json", "card.json", "tokenizer.json"} <= {p.name for p in (target / "onnx").iterdir()}
    model, tokenizer = load_model(target)
    batch = tokenizer(TEXTS, padding=True, return_tensors="pt")
    with torch.no_grad():
        expected = model(**batch).logits
    for name, folder in variants.items():
        served, _ = load_model(folder)
        got = head_logits(served(**model_inputs(served, batch)))
        if name in ("onnx-fp32", "onnx-optimized"):
            torch.testing.assert_close(got, expected, atol=FLOAT_ATOL, rtol=0)
        else:
            assert (got.argmax(-1) == expected.argmax(-1)).float().mean() >= INT8_AGREEMENT, name
    assert load_model(target / "onnx")[0].path.name == "model.onnx"  # the folder serves its fp32 graph


@pytest.mark.parametrize(
    "family", [CNNStudent(embedding_dim=16, channels=8), BiLSTMStudent(embedding_dim=16, hidden_size=8)]
)
@pytest.mark.parametrize("task", ["sst2", "rte"])
def test_every_student_family_exports_to_onnx_matching_pytorch(tiny_teacher, tmp_path, family, task):
    teacher = Teacher(str(tiny_teacher))
    model = StudentClassifier(family.build(teacher, task_from_spec(task))).eval()
    assert export_onnx(model, teacher.tokenizer, tmp_path / "m.onnx", pair=task == "rte") < 1e-4


def test_predict_writes_labels_and_probabilities(run, tmp_path):
    source = tmp_path / "in.tsv"
    source.write_text("sentence\n" + "\n".join(TEXTS) + "\n")
    run_cli("predict", "--model", str(run / "student"), "--input", str(source), "--output", str(tmp_path / "o.tsv"))
    with (tmp_path / "o.tsv").open() as handle:
        rows = list(csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE))
    assert [r["sentence"] for r in rows] == TEXTS
    for row in rows:
        p0, p1 = float(row["probability_0"]), float(row["probability_1"])
        assert abs(p0 + p1 - 1) < 1e-5 and row["prediction"] == ("1" if p1 > p0 else "0")


def test_export_and_predict_refuse_bad_input_clearly(run, tmp_path):
    assert "no such file" in cli_error("export", "--checkpoint", str(tmp_path / "none.ckpt"))
    assert "exactly one of --checkpoint" in cli_error("export")
    assert "unknown compression method 'Int9'" in cli_error(
        "export", "--model", str(run / "student"), "--variants", "[Int9]"
    )
    (tmp_path / "bad.tsv").write_text("text\nfine\n")
    assert "has no column(s) ['sentence'] (the task's text columns)" in cli_error(
        "predict", "--model", str(run / "student"), "--input", str(tmp_path / "bad.tsv")
    )
    assert "does not exist" in cli_error(
        "predict", "--model", str(tmp_path / "nope"), "--input", "x.tsv", "--task", "sst2"
    )


def test_predict_refuses_a_task_whose_labels_the_model_does_not_have(run, tmp_path):
    source = tmp_path / "in.tsv"
    source.write_text("sentence1\tsentence2\tsentence\n" + "a\tb\tc\n")
    output = tmp_path / "o.tsv"
    for task, expected in (("mnli", "was trained on sst2 with labels 0, 1"), ("stsb", "a regression score")):
        message = cli_error(
            "predict", "--model", str(run / "student"), "--input", str(source), "--task", task, "--output", str(output)
        )
        assert expected in message and not output.exists()
    cardless = tmp_path / "cardless"  # a plain Hugging Face folder: its output width decides
    shutil.copytree(run / "student", cardless, ignore=shutil.ignore_patterns("card.json"))
    message = cli_error(
        "predict", "--model", str(cardless), "--input", str(source), "--task", "mnli", "--output", str(output)
    )
    assert "predicts 2 value(s) per row, but task mnli needs 3" in message and not output.exists()


def test_predict_on_a_folder_that_is_not_a_model_says_so_first(tmp_path):
    (tmp_path / "notes").mkdir()
    message = cli_error("predict", "--model", str(tmp_path / "notes"), "--input", "x.tsv")
    assert "holds neither a Hugging Face model" in message
