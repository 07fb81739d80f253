"""Evaluation under the Market-1501 protocol: CMC, mAP and mINP from a distance matrix.

For each query the gallery is sorted by distance. Gallery images of the query's own
identity taken by the query's own camera are removed first: finding the same person in
the same camera a few frames later is tracking, not re-identification. A query with no
true match left is skipped. Then

* CMC@k is 1 if a true match is among the first k results (averaged over queries);
* AP is the mean of the precision at the rank of each true match (average precision);
* INP is (number of true matches) / (rank of the last, hardest true match) (Ye et al.,
  TPAMI 2021): how much of the list a user must inspect to find them all.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class RankResult:
    """CMC curve (cmc[k-1] = Rank-k), mAP and mINP, all as fractions in [0, 1]."""

    cmc: np.ndarray
    mAP: float
    mINP: float
    num_valid: int  # queries that kept at least one true match and were scored

    def __getitem__(self, key: str):
        return getattr(self, key)

    def summary(self, ranks=(1, 5, 10)) -> str:
        parts = [f"mAP {100 * self.mAP:.1f}", *(f"R{r} {100 * self.cmc[r - 1]:.1f}" for r in ranks if r <= len(self.cmc))]
        return " | ".join(parts + [f"mINP {100 * self.mINP:.1f}"])


def _check_inputs(distmat, q_pids, g_pids, q_camids, g_camids):
    distmat = np.asarray(distmat)
    q_pids, g_pids = np.asarray(q_pids).ravel(), np.asarray(g_pids).ravel()
    q_camids, g_camids = np.asarray(q_camids).ravel(), np.asarray(g_camids).ravel()
    if distmat.ndim != 2:
        raise ValueError(f"distmat must be 2-D (num_query, num_gallery), got shape {distmat.shape}")
    nq, ng = distmat.shape
    if nq == 0 or ng == 0:
        raise ValueError(f"distmat has shape {distmat.shape}: the query and the gallery must both be non-empty")
    for name, arr, n in (("q_pids", q_pids, nq), ("q_camids", q_camids, nq), ("g_pids", g_pids, ng),
                         ("g_camids", g_camids, ng)):
        if len(arr) != n:
            raise ValueError(f"{name} has {len(arr)} entries but distmat {distmat.shape} needs {n}")
    if np.isnan(distmat).any():
        raise ValueError("distmat contains NaN: check the features (a NaN feature poisons every distance)")
    return distmat, q_pids, g_pids, q_camids, g_camids


def evaluate_rank(distmat, q_pids, g_pids, q_camids, g_camids, max_rank: int = 50) -> RankResult:
    """CMC (length min(max_rank, num_gallery)), mAP and mINP under the Market-1501 protocol.

    A straightforward loop over queries. Ties in distance are broken by gallery order
    (stable sort). AP follows the convention of every Python re-id code base (mean of the
    precision at each true match). When the gallery kept for a query is shorter than the
    CMC curve, the curve is continued with its last value: a query that found its match
    stays found at every larger rank.
    """
    distmat, q_pids, g_pids, q_camids, g_camids = _check_inputs(distmat, q_pids, g_pids, q_camids, g_camids)
    length = min(max_rank, distmat.shape[1])
    all_cmc, all_ap, all_inp = [], [], []
    for i in range(distmat.shape[0]):
        order = np.argsort(distmat[i], kind="stable")
        keep = ~((g_pids[order] == q_pids[i]) & (g_camids[order] == q_camids[i]))
        matches = (g_pids[order][keep] == q_pids[i]).astype(np.float64)
        if not matches.any():
            continue
        hits = matches.cumsum()
        cmc = np.minimum(hits, 1.0)[:length]
        if len(cmc) < length:
            cmc = np.concatenate([cmc, np.full(length - len(cmc), cmc[-1])])
        all_cmc.append(cmc)
        positions = np.flatnonzero(matches) + 1.0  # 1-based ranks of the true matches
        all_ap.append(np.mean(hits[matches > 0] / positions))
        all_inp.append(matches.sum() / positions[-1])
    if not all_cmc:
        raise ValueError("no query has a true match in the gallery from another camera: nothing to evaluate. "
                         "Are the query and gallery from the same dataset?")
    return RankResult(np.mean(all_cmc, axis=0), float(np.mean(all_ap)), float(np.mean(all_inp)), len(all_cmc))
