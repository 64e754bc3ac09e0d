from __future__ import annotations

import pytest
import torch
from transformers import AutoTokenizer

from distill import UNLABELLED
from distill.features import Features
from distill.plugins.losses import HardLabelCE
from distill.plugins.transfer_set import TransferSet, nearest_neighbours
from distill.registry import task_from_spec
from distill.teacher import Teacher
from distill.training.data import TaskDataModule
from tests.conftest import RTE, SST2, small_data


@pytest.fixture(scope="module")
def teacher(tiny_teacher) -> Teacher:
    return Teacher(str(tiny_teacher))


def data_module(teacher, tmp_path, task="sst2", folder=SST2, **transfer) -> TaskDataModule:
    return small_data(teacher, tmp_path, task, folder, augmentation=TransferSet(multiplier=2, **transfer))


def test_transfer_set_grows_the_split_with_unlabelled_variants(teacher, tmp_path):
    train = data_module(teacher, tmp_path).splits["train"]
    assert len(train) == 60 * 3
    assert train["idx"] == list(range(180))
    assert all(label != UNLABELLED for label in train["labels"][:60])
    assert all(label == UNLABELLED for label in train["labels"][60:])
    mask_id = teacher.tokenizer.mask_token_id
    originals, variants = train["input_ids"][:60], train["input_ids"][60:]
    assert any(mask_id in ids for ids in variants) and not any(mask_id in ids for ids in originals)
    assert sum(len(v) < len(originals[i % 60]) for i, v in enumerate(variants)) > 10  # n-grams were cut
    assert all(v[0] == originals[0][0] and v[-1] == originals[0][-1] for v in variants)  # [CLS] ... [SEP] kept


def test_transfer_set_is_reproducible_and_cached(teacher, tmp_path):
    first = data_module(teacher, tmp_path).splits["train"]["input_ids"]
    folders = list((tmp_path / "distill").glob("sst2-augmented-*"))
    second = data_module(teacher, tmp_path).splits["train"]["input_ids"]
    assert first == second and len(folders) == 1
    data_module(teacher, tmp_path, seed=1)
    assert len(list((tmp_path / "distill").glob("sst2-augmented-*"))) == 2


def test_pairs_keep_both_segments(teacher, tmp_path):
    train = data_module(teacher, tmp_path, task="rte", folder=RTE).splits["train"]
    for ids, types in zip(train["input_ids"][60:], train["token_type_ids"][60:], strict=True):
        assert len(ids) == len(types) and 1 in types and ids.count(teacher.tokenizer.sep_token_id) == 2


def test_neighbours_are_the_most_similar_other_words():
    embeddings = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.8, 0.2]])
    found = nearest_neighbours(embeddings, torch.tensor([0]).numpy(), count=2, banned={3})
    assert found[0].tolist() == [1, 2]


def test_hard_labels_skip_unlabelled_rows():
    logits = torch.tensor([[3.0, 0.0], [0.0, 3.0], [5.0, -5.0]])
    features = Features(logits=logits, attention_mask=torch.ones(3, 2))
    labels = torch.tensor([0, UNLABELLED, UNLABELLED])
    expected = torch.nn.functional.cross_entropy(logits[:1], labels[:1])
    term = HardLabelCE()
    term.task = task_from_spec("sst2")  # as the module sets it before set-up
    assert term(features, None, {"labels": labels}).item() == pytest.approx(expected.item())
    assert term(features, None, {"labels": torch.full((3,), UNLABELLED)}).item() == 0.0


def test_transfer_set_needs_a_teacher(tmp_path):
    tokenizer = AutoTokenizer.from_pretrained(SST2.parent.parent.parent / "teachers" / "minilm-l6-sst2")
    data = TaskDataModule(
        task="sst2",
        data_dir=str(SST2),
        tokenizer=tokenizer,
        train_limit=10,
        eval_limit=10,
        cache_dir=str(tmp_path),
        augmentation=TransferSet(),
    )
    with pytest.raises(Exception, match="needs the teacher's embeddings"):
        data.setup("fit")
