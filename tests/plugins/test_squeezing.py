from __future__ import annotations

import pytest
import torch
from torch import nn

from distill.delivery.loading import load_model
from distill.errors import DistillError
from distill.plugins.squeezing import SqueezedEmbedding, SqueezedLinear, WeightSqueezing
from distill.students.encoder import BertStudent, EncoderStudent
from tests.plugins.conftest import DEV_TEXTS, compress, export, logits

NARROW = BertStudent(num_layers=2, hidden_size=16, num_heads=2, intermediate_size=48, init_embeddings="teacher")


def test_only_the_maps_train_and_the_export_is_their_product(tiny_teacher, tmp_path):
    module, _ = compress(tiny_teacher, tmp_path, [WeightSqueezing()], steps=4, student=NARROW)
    model = module.student.model
    squeezed = {name: m for name, m in model.named_modules() if isinstance(m, SqueezedLinear)}
    assert len(squeezed) == 2 * 6
    teacher_query = module.teacher.model.bert.encoder.layer[0].attention.self.query.weight
    query = model.bert.encoder.layer[0].attention.self.query
    assert torch.equal(query.teacher_weight, teacher_query)  # the teacher's weight, frozen
    assert not any("teacher_weight" in k for k in module.student.state_dict())
    maps = {name: m.weight.detach().clone() for name, m in squeezed.items()}
    table = model.get_input_embeddings()
    assert isinstance(table, SqueezedEmbedding)
    words = (table.teacher_weight @ table.right).detach().clone()
    expected = logits(module, module.tokenizer, DEV_TEXTS)
    folder = export(module, tmp_path / "export")
    loaded, tokenizer = load_model(folder)
    assert type(loaded.bert.encoder.layer[0].attention.self.query) is nn.Linear  # a plain BERT
    for name, weight in maps.items():
        assert torch.allclose(loaded.get_submodule(name).weight, weight, atol=1e-6)
    assert torch.allclose(loaded.get_input_embeddings().weight, words, atol=1e-6)
    assert torch.allclose(logits(loaded, tokenizer, DEV_TEXTS), expected, atol=1e-5)
    assert loaded.config.hidden_size == 16


def test_squeezing_another_family_is_refused(tiny_teacher, tmp_path):
    with pytest.raises(DistillError, match="one family"):
        compress(
            tiny_teacher, tmp_path, [WeightSqueezing()], steps=1, student=EncoderStudent(family="roberta", num_layers=2)
        )
