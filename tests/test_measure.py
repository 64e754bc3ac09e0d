from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import prune

from distill.delivery.measure import count_parameters, sparsity, weights_size_on_disk


def test_known_model_gives_exactly_its_parameter_counts():
    model = nn.Sequential(nn.Embedding(10, 4), nn.Linear(4, 3), nn.Linear(3, 2, bias=False))
    counts = count_parameters(model)
    assert counts == {"total": 40 + 15 + 6, "without_embeddings": 21, "nonzero": counts["nonzero"]}
    assert counts["nonzero"] == 61  # random initialisation leaves no exact zeros


def test_pruned_model_nonzero_count_matches_its_masks():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 16), nn.Linear(16, 4))
    prune.l1_unstructured(model[0], "weight", amount=0.5)
    prune.random_unstructured(model[1], "weight", amount=0.25)
    kept = int(model[0].weight_mask.sum() + model[1].weight_mask.sum())
    for layer in model:
        prune.remove(layer, "weight")
    counts = count_parameters(model)
    assert counts["nonzero"] == kept + 16 + 4  # biases are untouched
    measured = sparsity(model)
    assert measured["0"] == 0.5 and measured["1"] == 0.25
    assert abs(measured["overall"] - (128 + 16) / (256 + 64)) < 1e-9


def test_quantized_models_keep_the_counts_of_their_float_original():
    from distill.plugins.quantization import quantize

    model = nn.Sequential(nn.Embedding(100, 8), nn.Linear(8, 4), nn.LSTM(8, 4))
    assert count_parameters(quantize(model, per_channel=True, embeddings=True)) == count_parameters(model)


def test_size_on_disk_counts_weight_files_only(tmp_path):
    (tmp_path / "model.safetensors").write_bytes(b"x" * 1000)
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "int8").mkdir()
    (tmp_path / "int8" / "model.pt").write_bytes(b"x" * 300)  # a variant of the model, measured on its own
    assert weights_size_on_disk(tmp_path) == 1000
    assert weights_size_on_disk(tmp_path / "int8") == 300
