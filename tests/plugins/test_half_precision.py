"""Half-precision copies for GPU serving: half the bytes, the float32 answers within rounding, for every family."""

from __future__ import annotations

import json

import pytest
import torch

from distill.delivery.loading import load_model
from distill.delivery.measure import weights_size_on_disk
from distill.plugins.half_precision import HalfPrecision
from distill.students.bilstm import BiLSTMStudent
from distill.students.encoder import BertStudent
from tests.conftest import run_cli
from tests.plugins.conftest import DEV_TEXTS, compress, export, logits


@pytest.mark.parametrize(
    ("student", "dtype"),
    [(BertStudent(num_layers=1, init_from_teacher=[1]), "bfloat16"),
     (BertStudent(num_layers=1, init_from_teacher=[1]), "float16"),
     (BiLSTMStudent(embedding_dim=16, hidden_size=16, mlp_size=16), "float16")],
    ids=["bert-bf16", "bert-fp16", "bilstm-fp16"],
)  # fmt: skip
def test_a_half_copy_is_half_the_size_and_answers_as_the_export_does(student, dtype, tiny_teacher, tmp_path):
    module, _ = compress(tiny_teacher, tmp_path, [HalfPrecision(dtype=dtype)], steps=2, student=student)
    folder = export(module, tmp_path / "export")
    (folder / "card.json").write_text(json.dumps({"task": "sst2"}))
    copy = folder / {"bfloat16": "bf16", "float16": "fp16"}[dtype]
    full, tokenizer = load_model(folder)
    half, _ = load_model(copy)
    assert {p.dtype for p in half.parameters()} == {getattr(torch, dtype)}
    assert weights_size_on_disk(copy) == pytest.approx(weights_size_on_disk(folder) / 2, rel=0.05)
    expected, served = logits(full, tokenizer, DEV_TEXTS), logits(half, tokenizer, DEV_TEXTS).float()
    torch.testing.assert_close(served, expected, atol=0.05, rtol=0.05)
    output = tmp_path / "labelled.jsonl"
    rows = tmp_path / "rows.jsonl"
    rows.write_text("".join(json.dumps({"sentence": text}) + "\n" for text in DEV_TEXTS))
    run_cli("predict", "--model", str(copy), "--input", str(rows), "--output", str(output))
    answers = [json.loads(line) for line in output.read_text().splitlines()]
    assert [a["prediction"] for a in answers] == [str(int(i)) for i in expected.argmax(-1)]
