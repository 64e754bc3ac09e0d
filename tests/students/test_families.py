"""Every non-Transformer family: trains on real rows, refuses per-layer losses, exports and reloads exactly."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch

from distill.delivery.loading import load_model
from distill.errors import DistillError
from distill.plugins.losses import AttentionKD, HardLabelCE, LogitsKD, PooledKD
from distill.registry import task_from_spec
from distill.students._text import combine, segments
from distill.students.bilstm import BiLSTMStudent
from distill.students.cnn import CNNStudent
from distill.teacher import Teacher
from distill.training.module import DistillationModule
from tests.conftest import RTE, SST2, base_config, run_cli, write_config

FAMILIES = {
    "BiLSTMStudent": {"embedding_dim": 16, "hidden_size": 16, "mlp_size": 32},
    "CNNStudent": {"embedding_dim": 16, "kernel_sizes": [2, 3], "channels": 12, "depth": 2},
}


@pytest.fixture(scope="module")
def teacher(tiny_teacher) -> Teacher:
    return Teacher(str(tiny_teacher))


def test_pairs_are_split_by_segment_and_combined(teacher):
    encoded = dict(teacher.tokenizer(["a b c", "d"], ["e f", "g h i j"], padding=True, return_tensors="pt"))
    (ids_a, mask_a), (ids_b, mask_b) = segments(encoded, pair=True)
    assert mask_a.sum(1).tolist() == [5, 3] and mask_b.sum(1).tolist() == [3, 5]  # with [CLS]/[SEP]
    first_b = ids_b[0][mask_b[0]].tolist()
    assert teacher.tokenizer.decode(first_b) == "e f [SEP]"
    u, v = torch.ones(2, 3), torch.zeros(2, 3)
    assert combine([u, v]).shape == (2, 12) and combine([u]).shape == (2, 3)


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize(("task", "data"), [("sst2", SST2), ("rte", RTE)])
def test_family_trains_on_real_rows_and_reloads_to_the_same_predictions(family, task, data, tiny_teacher, tmp_path):
    config = base_config(tiny_teacher, tmp_path, data_dir=data, task=task)
    config["model"]["student"] = {"class_path": family, "init_args": FAMILIES[family]}
    config["model"]["losses"].append({"class_path": "PooledKD", "init_args": {"weight": 0.1}})
    config["model"]["learning_rate"] = 3e-3
    config["trainer"].update(max_steps=24, val_check_interval=8, log_every_n_steps=1)
    config["data"].update(max_length=128, train_limit=192)
    run_cli("fit", "--config", str(write_config(tmp_path / "c.yaml", config)), "--run_name", "run")
    run = tmp_path / "run"
    with next(run.rglob("metrics.csv")).open() as handle:
        losses = [float(r["train/loss"]) for r in csv.DictReader(handle) if r.get("train/loss")]
    assert sum(losses[-6:]) / 6 < sum(losses[:6]) / 6
    model, tokenizer = load_model(run / "student")
    module = DistillationModule.load_from_checkpoint(next((run / "checkpoints").glob("best-*.ckpt"))).eval()
    rows = (data / "dev.tsv").read_text().splitlines()[1:9]
    columns = [list(c) for c in zip(*[r.split("\t") for r in rows], strict=True)]
    texts = columns[:1] if task == "sst2" else columns[1:3]
    batch = dict(tokenizer(*texts, padding=True, return_tensors="pt"))
    with torch.no_grad():
        torch.testing.assert_close(model(**batch), module.student(batch, frozenset({"logits"})).logits)


@pytest.mark.parametrize("config", [BiLSTMStudent(embedding_dim=16, hidden_size=8), CNNStudent(embedding_dim=16)])
def test_per_layer_losses_are_refused_with_a_clear_message(config, tiny_teacher):
    family = config.student_class.family
    message = f"loss 'attention' needs \\['attentions'\\]; the {family} student provides only \\['logits', 'pooled'\\]"
    with pytest.raises(DistillError, match=message):
        DistillationModule(task="sst2", student=config, losses=[LogitsKD(), AttentionKD()], teacher=str(tiny_teacher))
    DistillationModule(
        task="sst2", student=config, losses=[HardLabelCE(), LogitsKD(), PooledKD()], teacher=str(tiny_teacher)
    )


def test_embeddings_start_from_the_teacher_by_pca_or_linear_reduction(teacher):
    task = task_from_spec("sst2")
    words = teacher.model.get_input_embeddings().weight
    same = CNNStudent(embedding_dim=32).build(teacher, task)
    torch.testing.assert_close(same.embedding.table.weight, words)
    pca = BiLSTMStudent(embedding_dim=8, hidden_size=8).build(teacher, task)
    assert pca.embedding.table.weight.shape == (30522, 8)
    linear = BiLSTMStudent(embedding_dim=8, hidden_size=8, reduction="linear").build(teacher, task)
    torch.testing.assert_close(linear.embedding.table.weight, words)
    assert linear.embedding.reduce.weight.shape == (8, 32)
    with pytest.raises(DistillError, match="cannot reduce 32-wide teacher embeddings to a wider 300"):
        BiLSTMStudent().build(teacher, task)


def test_an_unknown_family_in_an_export_is_named(tmp_path: Path):
    (tmp_path / "distill_student.json").write_text('{"family": "transformerx", "architecture": {}}')
    with pytest.raises(DistillError, match="'transformerx' student, and no installed plugin provides that family"):
        load_model(tmp_path)
