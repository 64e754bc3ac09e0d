from __future__ import annotations

import json

import pytest
import torch

from distill.cli import main
from distill.delivery.loading import load_model
from distill.errors import DistillError
from distill.plugins.layer_drop import LayerDrop, LayerDropExport
from distill.plugins.pruning import LayerPruning
from distill.students.encoder import BertStudent
from tests.plugins.conftest import DEV_TEXTS, compress, export, logits


def test_layers_and_heads_drop_only_in_training(tiny_teacher, tmp_path):
    module, _ = compress(
        tiny_teacher,
        tmp_path,
        [LayerDrop(rate=0.5, head_rate=0.5)],
        steps=2,
        student=BertStudent(num_layers=4, init_from_teacher=[0, 1, 0, 1]),
    )
    student = module.student
    batch = dict(module.tokenizer(DEV_TEXTS, padding=True, return_tensors="pt"))
    with torch.no_grad():
        evaluated = [student(batch, frozenset({"logits"})).logits for _ in range(2)]
        student.train()
        torch.manual_seed(0)
        trained = [student(batch, frozenset({"logits"})).logits for _ in range(6)]
    assert torch.equal(*evaluated)
    assert any(not torch.allclose(t, evaluated[0]) for t in trained)
    assert len({round(float(t.sum()), 4) for t in trained}) > 1  # a different draw each step


def test_one_run_cuts_to_any_depth_and_bench_shows_the_curve(tiny_teacher, tmp_path, capsys):
    module, _ = compress(
        tiny_teacher,
        tmp_path,
        [LayerDrop(rate=0.3)],
        steps=4,
        student=BertStudent(num_layers=3, init_from_teacher=[0, 1, 1]),
    )
    folder = export(module, tmp_path / "export")
    (folder / "card.json").write_text(json.dumps({"task": "sst2"}))
    full, tokenizer = load_model(folder)
    variants = LayerDropExport.bench_variants("s", full)
    assert [name for name, _ in variants] == ["s@layers=2", "s@layers=1"]
    main(["export", "--model", str(folder), "--layers", "2", "--out", str(tmp_path / "two")])
    assert "layers [1, 3]" in capsys.readouterr().out
    cut, _ = load_model(tmp_path / "two")
    assert cut.config.num_hidden_layers == 2
    assert torch.allclose(logits(cut, tokenizer, DEV_TEXTS), logits(variants[0][1], tokenizer, DEV_TEXTS), atol=1e-5)
    reference = full.bert.encoder.layer
    assert torch.equal(cut.bert.encoder.layer[1].output.dense.weight, reference[2].output.dense.weight)
    with pytest.raises(SystemExit):  # the folder exists: never overwritten
        main(["export", "--model", str(folder), "--layers", "1", "--out", str(tmp_path / "two")])


def test_layer_drop_settings_and_combinations_are_checked(tiny_teacher, tmp_path):
    with pytest.raises(DistillError, match="rate"):
        LayerDrop(rate=1.0)
    with pytest.raises(DistillError, match="cannot run together"):
        compress(tiny_teacher, tmp_path, [LayerDrop(), LayerPruning(layers=[1])], steps=1)
