from __future__ import annotations

import pytest
import torch

from distill.delivery.loading import load_model
from distill.errors import DistillError
from distill.plugins.early_exit import EarlyExit
from distill.plugins.word_elimination import EliminatingModel, WordVectorElimination, significance
from distill.students.encoder import EncoderStudent
from tests.plugins.conftest import DEV_TEXTS, compress, export, logits


def test_significance_is_the_attention_each_real_position_receives():
    q, k = torch.randn(2, 3, 5, 4), torch.randn(2, 3, 5, 4)
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])
    scores = significance(q, k, mask)
    assert torch.allclose(scores.sum(1), torch.tensor([3.0 * 5, 3.0 * 3]))  # each real query spreads 1 per head
    assert torch.equal(scores[1, 3:], torch.zeros(2))  # padding receives nothing


def test_batch_of_32_answers_as_each_row_alone_and_the_export_reloads(tiny_teacher, tmp_path):
    module, _ = compress(tiny_teacher, tmp_path, [WordVectorElimination(keep=[6, 3])], steps=4)
    folder = export(module, tmp_path / "export")
    model, tokenizer = load_model(folder)
    assert isinstance(model, EliminatingModel)
    batched = logits(model, tokenizer, DEV_TEXTS)
    alone = torch.cat([logits(model, tokenizer, [text]) for text in DEV_TEXTS])
    full = logits(model.model, tokenizer, DEV_TEXTS)
    batch_effect = (batched - alone).abs().max()
    assert len(DEV_TEXTS) == 32 and batch_effect < 1e-6
    assert (batched - full).abs().max() > 1000 * batch_effect  # words really were eliminated
    assert torch.allclose(logits(module.student.model, tokenizer, DEV_TEXTS), full, atol=1e-5)
    served = module.compression[0].served_logits(
        module.student, dict(tokenizer(DEV_TEXTS, padding=True, return_tensors="pt"))
    )
    assert torch.allclose(served, batched, atol=1e-5)  # validation scored what the export serves


def test_families_with_positions_in_every_layer_and_early_exit_are_refused(tiny_teacher, tmp_path):
    with pytest.raises(DistillError, match="positions"):
        compress(
            tiny_teacher,
            tmp_path,
            [WordVectorElimination(keep=[4])],
            steps=1,
            student=EncoderStudent(family="deberta-v2", num_layers=2),
        )
    with pytest.raises(DistillError, match="cannot run together"):
        compress(tiny_teacher, tmp_path, [WordVectorElimination(keep=[4]), EarlyExit()], steps=1)
