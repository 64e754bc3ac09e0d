from __future__ import annotations

import pytest
import torch
from torch import nn

from distill.delivery.loading import load_model
from distill.delivery.measure import count_parameters, weights_size_on_disk
from distill.delivery.onnx import export_onnx
from distill.errors import DistillError
from distill.plugins.decomposition import FactorisedEmbedding, LowRankDecomposition, LowRankLinear
from distill.plugins.pruning import HeadPruning
from tests.plugins.conftest import DEV_TEXTS, compress, export, logits


def test_svd_factors_are_the_best_rank_r_approximation():
    torch.manual_seed(0)
    dense = nn.Linear(24, 16)
    full = LowRankLinear.from_linear(dense, 16)
    x = torch.randn(5, 24)
    assert torch.allclose(full(x), dense(x), atol=1e-5)  # full rank reproduces the layer
    low = LowRankLinear.from_linear(dense, 4)
    s = torch.linalg.svdvals(dense.weight)
    error = torch.linalg.matrix_norm(low.second.weight @ low.first.weight - dense.weight)
    assert torch.isclose(error, s[4:].square().sum().sqrt(), atol=1e-4)  # Eckart-Young


def test_factorised_export_is_smaller_reloads_and_traces(tiny_teacher, plain_export, tmp_path):
    method = LowRankDecomposition(
        keep=dict.fromkeys(["attention", "feed_forward_in", "feed_forward_out"], 0.5), embedding_rank=8
    )
    module, _ = compress(tiny_teacher, tmp_path, [method], steps=4)
    factored = [m for m in module.student.modules() if isinstance(m, LowRankLinear)]
    assert len(factored) == 2 * (3 + 2)  # q, k, v and both feed-forward layers of each of 2 layers
    expected = logits(module, module.tokenizer, DEV_TEXTS)
    folder = export(module, tmp_path / "export")
    reference = plain_export
    loaded, tokenizer = load_model(folder)
    assert isinstance(loaded.get_input_embeddings(), FactorisedEmbedding)
    assert torch.allclose(logits(loaded, tokenizer, DEV_TEXTS), expected, atol=1e-5)
    smaller, full = count_parameters(loaded), count_parameters(load_model(reference)[0])
    assert smaller["without_embeddings"] < full["without_embeddings"]
    assert smaller["total"] < full["total"] / 2  # the 30522 × 32 table became 30522 × 8 + 8 × 32
    assert weights_size_on_disk(folder) < weights_size_on_disk(reference) / 2
    onnx_file = tmp_path / "model.onnx"
    export_onnx(loaded, tokenizer, onnx_file, pair=False)  # checks ONNX Runtime against PyTorch
    assert onnx_file.stat().st_size < weights_size_on_disk(reference) / 2


def test_energy_ranks_follow_the_spectrum(tiny_teacher, tmp_path):
    low, _ = compress(
        tiny_teacher, tmp_path, [LowRankDecomposition(keep={"feed_forward_in": 0.3}, by="energy")], steps=1
    )
    ranks = [m.rank for m in low.student.modules() if isinstance(m, LowRankLinear)]
    assert ranks and all(r < 32 * 64 / 96 for r in ranks)


def test_unknown_layer_type_and_pruning_together_are_refused(tiny_teacher, tmp_path):
    with pytest.raises(DistillError, match="unknown layer types"):
        LowRankDecomposition(keep={"queries": 0.5})
    with pytest.raises(DistillError, match="cannot run together"):
        compress(tiny_teacher, tmp_path, [LowRankDecomposition(), HeadPruning()], steps=1)
