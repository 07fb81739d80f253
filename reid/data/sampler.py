"""PK sampling: every training batch holds P identities with K images each.

The triplet loss needs, for every anchor, at least one positive (same identity) and one
negative (another identity) in its batch. Drawing P identities and then K images of each
guarantees both (Hermans et al., 2017, "In Defense of the Triplet Loss").
"""

from __future__ import annotations

from collections import defaultdict
from typing import Iterator, Sequence

import numpy as np
from torch.utils.data import Sampler


class RandomIdentitySampler(Sampler[list[int]]):
    """A batch sampler yielding lists of P x K dataset indices: P distinct identities, K images each.

    Each epoch, every identity's images are shuffled and cut into groups of K (an identity
    with fewer than K images is sampled with replacement to K); batches then take one group
    from each of P identities drawn at random among those with groups left, until fewer
    than P remain. This is the seed's algorithm, made reproducible: the order depends only
    on ``seed`` and the epoch. Each pass over the sampler is one epoch and advances
    ``epoch``; ``set_epoch`` (or ``load_state_dict``) picks one explicitly, e.g. to resume.

    Use it as ``DataLoader(dataset, batch_sampler=RandomIdentitySampler(...))``.
    """

    def __init__(self, pids: Sequence[int], batch_size: int, num_instances: int, seed: int = 0):
        if num_instances < 1 or batch_size % num_instances:
            raise ValueError(
                f"batch_size={batch_size} is not divisible by num_instances={num_instances}: "
                f"a PK batch holds P identities x K images; use a multiple of {num_instances}"
            )
        self.pids = [int(p) for p in pids]
        self.num_instances = num_instances
        self.num_pids_per_batch = batch_size // num_instances
        self.index_of = defaultdict(list)  # pid -> dataset indices
        for i, pid in enumerate(self.pids):
            self.index_of[pid].append(i)
        self.identities = sorted(self.index_of)
        if len(self.identities) < self.num_pids_per_batch:
            raise ValueError(
                f"the training set has {len(self.identities)} identities but a batch needs "
                f"P = batch_size / num_instances = {self.num_pids_per_batch}; lower batch_size"
            )
        self.seed = seed
        self.epoch = 0
        self._cache: tuple[int, list[list[int]]] | None = None

    def batches(self, epoch: int) -> list[list[int]]:
        """The batches of one epoch (deterministic from seed and epoch)."""
        if self._cache is not None and self._cache[0] == epoch:
            return self._cache[1]
        rng = np.random.default_rng([self.seed, epoch])
        k = self.num_instances
        groups: dict[int, list[list[int]]] = {}
        for pid in self.identities:
            idxs = np.asarray(self.index_of[pid])
            if len(idxs) < k:
                idxs = rng.choice(idxs, size=k, replace=True)
            idxs = rng.permutation(idxs)
            usable = len(idxs) // k * k
            groups[pid] = [idxs[i : i + k].tolist() for i in range(0, usable, k)]
        available = [pid for pid in self.identities if groups[pid]]
        out = []
        while len(available) >= self.num_pids_per_batch:
            chosen = rng.choice(len(available), size=self.num_pids_per_batch, replace=False)
            batch = []
            for j in chosen:
                batch.extend(groups[available[j]].pop())
            out.append(batch)
            available = [pid for pid in available if groups[pid]]
        self._cache = (epoch, out)
        return out

    def __iter__(self) -> Iterator[list[int]]:
        epoch = self.epoch
        self.epoch += 1
        yield from self.batches(epoch)

    def __len__(self) -> int:
        return len(self.batches(self.epoch))

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def state_dict(self) -> dict:
        return {"seed": self.seed, "epoch": self.epoch}

    def load_state_dict(self, state: dict) -> None:
        self.seed, self.epoch = int(state["seed"]), int(state["epoch"])
