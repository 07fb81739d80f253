from collections import Counter

import numpy as np
import pytest

from reid.data import RandomIdentitySampler


def _pids(rng_seed=0, num_ids=30):
    rng = np.random.default_rng(rng_seed)
    counts = rng.integers(1, 12, num_ids)  # some identities have fewer than K images
    return [pid for pid, c in enumerate(counts) for _ in range(c)]


def test_every_batch_is_p_by_k_with_distinct_identities():
    pids = _pids()
    sampler = RandomIdentitySampler(pids, batch_size=32, num_instances=4, seed=0)
    batches = list(sampler)
    assert len(batches) == len(sampler.batches(0)) > 0
    for batch in batches:
        assert len(batch) == 32
        counts = Counter(pids[i] for i in batch)
        assert len(counts) == 8 and set(counts.values()) == {4}


def test_identities_with_few_images_are_sampled_with_replacement():
    pids = [0] * 2 + [1] * 4 + [2] * 1 + [3] * 9
    sampler = RandomIdentitySampler(pids, batch_size=8, num_instances=4, seed=1)
    seen = Counter(pids[i] for batch in sampler.batches(0) for i in batch)
    assert seen[2] == 4  # one image, drawn four times
    assert all(v % 4 == 0 for v in seen.values())


def test_reproducible_and_epochs_differ():
    pids = _pids()
    a = RandomIdentitySampler(pids, 16, 4, seed=7)
    b = RandomIdentitySampler(pids, 16, 4, seed=7)
    assert list(a) == list(b)  # epoch 0
    assert list(a) == list(b)  # epoch 1
    assert a.batches(0) != a.batches(1)
    assert RandomIdentitySampler(pids, 16, 4, seed=8).batches(0) != a.batches(0)


def test_state_dict_resumes_the_epoch():
    pids = _pids()
    a = RandomIdentitySampler(pids, 16, 4, seed=3)
    list(a), list(a)
    b = RandomIdentitySampler(pids, 16, 4, seed=0)
    b.load_state_dict(a.state_dict())
    assert list(b) == list(a)


def test_len_matches_iteration():
    pids = _pids(5)
    s = RandomIdentitySampler(pids, 24, 4, seed=2)
    n = len(s)
    assert n == len(list(s))


def test_batch_not_divisible_by_k():
    with pytest.raises(ValueError, match="not divisible by num_instances=4"):
        RandomIdentitySampler(list(range(10)), batch_size=30, num_instances=4)


def test_too_few_identities():
    with pytest.raises(ValueError, match="2 identities but a step needs"):
        RandomIdentitySampler([0, 0, 1, 1], batch_size=16, num_instances=4)


def test_ranks_get_disjoint_identities_and_cover_the_global_batch():
    pids = [p for p in range(40) for _ in range(5)]
    single = RandomIdentitySampler(pids, 16, 4, seed=3, world_size=2)
    ranks = [RandomIdentitySampler(pids, 16, 4, seed=3, rank=r, world_size=2) for r in range(2)]
    b0, b1 = ranks[0].batches(0), ranks[1].batches(0)
    assert len(b0) == len(b1) > 0  # every process takes the same number of steps
    for x, y, whole in zip(b0, b1, single.global_batches(0)):
        ids_x, ids_y = {pids[i] for i in x}, {pids[i] for i in y}
        assert len(x) == len(y) == 16 and len(ids_x) == len(ids_y) == 4
        assert not ids_x & ids_y  # no identity on two processes in one step
        assert x + y == whole
    with pytest.raises(ValueError, match="rank=2 must be in"):
        RandomIdentitySampler(pids, 16, 4, rank=2, world_size=2)
    with pytest.raises(ValueError, match="x 16 process"):
        RandomIdentitySampler(pids, 16, 4, world_size=16)


def test_item_seeds_pair_every_index_with_a_seed():
    pids = [p for p in range(12) for _ in range(4)]
    s = RandomIdentitySampler(pids, 8, 4, seed=1, item_seeds=True)
    plain = RandomIdentitySampler(pids, 8, 4, seed=1)
    first = list(s)
    assert [[i for i, _ in b] for b in first] == plain.batches(0)
    seeds = [seed for b in first for _, seed in b]
    assert len(set(seeds)) == len(seeds)  # distinct seeds, so no two images share their augmentation
    assert list(s) != first  # the next epoch draws new seeds and batches


@pytest.mark.parametrize("seed", [0, 3])
@pytest.mark.parametrize("p, k", [(8, 4), (4, 2), (3, 5)])
def test_plain_pk_batches_are_the_samplers(seed, p, k):
    """The plain function the book shows first draws exactly the sampler's batches, epoch after epoch."""
    from reid.data import pk_batches

    pids = _pids(seed, num_ids=40)
    sampler = RandomIdentitySampler(pids, p * k, k, seed=seed)
    for epoch in range(3):
        plain = pk_batches(pids, p, k, np.random.default_rng([seed, epoch]))
        assert plain and plain == sampler.global_batches(epoch)
        assert all(len(b) == p * k and len({pids[i] for i in b}) == p for b in plain)
