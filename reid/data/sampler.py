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


def pk_batches(pids: Sequence[int], p: int, k: int, rng: np.random.Generator) -> list[list[int]]:
    """One epoch of PK batches, plainly: lists of dataset indices, P identities x K images each.

    `RandomIdentitySampler` does the same (tested equal, with ``rng = np.random.default_rng([seed, epoch])``)
    and adds what training needs around it: an order fixed by seed and epoch, resuming, one slice per process.
    """
    index_of = defaultdict(list)  # pid -> its dataset indices
    for i, pid in enumerate(pids):
        index_of[pid].append(i)
    groups = {}  # pid -> its images, shuffled and cut into groups of K
    for pid in sorted(index_of):
        idxs = np.asarray(index_of[pid])
        if len(idxs) < k:  # too few images: draw K with replacement
            idxs = rng.choice(idxs, size=k, replace=True)
        idxs = rng.permutation(idxs)
        groups[pid] = [idxs[i : i + k].tolist() for i in range(0, len(idxs) // k * k, k)]  # leftovers skipped
    batches = []
    available = [pid for pid in groups if groups[pid]]  # identities with a group left
    while len(available) >= p:  # the epoch ends when fewer than P identities have a group left
        chosen = rng.choice(available, size=p, replace=False)  # P distinct identities
        batches.append([i for pid in chosen for i in groups[pid].pop()])  # K images of each
        available = [pid for pid in available if groups[pid]]
    return batches


class RandomIdentitySampler(Sampler[list[int]]):
    """A batch sampler yielding lists of P x K dataset indices: P distinct identities, K images each.

    Each epoch, every identity's images are shuffled and cut into groups of K (an identity
    with fewer than K images is sampled with replacement to K); batches then take one group
    from each of P identities drawn at random among those with groups left, until fewer
    than P remain. This is person-reid-tiny-baseline's algorithm, made reproducible: the
    order depends only on ``seed`` and the epoch. Each pass over the sampler is one epoch and advances
    ``epoch``; ``set_epoch`` (or ``load_state_dict``) picks one explicitly, e.g. to resume.

    Use it as ``DataLoader(dataset, batch_sampler=RandomIdentitySampler(...))``.

    With several processes (DistributedDataParallel), every process builds the same global
    batches of P x world_size identities and takes its own P of them (``rank``), so no
    identity is seen by two processes in the same step. ``item_seeds=True`` yields
    (index, augmentation seed) pairs instead of indices, for `ImageDataset`.
    """

    def __init__(self, pids: Sequence[int], batch_size: int, num_instances: int, seed: int = 0,
                 rank: int = 0, world_size: int = 1, item_seeds: bool = False):
        if num_instances < 1 or batch_size % num_instances:
            raise ValueError(
                f"batch_size={batch_size} is not divisible by num_instances={num_instances}: "
                f"a PK batch holds P identities x K images; use a multiple of {num_instances}"
            )
        if not 0 <= rank < world_size:
            raise ValueError(f"rank={rank} must be in [0, world_size={world_size})")
        self.pids = [int(p) for p in pids]
        self.num_instances = num_instances
        self.num_pids_per_batch = batch_size // num_instances
        self.rank, self.world_size, self.item_seeds = rank, world_size, item_seeds
        self.index_of = defaultdict(list)  # pid -> dataset indices
        for i, pid in enumerate(self.pids):
            self.index_of[pid].append(i)
        self.identities = sorted(self.index_of)
        needed = self.num_pids_per_batch * world_size
        if len(self.identities) < needed:
            raise ValueError(
                f"the training set has {len(self.identities)} identities but a step needs "
                f"P = batch_size / num_instances = {self.num_pids_per_batch} per process x {world_size} "
                f"process(es) = {needed}; lower batch_size"
            )
        self.seed = seed
        self.epoch = 0
        self._cache: tuple[int, list[list[int]]] | None = None

    def global_batches(self, epoch: int) -> list[list[int]]:
        """The batches of one epoch for all processes together (deterministic from seed and epoch).

        Each holds P x world_size distinct identities, K images each; process r takes the
        r-th slice of P identities (`batches`).
        """
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
        per_step = self.num_pids_per_batch * self.world_size
        out = []
        while len(available) >= per_step:
            chosen = rng.choice(len(available), size=per_step, replace=False)
            batch = []
            for j in chosen:
                batch.extend(groups[available[j]].pop())
            out.append(batch)
            available = [pid for pid in available if groups[pid]]
        self._cache = (epoch, out)
        return out

    def batches(self, epoch: int) -> list[list[int]]:
        """This process's batches of one epoch: its own P identities of every global batch."""
        size = self.num_pids_per_batch * self.num_instances
        lo = self.rank * size
        return [b[lo : lo + size] for b in self.global_batches(epoch)]

    def augmentation_seeds(self, epoch: int) -> list[list[int]]:
        """One seed per image of `batches(epoch)`, for `ImageDataset` to seed its random transforms with.

        The augmentation of each image then depends only on (seed, epoch, position), not on
        which loader worker happens to load it: training gives the same result with 0 or 8
        workers, and a resumed run repeats exactly what an uninterrupted one would have done.
        """
        sizes = [len(b) for b in self.global_batches(epoch)]
        seeds = np.random.default_rng([self.seed, epoch, 1]).integers(0, 2**62, size=sum(sizes))
        size = self.num_pids_per_batch * self.num_instances
        lo = self.rank * size
        per_batch = np.split(seeds, np.cumsum(sizes)[:-1]) if sizes else []
        return [s[lo : lo + size].tolist() for s in per_batch]

    def __iter__(self) -> Iterator[list]:
        epoch = self.epoch
        self.epoch += 1
        if not self.item_seeds:
            yield from self.batches(epoch)
            return
        for batch, seeds in zip(self.batches(epoch), self.augmentation_seeds(epoch)):
            yield list(zip(batch, seeds))  # (dataset index, augmentation seed) pairs

    def __len__(self) -> int:
        return len(self.batches(self.epoch))

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def state_dict(self) -> dict:
        return {"seed": self.seed, "epoch": self.epoch}

    def load_state_dict(self, state: dict) -> None:
        self.seed, self.epoch = int(state["seed"]), int(state["epoch"])
