from __future__ import annotations

import pytest
import torch
from torch import nn

from distill.delivery.loading import load_model
from distill.delivery.measure import weights_size_on_disk
from distill.errors import DistillError
from distill.plugins.codebook import CodedEmbedding, EmbeddingCodebook
from tests.plugins.conftest import DEV_TEXTS, compress, export, logits


@pytest.mark.parametrize("kind", ["additive", "product"])
def test_codes_approximate_the_table_better_with_more_codebooks(kind):
    torch.manual_seed(0)
    table = nn.Embedding(2000, 32)
    errors = []
    for books in (1, 4):
        coded = CodedEmbedding.from_table(table, books, 16, kind, iterations=10)
        rebuilt = coded(torch.arange(2000))
        errors.append(float((rebuilt - table.weight).square().sum() / table.weight.square().sum()))
    assert errors[1] < errors[0] < 1.0


@pytest.mark.parametrize("after_training", [False, True])
def test_coded_embedding_exports_small_and_reloads_exactly(after_training, tiny_teacher, plain_export, tmp_path):
    method = EmbeddingCodebook(
        codebooks=4,
        codewords=32,
        kind="product" if after_training else "additive",
        after_training=after_training,
        iterations=3,
    )
    module, _ = compress(tiny_teacher, tmp_path, [method], steps=4)
    assert isinstance(module.student.model.get_input_embeddings(), CodedEmbedding) != after_training
    folder = export(module, tmp_path / "export")
    dense = plain_export
    expected = logits(module, module.tokenizer, DEV_TEXTS)
    loaded, tokenizer = load_model(folder)
    table = loaded.get_input_embeddings()
    assert isinstance(table, CodedEmbedding) and table.codes.dtype == torch.uint8
    original = module.student.model.get_input_embeddings()
    ids = torch.arange(table.num_embeddings)
    assert torch.equal(table(ids), original(ids))  # codes and codebooks come back bit for bit
    assert torch.allclose(logits(loaded, tokenizer, DEV_TEXTS), expected, atol=1e-5)
    table_bytes = 30522 * 32 * 4
    assert weights_size_on_disk(dense) - weights_size_on_disk(folder) > 0.8 * table_bytes


def test_codebook_settings_are_checked():
    with pytest.raises(DistillError, match="codewords"):
        EmbeddingCodebook(codewords=1)
    with pytest.raises(DistillError, match="divides"):
        CodedEmbedding(10, 30, 4, 8, "product")
