from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from distill.delivery.loading import load_model
from distill.delivery.measure import weights_size_on_disk
from distill.errors import DistillError
from distill.plugins.outliers import OutlierQuantization, gobo, pack, plain, unpack
from distill.plugins.quantization import QuantizationAwareTraining
from tests.conftest import REFERENCE_TEACHER
from tests.plugins.conftest import DEV_TEXTS, compress, export, logits


@pytest.mark.parametrize("bits", [8, 6, 4])
def test_packed_codes_rebuild_the_rounded_weights(bits):
    torch.manual_seed(0)
    weight = torch.randn(12, 40)
    packed = pack(weight, bits, 0.02)
    assert packed["codes"].numel() == -(-12 * 40 * bits // 8)  # bits per weight, really
    rebuilt = unpack(packed, bits)
    assert torch.equal(rebuilt, gobo(weight, bits, 0.02)[0])
    assert len(torch.unique(rebuilt)) <= 2**bits + int(0.02 * weight.numel())  # the centroids, and the outliers
    assert torch.allclose(unpack(pack(weight, bits, None), bits), plain(weight, bits), atol=1e-6)


def test_gobo_4_bits_are_closer_to_the_real_teachers_weights_than_plain_4_bits():
    state = load_file(str(REFERENCE_TEACHER / "model.safetensors"))
    matrices = [w for k, w in state.items() if k.endswith("dense.weight") and w.dim() == 2][:6]
    for weight in matrices:
        assert (gobo(weight, 4, 0.001)[0] - weight).norm() < (plain(weight, 4) - weight).norm()


def test_low_bit_variants_are_smaller_and_outliers_stay_closer_to_float(tiny_teacher, tmp_path):
    module, _ = compress(tiny_teacher, tmp_path, [OutlierQuantization(bits=[8, 4], outliers=0.01)], steps=4)
    folder = export(module, tmp_path / "export")
    names = sorted(p.name for p in folder.iterdir() if p.is_dir())
    assert names == ["w4", "w4-plain", "w8", "w8-plain"]
    full, tokenizer = load_model(folder)
    reference = logits(full, tokenizer, DEV_TEXTS)
    error = {n: (logits(load_model(folder / n)[0], tokenizer, DEV_TEXTS) - reference).abs().mean() for n in names}
    assert error["w8"] < error["w4"] and error["w4"] < error["w4-plain"]
    assert weights_size_on_disk(folder / "w4") < weights_size_on_disk(folder) / 6  # 4 of 32 bits, plus scales


def test_quantization_aware_training_rounds_in_training_and_exports_float(tiny_teacher, tmp_path):
    method = OutlierQuantization(bits=[4], aware_training=True, plain=False)
    module, _ = compress(tiny_teacher, tmp_path, [method], steps=4)
    dense = module.student.model.bert.encoder.layer[0].intermediate.dense
    rows = dense.weight[0]
    assert len(torch.unique(rows)) <= 16 + int(0.001 * dense.weight.numel())  # 4-bit centroids and outliers
    folder = export(module, tmp_path / "export")
    loaded, tokenizer = load_model(folder / "w4")
    assert torch.allclose(logits(loaded, tokenizer, DEV_TEXTS), logits(module, tokenizer, DEV_TEXTS), atol=0.05)
    with pytest.raises(DistillError, match="cannot run together"):
        compress(tiny_teacher, tmp_path / "both", [method, QuantizationAwareTraining()], steps=1)
