from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import parametrize

from distill.delivery.loading import load_model
from distill.delivery.measure import weights_size_on_disk
from distill.plugins.losses import HardLabelCE, LogitsKD
from distill.plugins.pruning import MagnitudePruning
from distill.plugins.pruning.unstructured import prunable
from distill.plugins.quantization import DynamicQuantization, FakeQuantRows, QuantizationAwareTraining, word_table
from distill.students.bilstm import BiLSTMStudent
from tests.plugins.conftest import DEV_TEXTS, compress, export, logits


def test_int8_export_runs_and_stays_close_to_the_fake_quant_model(tiny_teacher, tmp_path):
    module, _ = compress(tiny_teacher, tmp_path, [QuantizationAwareTraining()])
    fake_quant = logits(module, module.tokenizer, DEV_TEXTS)
    folder = export(module, tmp_path / "export")
    int8, tokenizer = load_model(folder / "int8")
    assert any(type(m).__module__.startswith("torch.ao.nn.quantized") for m in int8.modules())
    real = logits(int8, tokenizer, DEV_TEXTS)
    spread = fake_quant.abs().max().item()
    assert (real - fake_quant).abs().max().item() < 0.1 * spread + 1e-3
    assert (real.argmax(-1) == fake_quant.argmax(-1)).float().mean() >= 0.9
    assert weights_size_on_disk(folder / "int8") < weights_size_on_disk(folder) / 3


def test_masks_survive_fake_quantisation_when_methods_compound(tiny_teacher, tmp_path):
    module, _ = compress(tiny_teacher, tmp_path, [QuantizationAwareTraining(), MagnitudePruning(sparsity=0.5, end=0.5)])
    weights = list(prunable(module.student).values())
    assert abs(sum(int((w == 0).sum()) for w in weights) / sum(w.numel() for w in weights) - 0.5) < 0.01
    folder = export(module, tmp_path / "export")
    exported, _ = load_model(folder)
    linear = exported.bert.encoder.layer[0].intermediate.dense.weight
    assert abs((linear == 0).float().mean().item() - 0.5) < 0.2  # globally ranked, so per layer varies


def test_bilstm_exports_an_int8_lstm(tiny_teacher, tmp_path):
    student = BiLSTMStudent(embedding_dim=16, hidden_size=16, mlp_size=16)
    module, _ = compress(
        tiny_teacher,
        tmp_path,
        [DynamicQuantization()],
        student=student,
        losses=[HardLabelCE(), LogitsKD(kind="mse")],
        steps=8,
    )
    fp32 = logits(module, module.tokenizer, DEV_TEXTS)
    folder = export(module, tmp_path / "export")
    int8, tokenizer = load_model(folder / "int8")
    assert any(isinstance(m, torch.ao.nn.quantized.dynamic.LSTM) for m in int8.modules())
    assert not any(
        isinstance(m, nn.LSTM) and not isinstance(m, torch.ao.nn.quantized.dynamic.LSTM) for m in int8.modules()
    )
    assert (logits(int8, tokenizer, DEV_TEXTS).argmax(-1) == fp32.argmax(-1)).float().mean() >= 0.9


def test_qat_rounds_the_word_table_to_the_grid_the_export_stores(tiny_teacher, tmp_path):
    module, _ = compress(tiny_teacher, tmp_path, [QuantizationAwareTraining()], steps=4)
    name, table = word_table(module.student.model)
    rounded = table.weight.detach().clone()
    assert (
        rounded - parametrize.remove_parametrizations(table, "weight", leave_parametrized=False).weight
    ).abs().max() > 0
    parametrize.register_parametrization(table, "weight", FakeQuantRows())
    folder = export(module, tmp_path / "export")
    int8, _ = load_model(folder / "int8")
    stored = int8.get_submodule(name).weight().dequantize()
    level = (rounded.amax(1, keepdim=True) - rounded.amin(1, keepdim=True)).clamp_min(1e-12) / 255
    apart = (stored - rounded).abs() / level  # in grid levels: only rounding ties may land one level apart
    assert apart.max() <= 1.01 and (apart > 0.01).float().mean() < 1e-4
