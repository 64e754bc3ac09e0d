"""A training loader that resumes mid-epoch exactly: the order of each epoch comes from (seed, epoch), and
the loader's position travels in Lightning checkpoints, so a resumed run sees the batches it has not seen."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Sampler


class EpochSeededSampler(Sampler[int]):
    """A shuffle drawn from (seed, epoch) alone; it can start partway through its epoch.

    Under data parallelism every rank draws the same epoch order and takes every `replicas`-th example from
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

    def epoch_order(self, generator: torch.Generator) -> Tensor:
        """Every example index once, in this epoch's order (the same on every rank)."""
        return torch.randperm(self.length, generator=generator)

    def __iter__(self) -> Iterator[int]:
        order = self.epoch_order(torch.Generator().manual_seed(self.seed + self.epoch)).tolist()
        mine = order[self.rank : len(self) * self.replicas : self.replicas]
        start, self.start = self.start, 0
        yield from mine[start:]


class LengthGroupedSampler(EpochSeededSampler):
    """Batches of sentences of similar length, so padding to a batch's longest sentence wastes little.

    Each epoch shuffles the examples, cuts the shuffle into pools of `pool` global batches, sorts each pool
    by length and cuts it into global batches (`batch_size` x `replicas`), then shuffles the batches; the one
    short batch, if any, comes last. Rank r takes every replicas-th example, so its k-th batch is its share
    of global batch k: two ranks of 16 train on the batch one process of 32 would. Seeded, resumable and
    sharded exactly as EpochSeededSampler.
    """

    def __init__(
        self, lengths: Tensor, batch_size: int, seed: int, rank: int = 0, replicas: int = 1, pool: int = 50
    ) -> None:
        super().__init__(len(lengths), seed, rank, replicas)
        self.lengths, self.global_batch, self.pool = lengths, batch_size * replicas, pool

    def epoch_order(self, generator: torch.Generator) -> Tensor:
        shuffled = torch.randperm(self.length, generator=generator)
        batches: list[Tensor] = []
        for pool in shuffled.split(self.global_batch * self.pool):
            longest_first = pool[self.lengths[pool].argsort(descending=True, stable=True)]
            batches += longest_first.split(self.global_batch)
        short = batches.pop() if batches and len(batches[-1]) < self.global_batch else None
        batches = [batches[i] for i in torch.randperm(len(batches), generator=generator)]
        return torch.cat([*batches, *([short] if short is not None else [])])


class GroupKeepingSampler(EpochSeededSampler):
    """A shuffle of whole groups: the rows of a group (the texts of one example, `GROUP`) stay together and in
    order, and rows of no group (-1) are groups of one. A group that straddles the end of a batch is split
    between two; a loss that reads groups uses the complete ones.

    Under data parallelism rank r takes the r-th contiguous share of each global batch (`batch_size` x
    `replicas`), so groups stay whole on one rank. Seeded and resumable as EpochSeededSampler.
    """

    def __init__(self, groups: Tensor, batch_size: int, seed: int, rank: int = 0, replicas: int = 1) -> None:
        super().__init__(len(groups), seed, rank, replicas)
        self.batch_size = batch_size
        starts = torch.ones(len(groups), dtype=torch.bool)
        starts[1:] = (groups[1:] != groups[:-1]) | (groups[1:] < 0)
        self.units = torch.arange(len(groups)).tensor_split(starts.nonzero().flatten()[1:].tolist())

    def epoch_order(self, generator: torch.Generator) -> Tensor:
        return torch.cat([self.units[i] for i in torch.randperm(len(self.units), generator=generator)])

    def __iter__(self) -> Iterator[int]:
        order = self.epoch_order(torch.Generator().manual_seed(self.seed + self.epoch)).tolist()
        order = order[: len(self) * self.replicas]
        step, mine = self.batch_size * self.replicas, []
        for begin in range(0, len(order), step):
            chunk = order[begin : begin + step]
            share = len(chunk) // self.replicas
            mine += chunk[self.rank * share : (self.rank + 1) * share]
        start, self.start = self.start, 0
        yield from mine[start:]


class LengthOrderedSampler(Sampler[int]):
    """Evaluation in order of length, longest first, so each batch pads to a length close to its own: SST-2's dev
    set pads to half the tokens of its file order. Scores do not depend on the order; each example is seen once.

    Under data parallelism the order is padded to a multiple of `replicas` by repeating its first examples, as
    torch's DistributedSampler does, and rank r takes every replicas-th index from position r.
    """

    def __init__(self, lengths: Tensor, rank: int = 0, replicas: int = 1) -> None:
        order = lengths.argsort(descending=True, stable=True).tolist()
        padded = order + order[: (-len(order)) % replicas]
        self.indices = padded[rank::replicas]

    def __len__(self) -> int:
        return len(self.indices)

    def __iter__(self) -> Iterator[int]:
        yield from self.indices


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
