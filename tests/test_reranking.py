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


@pytest.mark.parametrize("dense", [None, True, False], ids=["chosen", "dense", "sparse"])
@pytest.mark.parametrize("seed, k1, k2, lam", [(0, 20, 6, 0.3), (1, 5, 1, 0.0), (2, 7, 3, 0.9), (3, 2, 2, 0.5),
                                               (4, 30, 10, 0.1)])
def test_agrees_with_the_classic_algorithm(seed, k1, k2, lam, dense):
    """Float32 against the float64 reference: largest difference measured 4.2e-7 over these cases, both ways."""
    q, g, q_pids, g_pids = clustered(seed, 40, 160, 25)
    ref = classic_re_ranking(q, g, k1, k2, lam)
    ours = re_ranking(torch.from_numpy(q), torch.from_numpy(g), k1, k2, lam, dense=dense).numpy()
    assert ours.shape == ref.shape == (40, 160)
    assert np.abs(ours - ref).max() < 1e-6
    q_cams, g_cams = np.zeros(40), np.ones(160)
    ref_map = evaluate_rank(ref, q_pids, g_pids, q_cams, g_cams).mAP
    our_map = evaluate_rank(ours, q_pids, g_pids, q_cams, g_cams).mAP
    assert abs(ref_map - our_map) < 1e-6


def test_the_dense_and_sparse_sums_agree_on_long_and_short_rows():
    """The search's extremes: long expanded rows in a small gallery (dense wins), one neighbour (sparse wins)."""
    from reid.reranking import expanded_sets, gaussian_weights, jaccard_numerator, nearest_neighbours

    q, g, _, _ = clustered(5, 50, 200, 10)
    feats = torch.from_numpy(np.concatenate([q, g]))
    knn, knn_d, row_max, _ = nearest_neighbours(feats, 61, 50)
    for k1, k2 in ((60, 30), (20, 6), (2, 1)):
        idx, ok = expanded_sets(knn, k1)
        vals = gaussian_weights(feats, idx, ok, knn, knn_d, row_max)
        a, b = (jaccard_numerator(idx, vals, ok, knn, k2, 50, dense=d) for d in (True, False))
        assert a.shape == (50, 200) and (a - b).abs().max() < 1e-6


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


def test_search_finds_what_a_brute_force_loop_finds():
    from reid.reranking import reranking_grid, search_reranking

    q, g, q_pids, g_pids = clustered(7, 60, 240, 30)
    q_cams, g_cams = np.zeros(60), np.ones(240)
    grid = reranking_grid(k1_values=(3, 6, 10), k2_values=(2, 3, 5), lambdas=(0.1, 0.3))
    result = search_reranking(torch.from_numpy(q), torch.from_numpy(g), q_pids, g_pids, q_cams, g_cams, grid=grid)
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
