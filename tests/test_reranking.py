"""Re-ranking: the vectorised version against a plain transcription of the classic algorithm."""

import numpy as np
import pytest
import torch

from reid.evaluation import evaluate_rank
from reid.reranking import re_ranking


def classic_re_ranking(q, g, k1, k2, lambda_value):
    """The classic public algorithm, written plainly: dense matrices, a Python loop per image."""
    feats = np.concatenate([q, g]).astype(np.float64)
    nq, n = len(q), len(q) + len(g)
    sq = (feats**2).sum(1)
    dist = np.maximum(sq[:, None] + sq[None, :] - 2 * feats @ feats.T, 0)
    dist = np.transpose(dist / np.max(dist, axis=0))  # column-max scaling
    rank = np.argsort(dist, axis=1, kind="stable")
    V = np.zeros((n, n))
    for i in range(n):
        forward = rank[i, : k1 + 1]
        backward = rank[forward, : k1 + 1]
        recip = forward[np.where(backward == i)[0]]
        expansion = recip
        half = int(np.around(k1 / 2)) + 1
        for c in recip:
            c_forward = rank[c, :half]
            c_backward = rank[c_forward, :half]
            c_recip = c_forward[np.where(c_backward == c)[0]]
            if len(np.intersect1d(c_recip, recip)) > 2 / 3 * len(c_recip):
                expansion = np.append(expansion, c_recip)
        expansion = np.unique(expansion)
        w = np.exp(-dist[i, expansion])
        V[i, expansion] = w / w.sum()
    if k2 != 1:
        V = np.stack([V[rank[i, :k2]].mean(0) for i in range(n)])
    jaccard = np.zeros((nq, n))
    for i in range(nq):
        inter = np.minimum(V[i][None, :], V).sum(1)
        jaccard[i] = 1 - inter / (2 - inter)
    final = jaccard * (1 - lambda_value) + dist[:nq] * lambda_value
    return final[:, nq:]


def clustered(seed, nq, ng, n_ids, dim=16):
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(n_ids, dim))
    q_pids, g_pids = rng.integers(0, n_ids, nq), rng.integers(0, n_ids, ng)
    q = centers[q_pids] + 0.7 * rng.normal(size=(nq, dim))
    g = centers[g_pids] + 0.7 * rng.normal(size=(ng, dim))
    return q.astype(np.float32), g.astype(np.float32), q_pids, g_pids


WAYS = {"numba": dict(compiled=True), "tensors, chosen": dict(compiled=False),
        "tensors, dense": dict(compiled=False, dense=True), "tensors, sparse join": dict(compiled=False, dense=False)}


@pytest.mark.parametrize("way", WAYS)
@pytest.mark.parametrize("seed, k1, k2, lam", [(0, 20, 6, 0.3), (1, 5, 1, 0.0), (2, 7, 3, 0.9), (3, 2, 2, 0.5),
                                               (4, 30, 10, 0.1)])
def test_agrees_with_the_classic_algorithm(seed, k1, k2, lam, way):
    """Float32 against the float64 reference: largest difference measured 4.2e-7 over these cases, every way."""
    q, g, q_pids, g_pids = clustered(seed, 40, 160, 25)
    ref = classic_re_ranking(q, g, k1, k2, lam)
    ours = re_ranking(torch.from_numpy(q), torch.from_numpy(g), k1, k2, lam, **WAYS[way]).numpy()
    assert ours.shape == ref.shape == (40, 160)
    assert np.abs(ours - ref).max() < 1e-6
    q_cams, g_cams = np.zeros(40), np.ones(160)
    ref_map = evaluate_rank(ref, q_pids, g_pids, q_cams, g_cams).mAP
    our_map = evaluate_rank(ours, q_pids, g_pids, q_cams, g_cams).mAP
    assert abs(ref_map - our_map) < 1e-6


@pytest.mark.parametrize("seed, k1, k2, lam", [(0, 20, 6, 0.3), (1, 5, 1, 0.0), (4, 30, 10, 0.1)])
def test_chapter_7s_plain_version_is_the_classic_algorithm_and_the_package(seed, k1, k2, lam):
    """`re_ranking_plain` (dense, a loop per image, float64), shown first in chapter 7, against the transcription
    of the classic code above and against `re_ranking`."""
    from reid.reranking import re_ranking_plain

    q, g, _, _ = clustered(seed, 40, 160, 25)
    plain = re_ranking_plain(torch.from_numpy(q), torch.from_numpy(g), k1, k2, lam).numpy()
    assert np.abs(plain - classic_re_ranking(q, g, k1, k2, lam)).max() < 1e-12
    assert np.abs(plain - re_ranking(torch.from_numpy(q), torch.from_numpy(g), k1, k2, lam).numpy()).max() < 1e-6


def test_every_way_of_the_jaccard_sums_agrees_on_long_and_short_rows():
    """The search's extremes: long expanded rows in a small gallery (dense wins), one neighbour (the join wins)."""
    from reid.reranking import nearest_neighbours, query_expansion, weighted_sets, jaccard_numerator

    q, g, _, _ = clustered(5, 50, 200, 10)
    feats = torch.from_numpy(np.concatenate([q, g]))
    knn, knn_d, row_max = nearest_neighbours(feats, 61)
    for k1, k2 in ((60, 30), (20, 6), (2, 1)):
        sums = []
        for way in WAYS.values():  # V, V_qe and the sums each way
            v = weighted_sets(feats, knn, knn_d, row_max, k1, compiled=way["compiled"])
            queries, gallery = (query_expansion(v, knn, k2, torch.arange(a, b), way["compiled"])
                                for a, b in ((0, 50), (50, 250)))
            sums.append(jaccard_numerator(queries, gallery, **way))
        assert sums[0].shape == (50, 200)
        for other in sums[1:]:
            assert (sums[0] - other).abs().max() < 1e-6


def test_blocks_of_any_size_give_the_same_distances_and_scores(monkeypatch):
    """The memory bound only changes how many queries a block holds: distances identical bit for bit."""
    import reid.reranking as rr

    q, g, q_pids, g_pids = clustered(6, 300, 500, 40)
    q, g = torch.from_numpy(q), torch.from_numpy(g)
    whole = re_ranking(q, g)
    feats = torch.cat([q, g])
    pids, camids = np.concatenate([q_pids, g_pids]), np.r_[np.zeros(300), np.ones(500)]
    one = rr.evaluate_reranked(feats, pids, camids, 300, feat_norm=False)
    expected = evaluate_rank(whole, q_pids, g_pids, np.zeros(300), np.ones(500))
    assert one.mAP == pytest.approx(expected.mAP, abs=1e-12) and np.array_equal(one.cmc, expected.cmc)
    kept = rr.neighbourhoods(torch.cat([q, g]), 300, 21, keep_bytes=1e9)
    for block in (64, 2048):  # the original distances computed again on the neighbour pass's blocks: same bits
        again = rr.neighbourhoods(torch.cat([q, g]), 300, 21, block=block, keep_bytes=0)
        assert again.kept is None and torch.equal(again.scaled_distances(0, 300), kept.scaled_distances(0, 300))
    monkeypatch.setattr(rr, "nearest_neighbours", lambda *a, nn=rr.nearest_neighbours: nn(*a[:2], 64, *a[3:]))
    monkeypatch.setattr(rr, "DEFAULT_MEMORY_GB", 0.0035)  # too little to keep the original distances
    for rows in (7, 64, 200):  # blocks that do not start where the neighbour pass's blocks start, and that do
        monkeypatch.setattr(rr, "block_rows", lambda *args, rows=rows: rows)
        assert torch.equal(re_ranking(q, g), whole), rows
        small = rr.evaluate_reranked(feats, pids, camids, 300, feat_norm=False)
        assert (small.mAP, small.mINP) == (one.mAP, one.mINP) and np.array_equal(small.cmc, one.cmc)


def test_the_memory_bound_sets_the_rows_of_a_block():
    from reid.reranking import QUERY_CHUNK, block_rows

    g, fixed = 10_000, 50_000_000
    row, temp = 8 * g, 12 * g  # bytes: a block row, and a mixing temporary
    assert block_rows(100_000, g, fixed, (fixed + 1000 * row + QUERY_CHUNK * temp) / 1e9) == 896  # 7 chunks
    assert block_rows(100_000, g, fixed, (fixed + 1000 * row + QUERY_CHUNK * temp) / 1e9, align=512) == 512
    assert block_rows(100_000, g, fixed, (fixed + 5 * (row + temp)) / 1e9) == 5
    assert block_rows(300, g, fixed, 100.0) == 300
    with pytest.raises(MemoryError, match=r"needs at least 0.05 GB .* raise max_memory_gb to 0.053"):
        block_rows(100_000, g, fixed, 0.04)


def test_the_result_as_float16_or_as_each_querys_top_k():
    from reid.reranking import re_ranking_topk

    q, g, _, _ = clustered(8, 60, 300, 20)
    q, g = torch.from_numpy(q), torch.from_numpy(g)
    whole = re_ranking(q, g)
    assert torch.equal(re_ranking(q, g, dtype=torch.float16), whole.half())
    d, i = re_ranking_topk(q, g, 10, max_memory_gb=0.001)  # a few queries a block
    top = torch.topk(whole, 10, dim=1, largest=False, sorted=True)
    assert torch.equal(d, top.values) and torch.equal(i, top.indices)


def test_a_memory_bound_too_small_for_one_block_says_how_much_is_needed():
    q, g, _, _ = clustered(9, 40, 160, 25)
    with pytest.raises(MemoryError, match=r"needs at least .* GB .* raise max_memory_gb"):
        re_ranking(torch.from_numpy(q), torch.from_numpy(g), max_memory_gb=1e-6)


def test_the_plain_expanded_set_of_one_image_is_the_vectorised_row():
    """Chapter 7 shows `expanded_set` (one image, plainly) before `expanded_sets` (every image at once)."""
    from reid.reranking import expanded_set, expanded_sets, k_reciprocal_set, nearest_neighbours, reciprocal_mask

    q, g, _, _ = clustered(10, 30, 120, 15)
    feats = torch.from_numpy(np.concatenate([q, g]))
    for k1 in (2, 7, 20):
        knn = nearest_neighbours(feats, k1 + 1)[0]
        idx, ok = expanded_sets(knn, k1)
        recip = reciprocal_mask(knn)
        for i in range(len(feats)):
            assert expanded_set(knn, i, k1) == idx[i][ok[i]].tolist(), (k1, i)
            assert k_reciprocal_set(knn, i, k1) == knn[i][recip[i]].tolist()


def test_bad_input_is_explained():
    q, g = torch.randn(3, 4), torch.randn(5, 4)
    with pytest.raises(ValueError, match="k1=8 must be in"):
        re_ranking(q, g, k1=8)
    with pytest.raises(ValueError, match="k2=9 must be in"):
        re_ranking(q, g, k1=2, k2=9)
    with pytest.raises(ValueError, match="non-empty"):
        re_ranking(q[:0], g, k1=2, k2=1)
    with pytest.raises(ValueError, match="same d"):
        re_ranking(q, g[:, :2], k1=2, k2=1)
    with pytest.raises(ValueError, match="NaN"):
        re_ranking(q * float("nan"), g, k1=2, k2=1)


@pytest.mark.parametrize("compiled", [True, False], ids=["numba", "tensors"])
def test_search_finds_what_a_brute_force_loop_finds(compiled):
    from reid.reranking import reranking_grid, search_reranking

    q, g, q_pids, g_pids = clustered(7, 60, 240, 30)
    q_cams, g_cams = np.zeros(60), np.ones(240)
    grid = reranking_grid(k1_values=(3, 6, 10), k2_values=(2, 3, 5), lambdas=(0.1, 0.3))
    result = search_reranking(torch.from_numpy(q), torch.from_numpy(g), q_pids, g_pids, q_cams, g_cams, grid=grid,
                              compiled=compiled)
    assert len(result.rows) == len(grid) == 1 * 2 + 2 * 2 + 3 * 2  # k2 <= 0.7 k1: 1, 2 and 3 values of k2
    brute = []
    for k1, k2, lam in grid:
        res = evaluate_rank(re_ranking(torch.from_numpy(q), torch.from_numpy(g), k1, k2, lam), q_pids, g_pids,
                            q_cams, g_cams)
        brute.append(((k1, k2, lam), res.mAP + res.cmc[0]))
    for row, (point, score) in zip(result.rows, brute):
        assert (row["k1"], row["k2"], row["lambda"]) == point
        assert row["mAP"] + row["rank1"] == pytest.approx(score, abs=1e-6)
    best_point = max(brute, key=lambda b: b[1])[0]
    assert (result.best["k1"], result.best["k2"], result.best["lambda"]) == best_point
    assert "k1" in result.table(top=3) and result.baseline["mAP"] > 0


def test_the_default_grid_is_the_tiny_baselines_search_in_its_order():
    from reid.reranking import reranking_grid

    import tiny_baseline_reference as tiny

    assert reranking_grid() == tiny.reranking_search_points()
    assert len(reranking_grid()) == 452


def test_evaluate_reranked_normalises_then_reranks_the_query_and_gallery_rows():
    from reid.reranking import evaluate_reranked

    torch.manual_seed(0)
    order = np.argsort(np.tile(np.arange(4), 10) > 0, kind="stable")  # camera 0 (the 10 queries) first
    pids, camids = np.repeat(np.arange(10), 4)[order], np.tile(np.arange(4), 10)[order]
    feats = (torch.randn(10, 8).repeat_interleave(4, 0) + 0.8 * torch.randn(40, 8))[order]
    labels = (pids[:10], pids[10:], camids[:10], camids[10:])
    for feat_norm in (True, False):
        x = torch.nn.functional.normalize(feats, dim=1) if feat_norm else feats
        expected = evaluate_rank(re_ranking(x[:10], x[10:], 5, 2, 0.3), *labels, max_rank=10)
        got = evaluate_reranked(feats, pids, camids, 10, 5, 2, 0.3, feat_norm=feat_norm, max_rank=10)
        assert got.mAP == pytest.approx(expected.mAP) and np.allclose(got.cmc, expected.cmc)
    assert evaluate_reranked(feats, pids, camids, 10, 5, 2, 0.3).mAP != pytest.approx(
        evaluate_reranked(feats, pids, camids, 10, 5, 2, 0.3, feat_norm=False).mAP)
