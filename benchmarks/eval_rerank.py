"""Evaluation and re-ranking speed: reid's vectorised code against straightforward seed-style code.

Everything is measured in one run, on the threads torch is given (2 by default, like CI):

1. metrics (CMC, mAP, mINP) at Market-1501 scale, 3,368 queries x 15,913 gallery images
   with identity structure: `reid.evaluation.evaluate_rank` against a per-query NumPy loop
   written the way the seed writes it (sort every row, then a Python comprehension per
   query); the numbers must be identical;
2. re-ranking at 500 x 2,000 with 64-d features: `reid.reranking.re_ranking` against the
   classic NumPy implementation (dense N x N matrices, a Python loop per image, float16 V);
3. re-ranking at full Market size (19,281 images, 2048-d): ours, time and peak memory
   (`--classic-full` also runs the classic one there: about two minutes and 8 GB);
4. the seed's whole search grid (452 points) on a validation-sized split (300 x 1,200,
   512-d), against the cost of one re-ranking at the same size.

    python benchmarks/eval_rerank.py [--threads 2] [--classic-full]
"""

from __future__ import annotations

import argparse
import platform
import resource
import time

import numpy as np
import torch

from reid.evaluation import evaluate_rank
from reid.reranking import re_ranking, reranking_grid, search_reranking


def seed_style_metrics(distmat, q_pids, g_pids, q_camids, g_camids, max_rank=50):
    """CMC and mAP the way the seed computes them: argsort all rows, then a loop per query."""
    indices = np.argsort(distmat, axis=1)
    matches = (g_pids[indices] == q_pids[:, None]).astype(np.int32)
    all_cmc, all_ap = [], []
    for q in range(distmat.shape[0]):
        order = indices[q]
        keep = ~((g_pids[order] == q_pids[q]) & (g_camids[order] == q_camids[q]))
        raw = matches[q][keep]
        if not raw.any():
            continue
        cmc = raw.cumsum()
        cmc[cmc > 1] = 1
        all_cmc.append(cmc[:max_rank])
        hits = raw.cumsum()
        precision = np.asarray([x / (i + 1.0) for i, x in enumerate(hits)]) * raw
        all_ap.append(precision.sum() / raw.sum())
    return np.asarray(all_cmc, dtype=np.float32).mean(0), float(np.mean(all_ap))


def seed_style_re_ranking(q, g, k1=20, k2=6, lambda_value=0.3):
    """The classic public re-ranking, in its style: dense matrices, float16 V, Python loops."""
    feats = np.concatenate([q, g]).astype(np.float32)
    nq, n = len(q), len(q) + len(g)
    sq = (feats**2).sum(1)
    original = np.maximum(sq[:, None] + sq[None, :] - 2 * feats @ feats.T, 0)
    original = np.transpose(original / np.max(original, axis=0))
    V = np.zeros_like(original).astype(np.float16)
    rank = np.argsort(original).astype(np.int32)
    for i in range(n):
        forward = rank[i, : k1 + 1]
        backward = rank[forward, : k1 + 1]
        recip = forward[np.where(backward == i)[0]]
        expansion = recip
        for c in recip:
            c_forward = rank[c, : int(np.around(k1 / 2)) + 1]
            c_backward = rank[c_forward, : int(np.around(k1 / 2)) + 1]
            c_recip = c_forward[np.where(c_backward == c)[0]]
            if len(np.intersect1d(c_recip, recip)) > 2 / 3 * len(c_recip):
                expansion = np.append(expansion, c_recip)
        expansion = np.unique(expansion)
        w = np.exp(-original[i, expansion])
        V[i, expansion] = w / np.sum(w)
    original = original[:nq]
    if k2 != 1:
        V_qe = np.zeros_like(V, dtype=np.float16)
        for i in range(n):
            V_qe[i] = np.mean(V[rank[i, :k2]], axis=0)
        V = V_qe
    inv_index = [np.where(V[:, j] != 0)[0] for j in range(n)]
    jaccard = np.zeros_like(original, dtype=np.float16)
    for i in range(nq):
        temp_min = np.zeros((1, n), dtype=np.float16)
        nonzero = np.where(V[i] != 0)[0]
        for j in nonzero:
            rows = inv_index[j]
            temp_min[0, rows] = temp_min[0, rows] + np.minimum(V[i, j], V[rows, j])
        jaccard[i] = 1 - temp_min / (2 - temp_min)
    return (jaccard * (1 - lambda_value) + original * lambda_value)[:, nq:]


def clustered_features(n_ids, nq, ng, dim, noise, seed=0):
    g = torch.Generator().manual_seed(seed)
    centers = torch.nn.functional.normalize(torch.randn(n_ids, dim, generator=g), dim=1)
    q_pids, g_pids = torch.randint(0, n_ids, (nq,), generator=g), torch.randint(0, n_ids, (ng,), generator=g)
    q = centers[q_pids] + noise * torch.randn(nq, dim, generator=g) / dim**0.5
    gal = centers[g_pids] + noise * torch.randn(ng, dim, generator=g) / dim**0.5
    return q, gal, q_pids.numpy(), g_pids.numpy()


def timed(fn, *args, **kwargs):
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--classic-full", action="store_true", help="also run the classic re-ranking at full size")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"machine: {platform.processor() or platform.machine()}, {args.threads} threads; torch {torch.__version__}")

    # 1. metrics at Market scale
    rng = np.random.default_rng(0)
    nq, ng, n_ids = 3368, 15913, 751
    q_pids, g_pids = rng.integers(0, n_ids, nq), rng.integers(0, n_ids, ng)
    q_cams, g_cams = rng.integers(0, 6, nq), rng.integers(0, 6, ng)
    dist = (rng.random((nq, ng), dtype=np.float32) + 0.6 * (q_pids[:, None] != g_pids[None, :])).astype(np.float32)
    (cmc_ref, map_ref), t_ref = timed(seed_style_metrics, dist, q_pids, g_pids, q_cams, g_cams)
    ours, t_ours = timed(evaluate_rank, dist, q_pids, g_pids, q_cams, g_cams)
    same = np.abs(ours.cmc - cmc_ref).max() < 1e-6 and abs(ours.mAP - map_ref) < 1e-6
    print(f"metrics {nq} x {ng}: seed-style loop {t_ref:.1f} s, reid {t_ours:.2f} s -> {t_ref / t_ours:.0f}x; "
          f"identical: {same} (mAP {100 * ours.mAP:.2f} vs {100 * map_ref:.2f})")

    # 2. re-ranking, small, low-dimensional
    q, g, _, _ = clustered_features(100, 500, 2000, 64, 0.8)
    ref, t_ref = timed(seed_style_re_ranking, q.numpy(), g.numpy())
    ours, t_ours = timed(re_ranking, q, g)
    diff = float(np.abs(ours.numpy() - ref.astype(np.float32)).max())
    print(f"re-ranking 500 x 2,000, 64-d: seed-style {t_ref:.1f} s, reid {t_ours:.2f} s -> {t_ref / t_ours:.0f}x; "
          f"largest difference {diff:.1e}")

    # 4. the search grid (first: it needs little memory)
    q, g, q_pids, g_pids = clustered_features(100, 300, 1200, 512, 3.0)
    q_cams, g_cams = np.zeros(300), np.ones(1200)
    _, t_one = timed(re_ranking, q, g)
    result, t_grid = timed(search_reranking, q, g, q_pids, g_pids, q_cams, g_cams)
    print(f"search, {len(reranking_grid())} grid points at 300 x 1,200: {t_grid:.1f} s = "
          f"{t_grid / t_one:.0f} single re-rankings ({t_one:.2f} s each, evaluation included in the search); "
          f"best k1={result.best['k1']} k2={result.best['k2']} lambda={result.best['lambda']}")

    # 3. re-ranking, full Market size
    q, g, _, _ = clustered_features(1501, 3368, 15913, 2048, 1.0)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
    _, t_ours = timed(re_ranking, q, g)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
    print(f"re-ranking 3,368 x 15,913, 2048-d: reid {t_ours:.1f} s; peak resident memory of the process "
          f"{peak:.1f} GB (was {before:.1f} GB before)")
    if args.classic_full:
        _, t_ref = timed(seed_style_re_ranking, q.numpy(), g.numpy())
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
        print(f"  seed-style at full size: {t_ref:.1f} s (peak resident memory now {peak:.1f} GB) -> "
              f"{t_ref / t_ours:.1f}x")


if __name__ == "__main__":
    main()
