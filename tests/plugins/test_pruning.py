from __future__ import annotations

import pytest
import torch
from lightning.pytorch import Callback
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from distill.delivery.loading import load_model
from distill.delivery.measure import count_parameters
from distill.delivery.onnx import export_onnx
from distill.errors import DistillError
from distill.plugins.losses import LogitsKD
from distill.plugins.pruning import (
    HeadPruning,
    LayerPruning,
    MagnitudePruning,
    MovementPruning,
    NeuronPruning,
    VocabularyPruning,
)
from distill.plugins.pruning.unstructured import prunable
from distill.students.bilstm import BiLSTMStudent
from distill.training.module import DistillationModule
from tests.conftest import SST2
from tests.plugins.conftest import DEV_TEXTS, compress, export, logits


class SparsityProbe(Callback):
    """Zero fraction of the prunable weights at the start of every step (after the last optimizer step)."""

    def __init__(self) -> None:
        self.seen: list[tuple[int, float]] = []

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        weights = prunable(module.student).values()
        zeros = sum(int((w == 0).sum()) for w in weights)
        self.seen.append((trainer.global_step, zeros / sum(w.numel() for w in weights)))


def zero_fraction(module) -> float:
    weights = prunable(module.student).values()
    return sum(int((w == 0).sum()) for w in weights) / sum(w.numel() for w in weights)


@pytest.mark.parametrize("method", [MagnitudePruning, MovementPruning])
def test_sparsity_reaches_its_target_and_stays_after_optimizer_steps(method, tiny_teacher, tmp_path):
    probe = SparsityProbe()
    module, _ = compress(tiny_teacher, tmp_path, [method(sparsity=0.5, end=0.5, every=1)], callbacks=[probe])
    settled = [s for step, s in probe.seen if step > 8]
    assert settled and all(abs(s - 0.5) < 0.01 for s in settled)
    assert abs(zero_fraction(module) - 0.5) < 0.01
    folder = export(module, tmp_path / "export")
    exported, _ = load_model(folder)
    counts = count_parameters(exported)
    zeros = sum(int((w == 0).sum()) for w in prunable(module.student).values())
    assert counts["nonzero"] <= counts["total"] - zeros  # the masks are permanent in the export


def test_movement_and_magnitude_choose_different_weights(tiny_teacher, tmp_path):
    masks = []
    for method in (MagnitudePruning, MovementPruning):
        module, _ = compress(tiny_teacher, tmp_path / method.__name__, [method(sparsity=0.5, end=0.5)])
        masks.append(torch.cat([(w != 0).flatten() for w in prunable(module.student).values()]))
    agreement = (masks[0] == masks[1]).float().mean().item()
    assert 0.4 < agreement < 0.99  # masks of 50% agree by chance on half the weights; they must differ


def test_head_pruning_shrinks_the_export_which_reloads_and_runs_as_onnx_with_the_masked_outputs(tiny_teacher, tmp_path):
    module, _ = compress(tiny_teacher, tmp_path, [HeadPruning(fraction=0.5, at=0.2, batches=2)])
    gates = [layer.attention.output.dense.head_gate for layer in module.student.model.bert.encoder.layer]
    assert sum(int(g.sum()) for g in gates) == 4 and all(g.sum() >= 1 for g in gates)  # 8 heads -> 4
    tokenizer = module.tokenizer
    masked = logits(module, tokenizer, DEV_TEXTS)
    before = count_parameters(module.student.model)["total"]
    folder = export(module, tmp_path / "export")
    loaded, loaded_tokenizer = load_model(folder)
    torch.testing.assert_close(logits(loaded, loaded_tokenizer, DEV_TEXTS), masked, atol=1e-5, rtol=1e-4)
    assert count_parameters(loaded)["total"] == before - 4 * (3 * (8 * 32 + 8) + 8 * 32)  # q, k, v rows; out cols
    with pytest.raises(RuntimeError, match="mismatched_sizes"):  # a BertConfig cannot say "6 heads of 32"
        AutoModelForSequenceClassification.from_pretrained(folder)
    assert export_onnx(loaded, loaded_tokenizer, tmp_path / "model.onnx", pair=False) < 1e-4


def test_uniform_neuron_pruning_and_layer_removal_load_with_plain_transformers(tiny_teacher, tmp_path):
    module, _ = compress(
        tiny_teacher, tmp_path, [LayerPruning(layers=[1]), NeuronPruning(fraction=0.25, at=0.2, batches=2)]
    )
    masked = logits(module, module.tokenizer, DEV_TEXTS)
    folder = export(module, tmp_path / "export")
    plain = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    assert plain.config.num_hidden_layers == 1 and plain.config.intermediate_size == 48
    torch.testing.assert_close(logits(plain, module.tokenizer, DEV_TEXTS), masked, atol=1e-5, rtol=1e-4)


def test_vocabulary_pruning_keeps_used_pieces_and_tokenises_raw_text_the_same_way(tiny_teacher, tmp_path):
    module, data = compress(tiny_teacher, tmp_path, [VocabularyPruning()])
    used = {i for row in data.splits["train"]["input_ids"] for i in row}
    in_vocabulary = [line.split("\t")[0] for line in (SST2 / "train.tsv").read_text().splitlines()[1:9]]
    masked = logits(module, module.tokenizer, in_vocabulary)
    folder = export(module, tmp_path / "export")
    plain = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    small = AutoTokenizer.from_pretrained(folder)
    assert len(small) == plain.config.vocab_size == len(used | set(module.tokenizer.all_special_ids)) < 3000
    for text in in_vocabulary:  # the same pieces, renumbered
        assert small.tokenize(text) == module.tokenizer.tokenize(text)
    torch.testing.assert_close(logits(plain, small, in_vocabulary), masked, atol=1e-5, rtol=1e-4)
    assert small.convert_ids_to_tokens(small("zygomorphic")["input_ids"])[1:-1] == ["[UNK]"] * len(
        small("zygomorphic")["input_ids"][1:-1]
    )


def test_impossible_combinations_are_refused_naming_both(tiny_teacher):
    with pytest.raises(DistillError, match="MagnitudePruning and MovementPruning cannot run together"):
        DistillationModule(
            task="sst2",
            student=BiLSTMStudent(embedding_dim=16, hidden_size=8),
            losses=[LogitsKD()],
            teacher=str(tiny_teacher),
            compression=[MagnitudePruning(), MovementPruning()],
        )
    with pytest.raises(
        DistillError,
        match=r"HeadPruning needs a student with \['attentions', 'hidden_states'\]; "
        r"the bilstm student provides only \['logits', 'pooled'\]",
    ):
        DistillationModule(
            task="sst2",
            student=BiLSTMStudent(embedding_dim=16, hidden_size=8),
            losses=[LogitsKD()],
            teacher=str(tiny_teacher),
            compression=[HeadPruning()],
        )
    with pytest.raises(DistillError, match="sparsity < 1"):
        MagnitudePruning(sparsity=1.0)
