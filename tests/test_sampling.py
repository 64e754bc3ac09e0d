"""Training batches: length-grouped by default, seeded, resumable mid-epoch, and shared out across ranks."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from transformers import AutoTokenizer

from distill.training.data import TaskDataModule
from tests.conftest import REFERENCE_TEACHER, SST2

ROWS, BATCH = 640, 16


@pytest.fixture(scope="module")
def tokenizer():
    return AutoTokenizer.from_pretrained(REFERENCE_TEACHER)


def loader(tokenizer, cache, batch_size=BATCH, rank=0, replicas=1, seed=0, epoch=0, batching="length_grouped"):
    """The real training loader over real SST-2 rows, as rank `rank` of `replicas` would build it."""
    data = TaskDataModule(
        task="sst2",
        data_dir=str(SST2),
        tokenizer=tokenizer,
        train_limit=ROWS,
        eval_limit=8,
        batch_size=batch_size,
        cache_dir=str(cache),
        seed=seed,
        batching=batching,
        length_pool=4,
    )
    data.setup("fit")
    data.trainer = SimpleNamespace(  # what the loader reads of a distributed trainer
        global_rank=rank, world_size=replicas, val_check_interval=1.0, limit_val_batches=1.0
    )
    train = data.train_dataloader()
    train.sampler.set_epoch(epoch)
    return train


def indices(batches) -> list[list[int]]:
    return [batch["idx"].tolist() for batch in batches]


def padded_per_real_token(batches) -> float:
    return sum(b["attention_mask"].numel() for b in batches) / sum(int(b["attention_mask"].sum()) for b in batches)


def test_length_grouping_is_deterministic_for_a_seed_and_pads_little(tokenizer, tmp_path):
    first = list(loader(tokenizer, tmp_path))
    assert indices(first) == indices(loader(tokenizer, tmp_path))
    assert indices(first) != indices(loader(tokenizer, tmp_path, seed=1))
    assert indices(first) != indices(loader(tokenizer, tmp_path, epoch=1))
    assert sorted(i for batch in indices(first) for i in batch) == list(range(ROWS))  # each row once an epoch
    random = list(loader(tokenizer, tmp_path, batching="random"))
    assert padded_per_real_token(first) * 1.5 < padded_per_real_token(random)  # pools of only 4 batches here


def test_a_resumed_epoch_serves_exactly_the_batches_an_uninterrupted_one_does(tokenizer, tmp_path):
    whole = indices(loader(tokenizer, tmp_path, epoch=1))
    interrupted = loader(tokenizer, tmp_path, epoch=1)
    seen = []
    for batch in interrupted:
        seen.append(batch["idx"].tolist())
        if len(seen) == 13:
            break
    state = interrupted.state_dict()
    resumed = loader(tokenizer, tmp_path)  # a fresh process: epoch and position come from the checkpoint
    resumed.load_state_dict(state)
    assert seen + indices(resumed) == whole


def test_ranks_split_an_epoch_with_no_overlap_into_the_single_process_batches(tokenizer, tmp_path):
    single = indices(loader(tokenizer, tmp_path, batch_size=2 * BATCH))
    ranks = [indices(loader(tokenizer, tmp_path, rank=r, replicas=2)) for r in (0, 1)]
    assert not {i for b in ranks[0] for i in b} & {i for b in ranks[1] for i in b}
    assert len(ranks[0]) == len(ranks[1]) == len(single)
    for together, first, second in zip(single, *ranks, strict=True):
        assert sorted(together) == sorted(first + second)  # two ranks of 16 train on one process's batch of 32


def test_the_end_of_an_epoch_resumes_at_the_next_epoch(tokenizer, tmp_path):
    """A checkpoint saved after an epoch's last batch (every_n_train_steps can land there) resumes at the start
    of the next epoch, not in an empty remainder of the old one."""
    finished = loader(tokenizer, tmp_path)
    list(finished)
    resumed = loader(tokenizer, tmp_path)
    resumed.load_state_dict(finished.state_dict())
    assert indices(resumed) == indices(loader(tokenizer, tmp_path, epoch=1))
    assert torch.equal(torch.tensor(finished.state_dict()["epoch"]), torch.tensor(1))
