from __future__ import annotations

import pytest
import torch

from distill.compression import served_logits
from distill.delivery.loading import load_model
from distill.errors import DistillError
from distill.plugins.early_exit import EarlyExit, EarlyExitModel, ExitRule
from distill.plugins.word_elimination import EliminatingModel, WordVectorElimination, significance
from distill.students.encoder import BertStudent, EncoderStudent
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


def test_families_with_positions_in_every_layer_are_refused(tiny_teacher, tmp_path):
    deberta = EncoderStudent(family="deberta-v2", num_layers=2)
    with pytest.raises(DistillError, match="positions"):
        compress(tiny_teacher, tmp_path, [WordVectorElimination(keep=[4])], steps=1, student=deberta)


def test_elimination_compounds_with_early_exit(tiny_teacher, tmp_path):
    """Rows leave at the second ramp when it agrees with the first (PABEE); layer 2 reads only the 5 words
    layer 1 kept, so what the exits serve depends on the elimination."""
    methods = [EarlyExit(criterion="patience", patience=1, settle=0.0), WordVectorElimination(keep=[5])]
    student = BertStudent(num_layers=3, init_from_teacher=[0, 1, 1])
    module, _ = compress(tiny_teacher, tmp_path, methods, steps=4, student=student)
    batch = dict(module.tokenizer(DEV_TEXTS, padding=True, return_tensors="pt"))
    with torch.no_grad():
        for ramp in module.student.exit_ramps:  # both ramps sure of class 0: every row leaves at the second
            ramp.classifier.bias.copy_(torch.tensor([10.0, 0.0]))
        served = served_logits(module.compression, module.student, batch)
        features = module.student(batch, frozenset({"logits", "hidden_states"}))
        mask, states = batch["attention_mask"], features.hidden_states[1:-1]
        ramps = [ramp(h, mask) for ramp, h in zip(module.student.exit_ramps, states, strict=True)]
        without = ExitRule("patience", 0.0, 1).answers(ramps, features.logits)  # the same exits, every word
    folder = export(module, tmp_path / "export")
    model, tokenizer = load_model(folder)
    assert isinstance(model, EarlyExitModel)  # early exit serves it, eliminating as it goes
    assert torch.allclose(logits(model, tokenizer, DEV_TEXTS), served, atol=1e-6)
    batch_effect = (torch.cat([logits(model, tokenizer, [text]) for text in DEV_TEXTS]) - served).abs().max()
    assert batch_effect < 1e-6 and (served - without).abs().max() > 1000 * batch_effect
    assert model.exits.tolist() == [0, 2 * len(DEV_TEXTS), 0]  # every row left at the second ramp
