from __future__ import annotations

import pytest
import torch

from distill.delivery.loading import load_model
from distill.delivery.measure import count_parameters, weights_size_on_disk
from distill.errors import DistillError
from distill.plugins.sharing import ParameterSharing
from distill.students.encoder import BertStudent
from tests.plugins.conftest import DEV_TEXTS, compress, export, logits


def _layers(model):
    return model.bert.encoder.layer


@pytest.mark.parametrize("share", ["all", "attention", "feed_forward"])
def test_shared_layers_train_as_one_and_the_file_shrinks(share, tiny_teacher, plain_export, tmp_path):
    module, _ = compress(tiny_teacher, tmp_path, [ParameterSharing(share=share)], steps=4)
    layers = _layers(module.student.model)
    query, ffn = (lambda layer: layer.attention.self.query.weight), (lambda layer: layer.intermediate.dense.weight)
    assert (query(layers[0]) is query(layers[1])) == (share in ("all", "attention"))
    assert (ffn(layers[0]) is ffn(layers[1])) == (share in ("all", "feed_forward"))
    expected = logits(module, module.tokenizer, DEV_TEXTS)
    folder = export(module, tmp_path / "export")
    dense = plain_export
    loaded, tokenizer = load_model(folder)
    assert torch.allclose(logits(loaded, tokenizer, DEV_TEXTS), expected, atol=1e-5)
    assert query(_layers(loaded)[0]) is query(_layers(loaded)[1]) or share == "feed_forward"
    saved = weights_size_on_disk(dense) - weights_size_on_disk(folder)
    counted = (
        count_parameters(load_model(dense)[0])["without_embeddings"] - count_parameters(loaded)["without_embeddings"]
    )
    assert counted > 0 and saved >= 4 * counted  # the shared tensors are stored once (float32: 4 bytes each)


def test_teacher_average_starts_from_the_mean_of_the_teachers_layers(tiny_teacher, tmp_path):
    module, _ = compress(
        tiny_teacher, tmp_path, [ParameterSharing(start="teacher_average")], steps=1, learning_rate=1e-12
    )
    teacher = _layers(module.teacher.model)
    mean = (teacher[0].output.dense.weight + teacher[1].output.dense.weight) / 2
    assert torch.allclose(_layers(module.student.model)[1].output.dense.weight, mean, atol=1e-4)


def test_teacher_average_of_another_width_is_refused(tiny_teacher, tmp_path):
    with pytest.raises(DistillError, match="teacher's widths"):
        compress(
            tiny_teacher,
            tmp_path,
            [ParameterSharing(start="teacher_average")],
            steps=1,
            student=BertStudent(num_layers=2, hidden_size=16),
        )
