"""The embedding task's metrics (retrieval, and Spearman over scored pairs), in a module of their own so that
torchmetrics is imported only when a run scores."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

SCORES = ("mrr_at_10", "recall_at_1", "recall_at_5", "recall_at_10", "ndcg_at_10")


def cosines(rows: Tensor, columns: Tensor) -> Tensor:
    """(N, M) cosine similarities of N vectors to M vectors."""
    return F.normalize(rows.float(), dim=-1) @ F.normalize(columns.float(), dim=-1).T


def relevant_ranks(queries: Tensor, passages: Tensor, relevant: Tensor) -> Tensor:
    """Each query's 0-based rank of its relevant passage by cosine similarity (ties count against it)."""
    scores = cosines(queries, passages)
    target = scores.gather(1, relevant.unsqueeze(1))
    return (scores >= target).sum(1) - 1


def retrieval_scores(ranks: Tensor) -> dict[str, Tensor]:
    """recall@k, MRR@10 and nDCG@10 for one relevant passage per query, from its 0-based rank."""
    ranks = ranks.float()
    top10 = ranks < 10
    return {
        "mrr_at_10": torch.where(top10, 1 / (ranks + 1), 0.0).mean(),
        "recall_at_1": (ranks < 1).float().mean(),
        "recall_at_5": (ranks < 5).float().mean(),
        "recall_at_10": top10.float().mean(),
        "ndcg_at_10": torch.where(top10, 1 / torch.log2(ranks + 2), 0.0).mean(),
    }


class RetrievalScores(Metric):
    """Queries against passages, scored once every batch of the split is in: the vectors are states, so they
    gather across ranks. A passage seen twice (the padding of a distributed sampler) counts once."""

    full_state_update = False
    higher_is_better = True

    def __init__(self, which: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.which = which
        for state in ("vectors", "relevant", "passage"):
            self.add_state(state, default=[], dist_reduce_fx="cat")

    def update(self, vectors: Tensor, relevant: Tensor, passage: Tensor) -> None:
        self.vectors.append(vectors.detach().float())
        self.relevant.append(relevant)
        self.passage.append(passage)

    def compute(self) -> Tensor:
        if not self.vectors:
            return torch.tensor(0.0)
        vectors, relevant, passage = (dim_zero_cat(getattr(self, s)) for s in ("vectors", "relevant", "passage"))
        is_query = passage < 0
        if not is_query.any() or is_query.all():
            return torch.tensor(0.0)
        table = torch.zeros(int(passage.max()) + 1, vectors.shape[1], device=vectors.device)
        table[passage[~is_query]] = vectors[~is_query]  # duplicates write the same vector
        ranks = relevant_ranks(vectors[is_query], table, relevant[is_query])
        return retrieval_scores(ranks)[self.which]


class PairScores(Metric):
    """Spearman's correlation between each pair's cosine similarity and its score, once every batch is in (the
    two texts of a pair may arrive in different batches, or on different ranks)."""

    full_state_update = False
    higher_is_better = True

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        for state in ("vectors", "scores", "pairs"):
            self.add_state(state, default=[], dist_reduce_fx="cat")

    def update(self, vectors: Tensor, scores: Tensor, pairs: Tensor) -> None:
        self.vectors.append(vectors.detach().float())
        self.scores.append(scores.float())
        self.pairs.append(pairs)

    def compute(self) -> Tensor:
        from torchmetrics.functional import spearman_corrcoef

        if not self.vectors:
            return torch.tensor(0.0)
        vectors, scores, pairs = (dim_zero_cat(getattr(self, s)) for s in ("vectors", "scores", "pairs"))
        count = int(pairs.max()) + 1
        first, second = torch.zeros(count, vectors.shape[1]), torch.zeros(count, vectors.shape[1])
        gold = torch.zeros(count)
        seen = torch.zeros(count, dtype=torch.long)
        for vector, score, pair in zip(vectors.cpu(), scores.cpu(), pairs.cpu().tolist(), strict=True):
            if pair >= 0 and seen[pair] < 2:  # a third row (a repeat that distributed padding adds) is left out
                (first if seen[pair] == 0 else second)[pair] = vector
                seen[pair] += 1
                gold[pair] = score
        complete = seen >= 2
        if complete.sum() < 2:
            return torch.tensor(0.0)
        cosines = F.cosine_similarity(first[complete], second[complete], dim=-1)
        return spearman_corrcoef(cosines, gold[complete])
