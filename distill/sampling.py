"""A training loader that resumes mid-epoch exactly: the order of each epoch comes from (seed, epoch), and
the loader's position travels in Lightning checkpoints, so a resumed run sees the batches it has not seen."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, Sampler


class EpochSeededSampler(Sampler[int]):
    """A shuffle drawn from (seed, epoch) alone; it can start partway through its epoch.

    Under data parallelism every rank draws the same shuffle and takes every `replicas`-th example from
    position `rank`, so the ranks share out each epoch with no overlap (the last few examples of an uneven
    epoch are dropped, keeping every rank's step count equal).
    """

    def __init__(self, length: int, seed: int, rank: int = 0, replicas: int = 1) -> None:
        self.length, self.seed, self.rank, self.replicas = length, seed, rank, replicas
        self.epoch = 0
        self.start = 0  # this rank's examples to skip at the next iteration (a resumed epoch)

    def set_epoch(self, epoch: int) -> None:
        """Called by Lightning at every epoch start."""
        self.epoch = epoch

    def __len__(self) -> int:
        return self.length // self.replicas

    def __iter__(self) -> Iterator[int]:
        order = torch.randperm(self.length, generator=torch.Generator().manual_seed(self.seed + self.epoch)).tolist()
        mine = order[self.rank : len(self) * self.replicas : self.replicas]
        start, self.start = self.start, 0
        yield from mine[start:]


class ResumableLoader(DataLoader):
    """A DataLoader whose state_dict records how far into the epoch it has got (Lightning's _Stateful protocol)."""

    def __init__(self, *args: Any, sampler: EpochSeededSampler, **kwargs: Any) -> None:
        super().__init__(*args, sampler=sampler, **kwargs)
        self.served = 0  # batches handed out in the current epoch

    def __iter__(self) -> Iterator[Any]:
        self.served = self.sampler.start // self.batch_size
        for batch in super().__iter__():
            self.served += 1
            yield batch

    def state_dict(self) -> dict[str, int]:
        """Where the next batch comes from. After an epoch's last batch that is the start of the next epoch: a
        checkpoint saved then (say, by every_n_train_steps) must not resume into an empty remainder."""
        if self.served >= len(self):
            return {"epoch": self.sampler.epoch + 1, "served": 0}
        return {"epoch": self.sampler.epoch, "served": self.served}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.sampler.set_epoch(state["epoch"])
        self.sampler.start = state["served"] * self.batch_size
