"""k-reciprocal re-ranking (Zhong et al., CVPR 2017), vectorised in torch.

Re-ranking replaces the distance between a query and a gallery image by a mix of the
original distance and the Jaccard distance between their *k-reciprocal neighbourhoods*:
two images are close when they share many mutual nearest neighbours. The steps, with the
conventions of the classic public implementation (which person-reid-tiny-baseline uses):

1. squared Euclidean distances between all N = queries + gallery images, each row divided
   by its maximum ("column-max scaling" of the classic code, whose matrix is symmetric);
2. R(i, k1): the k1-reciprocal neighbours of i, the j among i's k1 + 1 nearest whose own
   k1 + 1 nearest contain i;
3. expansion: for each j in R(i, k1), if R(j, k1/2) shares more than 2/3 of its members
   with R(i, k1), add them;
4. V[i, j] = exp(-d(i, j)) over the expanded set, normalised to sum 1 (Gaussian weights);
5. local query expansion: V[i] becomes the mean of V over i's k2 nearest neighbours;
6. Jaccard distance 1 - sum_k min(V[q,k], V[g,k]) / sum_k max(V[q,k], V[g,k]);
7. final = (1 - lambda) * Jaccard + lambda * original distance.

The classic code loops over every image in Python and holds several N x N matrices (8 GB
at Market-1501's 19,281 images). Here everything is vectorised: only the k1 + 1 nearest
neighbours of each image are kept (one pass of chunked matrix products), the sets are
tensors of indices, and the Jaccard sums are computed one of two exact ways, whichever
is less work: a join of the queries' sparse rows with V's sparse columns, or V's gallery
columns held dense, block by block. Memory stays bounded by chunks.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from .evaluation import evaluate_rank

def _check(q_feats: torch.Tensor, g_feats: torch.Tensor, k1: int, k2: int, lambda_value: float) -> None:
    if q_feats.ndim != 2 or g_feats.ndim != 2 or q_feats.shape[1] != g_feats.shape[1]:
        raise ValueError(f"features must be (N, d) with the same d; got {tuple(q_feats.shape)} and {tuple(g_feats.shape)}")
    if len(q_feats) == 0 or len(g_feats) == 0:
        raise ValueError(f"re-ranking needs a non-empty query and gallery; got {len(q_feats)} and {len(g_feats)} images")
    n = len(q_feats) + len(g_feats)
    if not 1 <= k1 < n:
        raise ValueError(f"k1={k1} must be in [1, {n - 1}]: it counts neighbours among the {n} query + gallery images")
    if not 1 <= k2 <= n:
        raise ValueError(f"k2={k2} must be in [1, {n}] (the number of query + gallery images)")
    if not 0.0 <= lambda_value <= 1.0:
        raise ValueError(f"lambda_value={lambda_value} must be in [0, 1]")
    if torch.isnan(q_feats).any() or torch.isnan(g_feats).any():
        raise ValueError("the features contain NaN: re-ranking cannot order NaN distances; check the model")


@torch.no_grad()
def nearest_neighbours(feats: torch.Tensor, k: int, num_query: int, block: int = 2048):
    """The k nearest of every image (N, k) and their squared distances, the row maxima (N,), and the
    scaled query->gallery distances.

    One pass over the upper triangle of the N x N squared-distance matrix in blocks: each
    block serves its rows and, transposed, its columns (the matrix is symmetric), which
    halves the matrix products, the dominant cost. A running top-k per row merges the
    blocks. The query->gallery part (num_query, N - num_query), divided by the row maxima,
    is the "original distance" of the final mix; nothing else of the N x N matrix is kept.
    """
    n = len(feats)
    sq = feats.pow(2).sum(1)  # (N,)
    best_d = torch.full((n, k), float("inf"), device=feats.device)
    best_i = torch.zeros((n, k), dtype=torch.long, device=feats.device)
    row_max = torch.zeros(n, device=feats.device)
    q_to_g = torch.empty(num_query, n - num_query, device=feats.device)

    def merge(rows: slice, d: torch.Tensor, col0: int) -> None:
        cols = torch.arange(col0, col0 + d.shape[1], device=feats.device).expand(d.shape[0], -1)
        cand_d = torch.cat([best_d[rows], d], dim=1)
        cand_i = torch.cat([best_i[rows], cols], dim=1)
        top = torch.topk(cand_d, k, dim=1, largest=False, sorted=True)
        best_d[rows], best_i[rows] = top.values, cand_i.gather(1, top.indices)
        row_max[rows] = torch.maximum(row_max[rows], d.max(1).values)

    def keep_query_block(rows: slice, cols: slice, d: torch.Tensor) -> None:
        r0, r1 = rows.start, min(rows.stop, num_query)
        c0, c1 = max(cols.start, num_query), cols.stop
        if r0 < r1 and c0 < c1:
            q_to_g[r0:r1, c0 - num_query:c1 - num_query] = d[: r1 - r0, c0 - cols.start:]

    for a0 in range(0, n, block):
        a = slice(a0, min(a0 + block, n))
        for b0 in range(a0, n, block):
            b = slice(b0, min(b0 + block, n))
            d = (sq[a, None] + sq[None, b] - 2.0 * (feats[a] @ feats[b].T)).clamp_(min=0.0)  # (A, B), squared
            merge(a, d, b0)
            keep_query_block(a, b, d)
            if b0 != a0:
                merge(b, d.T, a0)
                keep_query_block(b, a, d.T)
    q_to_g /= row_max[:num_query, None].clamp(min=1e-12)
    return best_i, best_d, row_max, q_to_g


def reciprocal_mask(knn: torch.Tensor) -> torch.Tensor:
    """(N, k) bool: knn[i, t] is k-reciprocal to i (i is among the k nearest of knn[i, t])."""
    rows = torch.arange(len(knn), device=knn.device)[:, None, None]
    return (knn[knn] == rows).any(-1)  # knn[knn]: (N, k, k), the neighbours of each neighbour


def expanded_sets(knn: torch.Tensor, k1: int, chunk_size: int = 2048) -> tuple[torch.Tensor, torch.Tensor]:
    """The k-reciprocal sets with the 2/3 expansion rule, as padded indices (N, M) and a validity mask.

    Each row lists R(i, k1) and, for each of its members j whose R(j, round(k1/2)) shares more
    than 2/3 of its members with R(i, k1), R(j, round(k1/2)); duplicates are masked out.
    """
    n = len(knn)
    k_half = int(round(k1 / 2)) + 1  # Python's round, like numpy.around: halves to even
    near, half = knn[:, : k1 + 1], knn[:, :k_half]
    recip = reciprocal_mask(near)  # (N, k1+1)
    recip_half = reciprocal_mask(half)  # (N, kh)
    idx_out, ok_out = [], []
    for start in range(0, n, chunk_size):
        r = near[start:start + chunk_size]  # (c, K) candidates j of each i
        m = recip[start:start + chunk_size]  # (c, K) j in R(i, k1)
        cand = half[r]  # (c, K, kh): R(j, k1/2) before the reciprocity test
        cand_ok = recip_half[r]  # (c, K, kh)
        members = torch.where(m, r, -1)  # (c, K): R(i, k1), -1 where not a member
        inside = (cand[..., None] == members[:, None, None, :]).any(-1) & cand_ok  # (c, K, kh)
        size = cand_ok.sum(-1)  # |R(j, k1/2)|
        accept = m & (inside.sum(-1) > 2.0 / 3.0 * size)  # (c, K)
        extra_ok = cand_ok & accept[..., None]  # (c, K, kh)
        idx = torch.cat([r, cand.flatten(1)], dim=1)  # (c, K + K*kh)
        ok = torch.cat([m, extra_ok.flatten(1)], dim=1)
        idx = torch.where(ok, idx, n)  # n: a sentinel past every image
        idx, _ = idx.sort(dim=1)
        ok = idx < n
        ok[:, 1:] &= idx[:, 1:] != idx[:, :-1]  # keep one copy of each
        idx_out.append(idx)
        ok_out.append(ok)
    return torch.cat(idx_out), torch.cat(ok_out)


def gaussian_weights(feats: torch.Tensor, idx: torch.Tensor, ok: torch.Tensor, knn: torch.Tensor,
                     knn_d: torch.Tensor, row_max: torch.Tensor, chunk_pairs: int = 16384) -> torch.Tensor:
    """V's values on the sets: exp(-d(i, j) / max_j d(i, j)), normalised per row; (N, M), 0 where not ok.

    Only the valid (i, j) pairs are computed (about 15 per row for k1 = 20). Most j are among
    the k nearest of i, whose distances the neighbour pass kept; the others are computed
    from the features, in chunks.
    """
    rows, slots = ok.nonzero(as_tuple=True)  # the valid pairs
    j = idx[rows, slots]
    hit = knn[rows] == j[:, None]  # (P, k)
    found = hit.any(1)
    d = (knn_d[rows] * hit).sum(1)  # the kept distance where found
    miss = (~found).nonzero(as_tuple=True)[0]
    sq = feats.pow(2).sum(1)
    for start in range(0, len(miss), chunk_pairs):
        p = miss[start:start + chunk_pairs]
        a, b = rows[p], j[p]
        d[p] = (sq[a] + sq[b] - 2.0 * (feats[a] * feats[b]).sum(1)).clamp(min=0.0)
    vals = torch.zeros(idx.shape, device=feats.device)
    vals[rows, slots] = torch.exp(-d / row_max[rows].clamp(min=1e-12))
    return vals / vals.sum(1, keepdim=True)


def query_expansion(idx: torch.Tensor, vals: torch.Tensor, ok: torch.Tensor, knn: torch.Tensor, k2: int):
    """V_qe[i] = mean of V over i's k2 nearest neighbours, as a coalesced sparse (N, N) tensor."""
    n = len(idx)
    rows = torch.arange(n, device=idx.device)
    if k2 == 1:
        neighbours = rows[:, None]
    else:
        neighbours = knn[:, :k2]  # (N, k2)
    flat_rows = rows[:, None, None].expand(n, neighbours.shape[1], idx.shape[1])  # (N, k2, M)
    cols, v, keep = idx[neighbours], vals[neighbours] / neighbours.shape[1], ok[neighbours]
    indices = torch.stack([flat_rows[keep], cols[keep]])
    return torch.sparse_coo_tensor(indices, v[keep], (n, n), check_invariants=False).coalesce()


def sparse_numerator(v: torch.Tensor, num_query: int, max_pairs: int = 20_000_000) -> torch.Tensor:
    """(num_query, N): sum_k min(V[q, k], V[j, k]) for every query q and every image j, V sparse (coalesced).

    Joins each nonzero V[q, k] of a query row with every nonzero of column k (V sorted by
    column), in batches of at most `max_pairs` pairs. Cheap when V's columns are short.
    """
    n = v.shape[0]
    rows, cols = v.indices()
    vals = v.values()
    order = torch.argsort(cols * n + rows)  # column-major
    c_rows, c_cols, c_vals = rows[order], cols[order], vals[order]
    col_count = torch.bincount(c_cols, minlength=n)
    col_start = torch.cumsum(col_count, 0) - col_count
    q_sel = rows < num_query
    q_rows, q_cols, q_vals = rows[q_sel], cols[q_sel], vals[q_sel]
    pairs = col_count[q_cols]  # partners of each query entry
    out = torch.zeros(num_query * n, device=v.device)
    bounds = torch.cumsum(pairs, 0)
    start = 0
    while start < len(q_rows):
        # as many query entries as fit in max_pairs (at least one)
        base = bounds[start - 1] if start > 0 else 0
        stop = int(torch.searchsorted(bounds, base + max_pairs, right=True))
        stop = max(stop, start + 1)
        cnt = pairs[start:stop]
        e = torch.repeat_interleave(torch.arange(start, stop, device=v.device), cnt)  # query entry of each pair
        first = torch.cumsum(cnt, 0) - cnt
        within = torch.arange(int(cnt.sum()), device=v.device) - torch.repeat_interleave(first, cnt)
        partner = col_start[q_cols[e]] + within
        mins = torch.minimum(q_vals[e], c_vals[partner])
        out.index_add_(0, q_rows[e] * n + c_rows[partner], mins)
        start = stop
    return out.view(num_query, n)


def expanded_rows(rows: torch.Tensor, idx: torch.Tensor, vals: torch.Tensor, knn: torch.Tensor, k2: int) -> torch.Tensor:
    """Rows `rows` of the query-expanded V as a dense (len(rows), N) tensor: the mean of V over each row's k2
    nearest neighbours (`query_expansion`'s rows, without building the sparse matrix)."""
    n = len(idx)
    neighbours = knn[rows, :k2] if k2 > 1 else rows[:, None]  # (r, k2)
    cols = idx[neighbours].flatten(1)  # (r, k2 * M); n marks an empty slot, whose value is 0
    out = torch.zeros(len(rows), n + 1, device=idx.device)
    out.scatter_add_(1, cols, vals[neighbours].flatten(1) / neighbours.shape[1])
    return out[:, :n]


def dense_numerator(idx: torch.Tensor, vals: torch.Tensor, knn: torch.Tensor, k2: int, num_query: int,
                    max_bytes: int = 256 << 20) -> torch.Tensor:
    """(num_query, num_gallery): sum_k min(V[q, k], V[g, k]), with V's gallery columns held dense.

    The gallery's expanded rows are built densely, block by block (each block at most
    `max_bytes`), and transposed, so that column k of V is one contiguous row; each query
    then takes the minimum of its nonzero values with those columns and sums. Cheap when
    the rows are long compared with the gallery (large k1 and k2 on a validation split).
    """
    n = len(idx)
    ng = n - num_query
    out = torch.empty(num_query, ng, device=idx.device)
    step = max(1, max_bytes // (4 * (n + 1)))
    queries = expanded_rows(torch.arange(num_query, device=idx.device), idx, vals, knn, k2)  # (nq, N)
    for g0 in range(0, ng, step):
        g1 = min(g0 + step, ng)
        columns = expanded_rows(torch.arange(num_query + g0, num_query + g1, device=idx.device), idx, vals, knn,
                                k2).T.contiguous()  # (N, G): row k is column k of V over this gallery block
        for q in range(num_query):
            ks = queries[q].nonzero().squeeze(1)
            out[q, g0:g1] = torch.minimum(queries[q, ks, None], columns[ks]).sum(0)
    return out


# A dense element costs 1/29 to 1/110 of a sparse join's pair (measured on the 2-core CPU at 300 x 1,200: a pair
# 37-49 ns, an element 0.4-1.3 ns); 25 leans towards the sparse join, which needs less memory.
DENSE_RATIO = 25


def jaccard_numerator(idx: torch.Tensor, vals: torch.Tensor, ok: torch.Tensor, knn: torch.Tensor, k2: int,
                      num_query: int, dense: bool | None = None) -> torch.Tensor:
    """(num_query, num_gallery): sum_k min(V_qe[q, k], V_qe[g, k]), the numerator of the Jaccard similarity.

    Two exact ways, chosen by the expected work (`dense=None`): the sparse join of
    `sparse_numerator` costs about (row length)^2 pairs per query, the dense columns of
    `dense_numerator` (row length) x (gallery size) elements. Short rows in a large gallery
    (Market-1501 with the paper's setting) join sparsely; long rows (large k1, k2 on a small
    split, as in the search) go dense.
    """
    ng = len(idx) - num_query
    if dense is None:
        row_length = min(float(ok.sum(1).float().mean()) * k2, len(idx))  # at most: the neighbours' sets may overlap
        dense = row_length * DENSE_RATIO > ng
    if dense:
        return dense_numerator(idx, vals, knn, k2, num_query)
    return sparse_numerator(query_expansion(idx, vals, ok, knn, k2), num_query)[:, num_query:]


@torch.no_grad()
def re_ranking(q_feats: torch.Tensor, g_feats: torch.Tensor, k1: int = 20, k2: int = 6, lambda_value: float = 0.3,
               device: torch.device | str | None = None, dense: bool | None = None) -> torch.Tensor:
    """(num_query, num_gallery) re-ranked distances (Zhong et al. 2017), float32 on `device` (the features' by default).

    `dense` forces one of the two exact ways of the Jaccard sums (`jaccard_numerator`); by default the
    one with less work."""
    _check(q_feats, g_feats, k1, k2, lambda_value)
    device = torch.device(device) if device is not None else q_feats.device
    feats = torch.cat([q_feats, g_feats]).float().to(device)
    nq = len(q_feats)
    k = max(k1 + 1, k2)
    knn, knn_d, row_max, original = nearest_neighbours(feats, k, nq)
    idx, ok = expanded_sets(knn, k1)
    vals = gaussian_weights(feats, idx, ok, knn, knn_d, row_max)
    inter = jaccard_numerator(idx, vals, ok, knn, k2, nq, dense)  # (nq, ng): sparse or dense, the less work
    jaccard = 1.0 - inter / (2.0 - inter)
    return jaccard * (1 - lambda_value) + original * lambda_value


def evaluate_reranked(feats: torch.Tensor, pids, camids, num_query: int, k1: int = 20, k2: int = 6,
                      lambda_value: float = 0.3, feat_norm: bool = True, max_rank: int = 50):
    """`evaluation.evaluate_features` with k-reciprocal re-ranking: the first `num_query` rows are
    the queries; the features are L2-normalised first when `feat_norm` (the cosine setting)."""
    if feat_norm:
        feats = torch.nn.functional.normalize(feats, dim=1)
    dist = re_ranking(feats[:num_query], feats[num_query:], k1, k2, lambda_value)
    return evaluate_rank(dist, pids[:num_query], pids[num_query:], camids[:num_query], camids[num_query:], max_rank)


# --------------------------------------------------------------------------------------
# Parameter search
# --------------------------------------------------------------------------------------
# (k1, k2, lambda) settings with a name: Zhong et al.'s, which the paper's code uses, and the one
# person-reid-tiny-baseline's code runs (utils/metrics.py, with the paper's commented out above it).
PAPER_SETTING = (20, 6, 0.3)
TINY_BASELINE_SETTING = (30, 10, 0.2)
# person-reid-tiny-baseline's search grid (tools/search_reranking_params.py)
GRID_K1 = (*range(2, 10), *range(10, 20, 2), 20, 30, 40, 60)
GRID_K2 = (*range(2, 10), *range(10, 20, 2), 20, 30)
GRID_LAMBDAS = (0.1, 0.2, 0.3, 0.4)


def reranking_grid(k1_values=GRID_K1, k2_values=GRID_K2, lambdas=GRID_LAMBDAS) -> list[tuple[int, int, float]]:
    """The (k1, k2, lambda) points of person-reid-tiny-baseline's search, in its order: every k2 <= 0.7 k1."""
    return [(k1, k2, lam) for k1 in k1_values for k2 in k2_values if k2 <= 0.7 * k1 for lam in lambdas]


@dataclass
class SearchResult:
    """Every grid point's scores, and the best by the criterion of person-reid-tiny-baseline's search (mAP + Rank-1)."""

    rows: list[dict]  # one per grid point: k1, k2, lambda, mAP, rank1, mINP
    best: dict
    baseline: dict  # the scores without re-ranking

    def table(self, top: int = 5) -> str:
        lines = [f"{'k1':>4} {'k2':>4} {'lambda':>6} {'mAP':>6} {'R1':>6}"]
        for r in sorted(self.rows, key=lambda r: -(r["mAP"] + r["rank1"]))[:top]:
            lines.append(f"{r['k1']:>4} {r['k2']:>4} {r['lambda']:>6.1f} {100 * r['mAP']:6.1f} {100 * r['rank1']:6.1f}")
        return "\n".join(lines)


@torch.no_grad()
def search_reranking(q_feats: torch.Tensor, g_feats: torch.Tensor, q_pids, g_pids, q_camids, g_camids,
                     grid: list[tuple[int, int, float]] | None = None, progress: bool = False) -> SearchResult:
    """Score every (k1, k2, lambda) of `grid` (default: person-reid-tiny-baseline's) and return all scores and the best.

    Run it on a validation split (`reid.data.carve_validation`), never on the test set. The
    expensive parts are shared: one neighbour pass for the largest k1, the expanded sets and
    weights once per k1, the query expansion and Jaccard distances once per (k1, k2); each
    lambda is then a weighted sum and an evaluation.
    """
    grid = reranking_grid() if grid is None else list(grid)
    k1_max, k2_max = max(p[0] for p in grid), max(p[1] for p in grid)
    _check(q_feats, g_feats, k1_max, k2_max, 0.0)
    feats = torch.cat([q_feats, g_feats]).float()
    nq = len(q_feats)
    knn, knn_d, row_max, original = nearest_neighbours(feats, max(k1_max + 1, k2_max), nq)
    labels = (q_pids, g_pids, q_camids, g_camids)
    plain = evaluate_rank(original, *labels)
    rows = []
    by_k1: dict[int, dict[int, list[float]]] = {}
    for k1, k2, lam in grid:
        by_k1.setdefault(k1, {}).setdefault(k2, []).append(lam)
    bar = tqdm(total=len(grid), desc="re-ranking grid", disable=not progress, leave=False)
    for k1, k2s in by_k1.items():
        idx, ok = expanded_sets(knn, k1)
        vals = gaussian_weights(feats, idx, ok, knn, knn_d, row_max)
        for k2, lams in k2s.items():
            inter = jaccard_numerator(idx, vals, ok, knn, k2, nq)
            jaccard = 1.0 - inter / (2.0 - inter)
            for lam in lams:
                res = evaluate_rank(jaccard * (1 - lam) + original * lam, *labels)
                rows.append({"k1": k1, "k2": k2, "lambda": lam, "mAP": res.mAP, "rank1": float(res.cmc[0]),
                             "mINP": res.mINP})
                bar.update()
    bar.close()
    best = max(rows, key=lambda r: r["mAP"] + r["rank1"])
    return SearchResult(rows, best, {"mAP": plain.mAP, "rank1": float(plain.cmc[0]), "mINP": plain.mINP})
