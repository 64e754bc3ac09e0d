from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForSequenceClassification

from distill.delivery.loading import load_model
from distill.delivery.onnx import export_onnx
from distill.errors import DistillError
from distill.plugins.local_attention import LocalAttention, local_group_attention, localise
from distill.students.encoder import EncoderStudent
from tests.conftest import tiny_bert_config
from tests.plugins.conftest import DEV_TEXTS, compress, export, logits


class Holder(torch.nn.Module):
    local_group = 4


def test_groups_attend_only_within_themselves():
    torch.manual_seed(0)
    q, k, v = (torch.randn(2, 3, 10, 8) for _ in range(3))
    mask = torch.ones(2, 1, 10, 10, dtype=torch.bool)
    mask[1, ..., 7:] = False  # the second row has 7 real tokens
    out, _ = local_group_attention(Holder(), q, k, v, mask, scaling=8**-0.5)
    for start in (0, 4, 8):
        stop = min(start + 4, 10)
        expected = torch.nn.functional.scaled_dot_product_attention(
            q[0:1, :, start:stop], k[0:1, :, start:stop], v[0:1, :, start:stop], scale=8**-0.5
        )
        assert torch.allclose(out[0:1, start:stop].transpose(1, 2), expected, atol=1e-5)
    second = torch.nn.functional.scaled_dot_product_attention(
        q[1:, :, 4:7], k[1:, :, 4:7], v[1:, :, 4:7], scale=8**-0.5
    )
    assert torch.allclose(out[1:, 4:7].transpose(1, 2), second, atol=1e-5)  # padding keys stay unseen


def test_one_group_as_long_as_the_input_is_full_attention():
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_config(tiny_bert_config()).eval()
    batch = {"input_ids": torch.randint(1000, 2000, (3, 12)), "attention_mask": torch.ones(3, 12, dtype=torch.long)}
    batch["attention_mask"][2, 8:] = 0
    with torch.no_grad():
        full = model(**batch).logits
        localise(model, [1, 2], group=16)
        grouped = model(**batch).logits
    assert torch.allclose(full, grouped, atol=1e-5)


def test_local_attention_trains_exports_and_reloads(tiny_teacher, tmp_path):
    module, _ = compress(tiny_teacher, tmp_path, [LocalAttention(group=4, layers=[1])], steps=4)
    expected = logits(module, module.tokenizer, DEV_TEXTS)
    folder = export(module, tmp_path / "export")
    loaded, tokenizer = load_model(folder)
    assert torch.allclose(logits(loaded, tokenizer, DEV_TEXTS), expected, atol=1e-5)
    export_onnx(loaded, tokenizer, tmp_path / "model.onnx", pair=False)  # checked against PyTorch there
    plain = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    assert not torch.allclose(logits(plain, tokenizer, DEV_TEXTS), expected, atol=1e-6)  # the groups matter


def test_deberta_attention_is_refused(tiny_teacher, tmp_path):
    with pytest.raises(DistillError, match="attention interface"):
        compress(
            tiny_teacher,
            tmp_path,
            [LocalAttention()],
            steps=1,
            student=EncoderStudent(family="deberta-v2", num_layers=2),
        )
