"""k-reciprocal re-ranking (Zhong et al., CVPR 2017), vectorised in torch, in bounded memory.

Re-ranking replaces the distance between a query and a gallery image by a mix of the
original distance and the Jaccard distance between their *k-reciprocal neighbourhoods*:
two images are close when they share many mutual nearest neighbours. With N = queries +
gallery images and R(i, k) the k-reciprocal neighbours of image i (the j among i's k + 1
nearest, i itself first, whose own k + 1 nearest contain i), the steps, with the
conventions of the classic public implementation (which person-reid-tiny-baseline uses), are:

1. d(i, j): squared Euclidean distances, each row divided by its maximum (the classic
   code's "column-max scaling", the same on its symmetric matrix);
2. expansion: for each j in R(i, k1), if R(j, round(k1/2)) shares more than 2/3 of its
   members with R(i, k1), its members join the set;
3. V[i, j] = exp(-d(i, j)) over the expanded set, normalised to sum 1 (Gaussian weights);
4. local query expansion: V[i] becomes the mean of V over i's k2 nearest (i itself first);
5. Jaccard distance 1 - sum_k min(V[q,k], V[g,k]) / sum_k max(V[q,k], V[g,k]), where the
   denominator is 2 minus the numerator because each row sums to 1;
6. final = (1 - lambda) * Jaccard + lambda * d.

The classic code loops over every image in Python and holds several N x N matrices (8 GB
at Market-1501's 19,281 images; MSMT17's 93,820 do not fit a large machine). Here only the
k nearest neighbours of each image are kept (one pass of chunked matrix products), V is a
sparse matrix with about 20 nonzeros a row, and the final distances are made one block of
queries at a time, each block scored or reduced to its top-k before the next is made
(`reranked_blocks`): the memory is set by `max_memory_gb`, not by the size of the problem.
The Jaccard sums join each query's nonzeros with V's columns: with numba a compiled loop
(`reid.kernels`), else tensor operations, sparse or dense, whichever is less work.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from . import kernels
from .evaluation import evaluate_rank, rank_result, rank_statistics

DEFAULT_MEMORY_GB = 4.0  # working memory of one re-ranking when the caller sets no bound
QUERY_CHUNK = 128  # query rows mixed at once (`_finish`): the temporaries of a block


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


# --------------------------------------------------------------------------------------
# Neighbours and k-reciprocal sets
# --------------------------------------------------------------------------------------
def squared_norms(feats: torch.Tensor, chunk: int = 8192) -> torch.Tensor:
    """|f|^2 of every row (N,), a chunk of rows at a time (no temporary the size of the features)."""
    return torch.cat([f.pow(2).sum(1) for f in feats.split(chunk)])


def _block_distances(feats: torch.Tensor, sq: torch.Tensor, a: slice, b: slice) -> torch.Tensor:
    """Squared distances between the images of `a` and of `b` (A, B): the one expression both the neighbour pass
    and `Neighbourhoods.scaled_distances` use, on the same blocks, so that both give the same bits."""
    return (sq[a, None] + sq[None, b] - 2.0 * (feats[a] @ feats[b].T)).clamp_(min=0.0)


@torch.no_grad()
def nearest_neighbours(feats: torch.Tensor, k: int, block: int = 1024, keep_rows: int = 0,
                       compiled: bool | None = None):
    """The k nearest of every image (N, k), nearest first, their squared distances (N, k), and the row maxima (N,).

    One pass over the upper triangle of the N x N squared-distance matrix in blocks: each
    block serves its rows and, transposed, its columns (the matrix is symmetric), which
    halves the matrix products, the dominant cost. A running top-k per row merges the
    blocks: with numba (`compiled`) a compiled loop that rejects almost every element with one
    comparison, else `torch.topk` of the block beside the running best. With `keep_rows` > 0
    the distances of the first `keep_rows` images (the queries) to the others are kept and
    returned as a fourth value (keep_rows, N - keep_rows).
    """
    n = len(feats)
    sq = squared_norms(feats)  # (N,)
    best_d = torch.full((n, k), float("inf"), device=feats.device)
    best_i = torch.zeros((n, k), dtype=torch.long, device=feats.device)
    row_max = torch.zeros(n, device=feats.device)
    kept = torch.empty(keep_rows, n - keep_rows, device=feats.device) if keep_rows else None
    fast = _compiled_here(feats.device, compiled)

    def merge(rows: slice, d: torch.Tensor, col0: int) -> None:
        if fast:  # in place, on the views of the running best
            kernels.merge_nearest(d.contiguous().numpy(), col0, best_d[rows].numpy(), best_i[rows].numpy(),
                                  row_max[rows].numpy())
            return
        cand_d = torch.cat([best_d[rows], d], dim=1)
        cols = torch.arange(col0, col0 + d.shape[1], device=feats.device).expand(d.shape[0], -1)
        cand_i = torch.cat([best_i[rows], cols], dim=1)
        top = torch.topk(cand_d, k, dim=1, largest=False, sorted=True)
        best_d[rows], best_i[rows] = top.values, cand_i.gather(1, top.indices)
        row_max[rows] = torch.maximum(row_max[rows], d.max(1).values)

    for a0 in range(0, n, block):
        a = slice(a0, min(a0 + block, n))
        for b0 in range(a0, n, block):
            b = slice(b0, min(b0 + block, n))
            d = _block_distances(feats, sq, a, b)  # (A, B), squared
            merge(a, d, b0)
            if b0 != a0:
                merge(b, d.T, a0)
            if kept is not None and a0 < keep_rows and b.stop > keep_rows:  # query rows x gallery columns
                r1, c0 = min(a.stop, keep_rows), max(b0, keep_rows)
                kept[a0:r1, c0 - keep_rows:b.stop - keep_rows] = d[: r1 - a0, c0 - b0:]
    return (best_i, best_d, row_max) if kept is None else (best_i, best_d, row_max, kept)


def reciprocal_mask(knn: torch.Tensor) -> torch.Tensor:
    """(N, k) bool: knn[i, t] is k-reciprocal to i (i is among the k nearest of knn[i, t])."""
    rows = torch.arange(len(knn), device=knn.device)[:, None, None]
    return (knn[knn] == rows).any(-1)  # knn[knn]: (N, k, k), the neighbours of each neighbour


def k_reciprocal_set(knn: torch.Tensor, i: int, k: int) -> list[int]:
    """R(i, k), plainly: the j among i's k + 1 nearest (i itself first) that have i among their own k + 1 nearest."""
    return [int(j) for j in knn[i, : k + 1] if i in knn[j, : k + 1].tolist()]


def expanded_set(knn: torch.Tensor, i: int, k1: int) -> list[int]:
    """The expanded set of image i, plainly (step 2 of the module docstring and of chapter 7): R(i, k1), plus R(j, round(k1/2)) of
    each member j that shares more than 2/3 of it with R(i, k1). `expanded_sets` does this for every image."""
    members = k_reciprocal_set(knn, i, k1)
    expanded = set(members)
    for j in members:
        candidate = k_reciprocal_set(knn, j, int(round(k1 / 2)))
        if len(set(candidate) & set(members)) > 2 / 3 * len(candidate):
            expanded |= set(candidate)
    return sorted(expanded)


def _expanded_chunks(knn: torch.Tensor, k1: int, chunk_size: int) -> Iterator[tuple[int, torch.Tensor, torch.Tensor]]:
    """(first row, idx (c, M), ok (c, M)) of `expanded_sets`, chunk by chunk."""
    n = len(knn)
    k_half = int(round(k1 / 2)) + 1  # Python's round, like numpy.around: halves to even
    near, half = knn[:, : k1 + 1], knn[:, :k_half]
    recip = reciprocal_mask(near)  # (N, k1+1)
    recip_half = reciprocal_mask(half)  # (N, kh)
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
        yield start, idx, ok


def expanded_sets(knn: torch.Tensor, k1: int, chunk_size: int = 2048) -> tuple[torch.Tensor, torch.Tensor]:
    """The k-reciprocal sets with the 2/3 expansion rule, as padded indices (N, M) and a validity mask.

    Each row lists R(i, k1) and, for each of its members j whose R(j, round(k1/2)) shares more
    than 2/3 of its members with R(i, k1), R(j, round(k1/2)); duplicates are masked out. All
    rows at once: `expanded_set` is the same for one image, written plainly.
    """
    chunks = list(_expanded_chunks(knn, k1, chunk_size))
    return torch.cat([c[1] for c in chunks]), torch.cat([c[2] for c in chunks])


@torch.no_grad()
def re_ranking_plain(q_feats: torch.Tensor, g_feats: torch.Tensor, k1: int = 20, k2: int = 6,
                     lambda_value: float = 0.3) -> torch.Tensor:
    """The whole method for a small problem, plainly: N x N matrices, a loop per image, float64 (steps 1-6 of the
    module docstring and of chapter 7). `re_ranking` computes the same in float32 without ever holding an N x N matrix."""
    feats = torch.cat([q_feats, g_feats]).double()
    nq, n = len(q_feats), len(feats)
    d = torch.cdist(feats, feats).pow(2)
    d = d / d.max(dim=1, keepdim=True).values  # 1. each row divided by its maximum
    knn = d.argsort(dim=1, stable=True)  # every image's neighbours, itself first
    v = torch.zeros(n, n, dtype=torch.float64)
    for i in range(n):
        members = expanded_set(knn, i, k1)  # 2. R(i, k1), expanded
        weights = torch.exp(-d[i, members])
        v[i, members] = weights / weights.sum()  # 3. Gaussian weights that sum to 1
    if k2 > 1:
        v = torch.stack([v[knn[i, :k2]].mean(0) for i in range(n)])  # 4. local query expansion
    inter = torch.minimum(v[:nq, None, :], v[None, nq:, :]).sum(-1)  # (nq, ng): sum_k min(V_q, V_g)
    jaccard = 1 - inter / (2 - inter)  # 5. sum_k max(V_q, V_g) = 2 - sum_k min(V_q, V_g)
    return (1 - lambda_value) * jaccard + lambda_value * d[:nq, nq:]  # 6. the mix


# --------------------------------------------------------------------------------------
# V, a sparse matrix
# --------------------------------------------------------------------------------------
@dataclass
class SparseRows:
    """Rows of a sparse (R, num_cols) matrix in CSR form: row r has columns col[ptr[r]:ptr[r+1]], values val[...]."""

    ptr: torch.Tensor  # (R + 1,) int64
    col: torch.Tensor  # (nnz,) int64
    val: torch.Tensor  # (nnz,) float32
    num_cols: int

    def __len__(self) -> int:
        return len(self.ptr) - 1

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in (self.ptr, self.col, self.val))

    @classmethod
    def from_entries(cls, rows: torch.Tensor, cols: torch.Tensor, vals: torch.Tensor, num_rows: int,
                     num_cols: int) -> "SparseRows":
        """From (row, col, value) entries sorted by row; entries of one row keep their order."""
        counts = torch.bincount(rows, minlength=num_rows)
        ptr = torch.zeros(num_rows + 1, dtype=torch.long, device=rows.device)
        ptr[1:] = torch.cumsum(counts, 0)
        return cls(ptr, cols, vals, num_cols)

    def gather(self, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The entries of `rows`, in that order: (positions in col/val, index into `rows` of each entry)."""
        start, length = self.ptr[rows], self.ptr[rows + 1] - self.ptr[rows]
        owner = torch.repeat_interleave(torch.arange(len(rows), device=rows.device), length)
        first = torch.cumsum(length, 0) - length
        pos = start[owner] + torch.arange(len(owner), device=rows.device) - first[owner]
        return pos, owner

    def select(self, rows: torch.Tensor) -> "SparseRows":
        pos, owner = self.gather(rows)
        return SparseRows.from_entries(owner, self.col[pos], self.val[pos], len(rows), self.num_cols)

    def transpose(self, compiled: bool | None = None) -> "SparseRows":
        """The same matrix by columns (CSC): row c of the result lists the rows holding column c, in order."""
        if self.ptr.device.type == "cpu" and kernels.use_compiled(compiled):
            return _from_numpy(*kernels.transpose(self.ptr.numpy(), self.col.numpy(), self.val.numpy(),
                                                  self.num_cols), len(self))
        rows = torch.repeat_interleave(torch.arange(len(self), device=self.ptr.device), self.ptr.diff())
        order = torch.argsort(self.col, stable=True)
        return SparseRows.from_entries(self.col[order], rows[order], self.val[order], self.num_cols, len(self))

    def to_dense(self) -> torch.Tensor:
        rows = torch.repeat_interleave(torch.arange(len(self), device=self.ptr.device), self.ptr.diff())
        out = torch.zeros(len(self), self.num_cols, device=self.val.device)
        out[rows, self.col] = self.val
        return out


def _set_distances(feats: torch.Tensor, sq: torch.Tensor, rows: torch.Tensor, j: torch.Tensor, knn: torch.Tensor,
                   knn_d: torch.Tensor, chunk_pairs: int = 16384) -> torch.Tensor:
    """Squared distances of the pairs (rows[p], j[p]): the neighbour pass's where j is among the kept nearest of
    rows[p], else computed from the features (in chunks)."""
    d = torch.empty(len(rows), device=feats.device)
    for s in range(0, len(rows), chunk_pairs):
        r, c = rows[s:s + chunk_pairs], j[s:s + chunk_pairs]
        hit = knn[r] == c[:, None]  # (p, k)
        found = hit.any(1)
        part = (knn_d[r] * hit).sum(1)  # the kept distance where found
        miss = ~found
        a, b = r[miss], c[miss]
        part[miss] = (sq[a] + sq[b] - 2.0 * (feats[a] * feats[b]).sum(1)).clamp(min=0.0)
        d[s:s + chunk_pairs] = part
    return d


def gaussian_weights(feats: torch.Tensor, idx: torch.Tensor, ok: torch.Tensor, knn: torch.Tensor,
                     knn_d: torch.Tensor, row_max: torch.Tensor, row0: int = 0) -> torch.Tensor:
    """V's values on the sets `idx`/`ok` of rows row0, row0 + 1, ...: exp(-d(i, j) / max_j d(i, j)), normalised
    per row; (rows, M), 0 where not ok.

    Only the valid (i, j) pairs are computed (about 15 per row for k1 = 20). Most j are among
    the k nearest of i, whose distances the neighbour pass kept; the others are computed
    from the features.
    """
    local, slots = ok.nonzero(as_tuple=True)  # the valid pairs
    rows, j = local + row0, idx[local, slots]
    d = _set_distances(feats, squared_norms(feats), rows, j, knn, knn_d)
    vals = torch.zeros(idx.shape, device=feats.device)
    vals[local, slots] = torch.exp(-d / row_max[rows].clamp(min=1e-12))
    return vals / vals.sum(1, keepdim=True)


def _compiled_here(device: torch.device, compiled: bool | None) -> bool:
    return device.type == "cpu" and kernels.use_compiled(compiled)


def _from_numpy(ptr, col, val, num_cols: int) -> SparseRows:
    return SparseRows(torch.from_numpy(ptr), torch.from_numpy(col), torch.from_numpy(val), num_cols)


def weighted_sets(feats: torch.Tensor, knn: torch.Tensor, knn_d: torch.Tensor, row_max: torch.Tensor, k1: int,
                  chunk_size: int = 2048, compiled: bool | None = None) -> SparseRows:
    """V (N, N) as a sparse matrix: each row nonzero on its expanded set (sorted), Gaussian weights summing to 1.

    With numba (`compiled`) one compiled loop per row (`reid.kernels.weighted_rows`), else `expanded_sets` and
    `gaussian_weights` in chunks of rows; the same sets and weights."""
    n = len(knn)
    if _compiled_here(feats.device, compiled):
        return _from_numpy(*kernels.weighted_rows(feats.numpy(), squared_norms(feats).numpy(), knn.numpy(), knn_d.numpy(),
                                                  row_max.numpy(), k1), n)
    rows, cols, vals = [], [], []
    for start, idx, ok in _expanded_chunks(knn, k1, chunk_size):
        v = gaussian_weights(feats, idx, ok, knn, knn_d, row_max, start)
        local, slots = ok.nonzero(as_tuple=True)  # row-major: each row's columns in increasing order
        rows.append(local + start)
        cols.append(idx[local, slots])
        vals.append(v[local, slots])
    return SparseRows.from_entries(torch.cat(rows), torch.cat(cols), torch.cat(vals), n, n)


def query_expansion(v: SparseRows, knn: torch.Tensor, k2: int, rows: torch.Tensor,
                    compiled: bool | None = None) -> SparseRows:
    """Rows `rows` of V_qe: V_qe[i] = mean of V over i's k2 nearest (i itself first), as sparse rows (with numba:
    `reid.kernels.expand_rows`, which leaves a row's columns in the order it meets them)."""
    neighbours = knn[rows, :k2] if k2 > 1 else rows[:, None]  # (r, k2)
    if _compiled_here(v.val.device, compiled):
        return _from_numpy(*kernels.expand_rows(v.ptr.numpy(), v.col.numpy(), v.val.numpy(), neighbours.numpy(),
                                                v.num_cols), v.num_cols)
    pos, owner = v.gather(neighbours.flatten())
    out_row = owner // neighbours.shape[1]
    key = out_row * v.num_cols + v.col[pos]  # (row, column), row-major
    key, order = torch.sort(key, stable=True)
    unique, inverse = torch.unique_consecutive(key, return_inverse=True)
    summed = torch.zeros(len(unique), device=v.val.device).index_add_(0, inverse, v.val[pos][order] / neighbours.shape[1])
    return SparseRows.from_entries(unique // v.num_cols, unique % v.num_cols, summed, len(rows), v.num_cols)


# --------------------------------------------------------------------------------------
# The Jaccard numerator: sum_k min(V_qe[q, k], V_qe[g, k])
# --------------------------------------------------------------------------------------
def _join_torch(queries: SparseRows, columns: SparseRows, num_gallery: int, max_pairs: int) -> torch.Tensor:
    """Tensor operations: each nonzero V[q, k] of a query row meets every nonzero of column k (`columns`, V's gallery
    rows by column), in batches of at most `max_pairs` pairs; the minima are added into the (B, G) result."""
    device = queries.val.device
    out = torch.zeros(len(queries) * num_gallery, device=device)
    q_rows = torch.repeat_interleave(torch.arange(len(queries), device=device), queries.ptr.diff())
    q_cols, q_vals = queries.col, queries.val
    pairs = columns.ptr[q_cols + 1] - columns.ptr[q_cols]  # partners of each query entry
    bounds = torch.cumsum(pairs, 0)
    start = 0
    while start < len(q_rows):
        base = bounds[start - 1] if start > 0 else 0  # as many query entries as fit in max_pairs (at least one)
        stop = max(int(torch.searchsorted(bounds, base + max_pairs, right=True)), start + 1)
        cnt = pairs[start:stop]
        e = torch.repeat_interleave(torch.arange(start, stop, device=device), cnt)  # query entry of each pair
        first = torch.cumsum(cnt, 0) - cnt
        within = torch.arange(int(cnt.sum()), device=device) - torch.repeat_interleave(first, cnt)
        partner = columns.ptr[q_cols[e]] + within
        mins = torch.minimum(q_vals[e], columns.val[partner])
        out.index_add_(0, q_rows[e] * num_gallery + columns.col[partner], mins)
        start = stop
    return out.view(len(queries), num_gallery)


def _dense_torch(queries: SparseRows, gallery: SparseRows, max_bytes: int) -> torch.Tensor:
    """Tensor operations with V's gallery columns held dense, block by block: each query takes the minimum of its
    nonzero values with those columns and sums. Less work than the join when rows are long in a small gallery."""
    n, ng = gallery.num_cols, len(gallery)
    out = torch.empty(len(queries), ng, device=queries.val.device)
    step = max(1, max_bytes // (4 * (n + 1)))
    q_dense = queries.to_dense()  # (B, N)
    for g0 in range(0, ng, step):
        g1 = min(g0 + step, ng)
        block = gallery.select(torch.arange(g0, g1, device=gallery.ptr.device))
        columns = block.to_dense().T.contiguous()  # (N, G): row k is column k of V over this gallery block
        for q in range(len(queries)):
            ks = q_dense[q].nonzero().squeeze(1)
            out[q, g0:g1] = torch.minimum(q_dense[q, ks, None], columns[ks]).sum(0)
    return out


# A dense element costs 1/29 to 1/110 of a sparse join's pair in tensor operations (measured on the 2-core CPU at
# 300 x 1,200: a pair 37-49 ns, an element 0.4-1.3 ns); 25 leans towards the join, which needs less memory.
DENSE_RATIO = 25
# In numba's loops a dense element (SIMD) costs about 1/8 of a joined pair (a scattered addition).
DENSE_RATIO_COMPILED = 8


def jaccard_numerator(queries: SparseRows, gallery: SparseRows, columns: SparseRows | None = None,
                      dense: bool | None = None, compiled: bool | None = None,
                      max_bytes: int = 256 << 20, out: torch.Tensor | None = None) -> torch.Tensor:
    """(B, G): sum_k min(V_qe[q, k], V_qe[g, k]) for the query rows `queries` and the gallery rows `gallery`
    (`columns`: the same by column, `gallery.transpose()`, passed when it is reused).

    Each query's nonzeros meet V's gallery columns, two ways: joined with the columns' nonzeros
    (about (row length) x (column length) pairs per query), or with the columns held dense
    ((row length) x (gallery size) elements, cheaper per element). `dense` None chooses by the
    expected work, within `max_bytes` for the dense columns. With numba (`compiled`, on the
    CPU) both ways are compiled loops (`reid.kernels`) and give the same bits; else tensor
    operations. `out`: a (B, G) float32 tensor to write the sums into.
    """
    device = queries.val.device
    n, ng = gallery.num_cols, len(gallery)
    fast = _compiled_here(device, compiled)
    if dense is None:
        column_length = len(gallery.col) / max(n, 1)
        fits = 4 * n * ng <= max_bytes
        dense = fits and column_length * (DENSE_RATIO_COMPILED if fast else DENSE_RATIO) > ng
    if fast:
        q = (queries.ptr.numpy(), queries.col.numpy(), queries.val.numpy())
        out = torch.zeros(len(queries), ng) if out is None else out.zero_()
        if dense:
            columns = torch.zeros(n, ng)
            rows = torch.repeat_interleave(torch.arange(ng), gallery.ptr.diff())
            columns[gallery.col, rows] = gallery.val
            kernels.join_min_sum_dense(*q, columns.numpy(), out.numpy())
        else:
            columns = gallery.transpose(compiled) if columns is None else columns
            kernels.join_min_sum(*q, columns.ptr.numpy(), columns.col.numpy(), columns.val.numpy(), out.numpy())
        return out
    if dense:
        inter = _dense_torch(queries, gallery, max_bytes)
    else:
        columns = gallery.transpose(compiled) if columns is None else columns
        inter = _join_torch(queries, columns, ng, max(1, max_bytes // 40))
    return inter if out is None else out.copy_(inter)


# --------------------------------------------------------------------------------------
# Re-ranking, one block of queries at a time
# --------------------------------------------------------------------------------------
@dataclass
class Neighbourhoods:
    """What re-ranking computes once for all queries: the features, each image's nearest neighbours, and (when it
    fits the memory bound) the queries' distances to the gallery, kept from the neighbour pass."""

    feats: torch.Tensor  # (N, d) float32, the queries first
    num_query: int
    knn: torch.Tensor  # (N, k) nearest first
    knn_d: torch.Tensor  # (N, k) squared distances
    row_max: torch.Tensor  # (N,) the largest squared distance of each row
    block: int  # the neighbour pass's block size
    kept: torch.Tensor | None = None  # (num_query, num_gallery) squared distances, or None: recomputed per block

    @property
    def num_gallery(self) -> int:
        return len(self.feats) - self.num_query

    def scaled_distances(self, start: int, stop: int, out: torch.Tensor | None = None) -> torch.Tensor:
        """Rows start:stop of the original distance (queries x gallery), each row divided by its maximum, into `out`
        (stop - start, num_gallery) if given.

        From the distances kept by the neighbour pass, or else computed again on the pass's own
        blocks (`_block_distances`, whole row blocks of `block` queries): the same bits either way,
        whatever rows a caller asks for."""
        nq, n = self.num_query, len(self.feats)
        d = torch.empty(stop - start, n - nq, device=self.feats.device) if out is None else out
        if self.kept is not None:
            d.copy_(self.kept[start:stop])
        else:
            sq = squared_norms(self.feats)
            for a0 in range(start - start % self.block, stop, self.block):
                a = slice(a0, min(a0 + self.block, nq))
                lo, hi = max(a0, start), min(a.stop, stop)
                for b0 in range(nq - nq % self.block, n, self.block):
                    b = slice(b0, min(b0 + self.block, n))
                    c0 = max(b0, nq)
                    part = _block_distances(self.feats, sq, a, b)
                    d[lo - start:hi - start, c0 - nq:b.stop - nq] = part[lo - a0:hi - a0, c0 - b0:]
        return d.div_(self.row_max[start:stop, None].clamp(min=1e-12))


def neighbourhoods(feats: torch.Tensor, num_query: int, k: int, block: int = 1024,
                   keep_bytes: float = float("inf"), compiled: bool | None = None) -> Neighbourhoods:
    """The neighbour pass over `feats` (N, d) float32, the first `num_query` rows the queries; the query rows'
    distances to the gallery are kept if they take at most `keep_bytes`."""
    nq, ng = num_query, len(feats) - num_query
    keep = nq if 4 * nq * ng <= keep_bytes else 0
    out = nearest_neighbours(feats, k, block, keep, compiled)
    return Neighbourhoods(feats, nq, *out[:3], block=block, kept=out[3] if keep else None)


def _finish(inter: torch.Tensor, original: torch.Tensor, lambda_value: float) -> torch.Tensor:
    """final = (1 - lambda) * Jaccard + lambda * original, written over `original`, QUERY_CHUNK rows at a time."""
    for r0 in range(0, len(inter), QUERY_CHUNK):
        i = inter[r0:r0 + QUERY_CHUNK]
        jaccard = 1.0 - i / (2.0 - i)
        original[r0:r0 + QUERY_CHUNK] = jaccard * (1 - lambda_value) + original[r0:r0 + QUERY_CHUNK] * lambda_value
    return original


def block_rows(num_query: int, num_gallery: int, fixed_bytes: int, max_memory_gb: float | None,
               align: int = QUERY_CHUNK) -> int:
    """Queries per block within `max_memory_gb` (default DEFAULT_MEMORY_GB) of working memory: a block holds two
    (rows, gallery) float32 matrices (the original distances, turned into the final ones, and the Jaccard
    numerator) and, for up to QUERY_CHUNK of its rows, three temporaries while they are mixed; `fixed_bytes` is
    what all blocks share. A multiple of `align` when it is at least that (the neighbour pass's blocks, when the
    original distances are computed again block by block)."""
    budget = (DEFAULT_MEMORY_GB if max_memory_gb is None else max_memory_gb) * 1e9 - fixed_bytes
    row, temp = 2 * 4 * num_gallery, 3 * 4 * num_gallery
    scratch = min(QUERY_CHUNK, num_query) * temp
    if budget >= align * row + scratch:
        rows = int((budget - scratch) // row)
        rows -= rows % align
    else:
        rows = int(budget // (row + temp))
    if rows < 1:
        need = (fixed_bytes + row + temp) / 1e9
        raise MemoryError(f"max_memory_gb={max_memory_gb}: re-ranking {num_query} queries against {num_gallery} "
                          f"gallery images needs at least {need:.2g} GB (its neighbour structures and one query "
                          f"row); raise max_memory_gb to {need * 1.05:.2g} or more")
    return min(rows, num_query)


@torch.no_grad()
def reranked_blocks(q_feats: torch.Tensor, g_feats: torch.Tensor, k1: int = 20, k2: int = 6,
                    lambda_value: float = 0.3, device: torch.device | str | None = None, dense: bool | None = None,
                    compiled: bool | None = None, max_memory_gb: float | None = None,
                    progress: bool = False) -> Iterator[tuple[int, torch.Tensor]]:
    """Re-ranked distances one block of queries at a time: yields (first query, (rows, num_gallery) float32).

    Everything shared by the blocks grows with N x k: the nearest neighbours, V, and V_qe's
    gallery rows by column; the queries' original distances are kept from the neighbour pass
    when they take at most a quarter of the bound, else computed again for each block. Each
    block then costs two (rows, gallery) matrices, and the number of rows follows from
    `max_memory_gb` (`block_rows`; a `MemoryError` says how much is needed when not even one
    row fits). A block's values do not depend on its size or on whether the distances were
    kept: any bound gives the same distances, bit for bit. `dense` forces one of the tensor ways of the
    Jaccard sums and `compiled` chooses numba's loop or tensors (`jaccard_numerator`).

    Every block is written into the same two buffers: use (or copy) a block before asking for
    the next.
    """
    _check(q_feats, g_feats, k1, k2, lambda_value)
    device = torch.device(device) if device is not None else q_feats.device
    feats = torch.cat([q_feats, g_feats]).float().to(device)
    yield from _blocks(feats, len(q_feats), k1, k2, lambda_value, dense, compiled, max_memory_gb, progress,
                       feats.numel() * 4)


def _blocks(feats: torch.Tensor, nq: int, k1: int, k2: int, lambda_value: float, dense: bool | None,
            compiled: bool | None, max_memory_gb: float | None, progress: bool,
            owned_bytes: int) -> Iterator[tuple[int, torch.Tensor]]:
    """`reranked_blocks` of `feats` (N, d) float32 on its device, the first `nq` rows the queries; `owned_bytes`:
    what the caller's copies of the features take out of the bound."""
    budget = (DEFAULT_MEMORY_GB if max_memory_gb is None else max_memory_gb) * 1e9
    hood = neighbourhoods(feats, nq, max(k1 + 1, k2), keep_bytes=budget / 4, compiled=compiled)
    ng, dev = hood.num_gallery, hood.feats.device
    v = weighted_sets(hood.feats, hood.knn, hood.knn_d, hood.row_max, k1, compiled=compiled)
    gallery = query_expansion(v, hood.knn, k2, torch.arange(nq, nq + ng, device=dev), compiled)  # V_qe's gallery rows
    columns = gallery.transpose(compiled)  # ... and by column, for the join
    fixed = sum(x.nbytes for x in (v, gallery, columns)) + hood.knn.numel() * 12 + owned_bytes
    if hood.kept is not None:
        fixed += hood.kept.numel() * 4
    rows = block_rows(nq, ng, fixed, max_memory_gb, QUERY_CHUNK if hood.kept is not None else hood.block)
    final, inter = (torch.empty(rows, ng, device=dev) for _ in range(2))  # every block's two matrices
    for start in tqdm(range(0, nq, rows), desc="re-ranking", disable=not progress, leave=False):
        stop = min(start + rows, nq)
        queries = query_expansion(v, hood.knn, k2, torch.arange(start, stop, device=dev), compiled)
        jaccard_numerator(queries, gallery, columns, dense, compiled, out=inter[:stop - start])  # (rows, G)
        hood.scaled_distances(start, stop, out=final[:stop - start])
        yield start, _finish(inter[:stop - start], final[:stop - start], lambda_value)


@torch.no_grad()
def re_ranking(q_feats: torch.Tensor, g_feats: torch.Tensor, k1: int = 20, k2: int = 6, lambda_value: float = 0.3,
               device: torch.device | str | None = None, dense: bool | None = None, compiled: bool | None = None,
               dtype: torch.dtype = torch.float32, max_memory_gb: float | None = None) -> torch.Tensor:
    """(num_query, num_gallery) re-ranked distances (Zhong et al. 2017) on `device` (the features' by default).

    The whole matrix, in `dtype` (float32, or float16 for half its memory), assembled from
    `reranked_blocks`; `max_memory_gb` bounds the working memory beside it. To score or to list
    the nearest without holding the matrix, use `evaluate_reranked` or `re_ranking_topk`.
    """
    out = None
    for start, block in reranked_blocks(q_feats, g_feats, k1, k2, lambda_value, device, dense, compiled,
                                        max_memory_gb):
        if out is None:
            out = torch.empty(len(q_feats), block.shape[1], dtype=dtype, device=block.device)
        out[start:start + len(block)] = block
    return out


@torch.no_grad()
def re_ranking_topk(q_feats: torch.Tensor, g_feats: torch.Tensor, top_k: int, k1: int = 20, k2: int = 6,
                    lambda_value: float = 0.3, device: torch.device | str | None = None,
                    max_memory_gb: float | None = None, progress: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Each query's `top_k` nearest gallery images after re-ranking: (distances, indices), each (num_query, top_k),
    nearest first; one block of queries at a time, never the whole matrix."""
    values, indices = [], []
    for _, block in reranked_blocks(q_feats, g_feats, k1, k2, lambda_value, device, max_memory_gb=max_memory_gb,
                                    progress=progress):
        top = torch.topk(block, min(top_k, block.shape[1]), dim=1, largest=False, sorted=True)
        values.append(top.values)
        indices.append(top.indices)
    return torch.cat(values), torch.cat(indices)


def evaluate_reranked(feats: torch.Tensor, pids, camids, num_query: int, k1: int = 20, k2: int = 6,
                      lambda_value: float = 0.3, feat_norm: bool = True, max_rank: int = 50,
                      max_memory_gb: float | None = None, device: torch.device | str | None = None,
                      compiled: bool | None = None, progress: bool = False):
    """`evaluation.evaluate_features` with k-reciprocal re-ranking: the first `num_query` rows are the queries;
    the features are L2-normalised first when `feat_norm` (the cosine setting).

    Each block of re-ranked distances is scored as it is made (`rank_statistics`) and dropped:
    the (queries x gallery) matrix is never held, and `max_memory_gb` bounds the memory."""
    _check(feats[:num_query], feats[num_query:], k1, k2, lambda_value)
    given = feats
    feats = feats.float().to(device if device is not None else feats.device)
    if feat_norm:
        feats = torch.nn.functional.normalize(feats, dim=1)
    owned = feats.numel() * 4 if feats.data_ptr() != given.data_ptr() else 0  # a copy made here
    pids, camids = np.asarray(pids), np.asarray(camids)
    q_pids, q_cams, g_pids, g_cams = pids[:num_query], camids[:num_query], pids[num_query:], camids[num_query:]
    stats = []
    for start, block in _blocks(feats, num_query, k1, k2, lambda_value, None, compiled, max_memory_gb, progress,
                                owned):
        stop = start + len(block)
        stats.append(rank_statistics(block, q_pids[start:stop], g_pids, q_cams[start:stop], g_cams,
                                     compiled=compiled))
    first, ap, inp = (np.concatenate(parts) for parts in zip(*stats))
    return rank_result(first, ap, inp, min(max_rank, len(g_pids)))


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
        lines = [f"{'k1':>4} {'k2':>4} {'lambda':>6} {'mAP':>6} {'R1':>6} {'mAP+R1':>7}"]
        for r in sorted(self.rows, key=lambda r: -(r["mAP"] + r["rank1"]))[:top]:
            lines.append(f"{r['k1']:>4} {r['k2']:>4} {r['lambda']:>6.1f} {100 * r['mAP']:6.1f} {100 * r['rank1']:6.1f} "
                         f"{100 * (r['mAP'] + r['rank1']):7.1f}")
        return "\n".join(lines)


@torch.no_grad()
def search_reranking(q_feats: torch.Tensor, g_feats: torch.Tensor, q_pids, g_pids, q_camids, g_camids,
                     grid: list[tuple[int, int, float]] | None = None, progress: bool = False,
                     compiled: bool | None = None) -> SearchResult:
    """Score every (k1, k2, lambda) of `grid` (default: person-reid-tiny-baseline's) and return all scores and the best.

    Run it on a validation split (`reid.data.carve_validation`), never on the test set. The
    expensive parts are shared: one neighbour pass for the largest k1, V once per k1, the
    Jaccard distances once per (k1, k2); each lambda is then a weighted sum and an evaluation,
    which with numba (`compiled`) is one compiled pass that never writes the mixed matrix.
    """
    grid = reranking_grid() if grid is None else list(grid)
    k1_max, k2_max = max(p[0] for p in grid), max(p[1] for p in grid)
    _check(q_feats, g_feats, k1_max, k2_max, 0.0)
    use = q_feats.device.type == "cpu" and kernels.use_compiled(compiled)
    hood = neighbourhoods(torch.cat([q_feats, g_feats]).float(), len(q_feats), max(k1_max + 1, k2_max),
                          compiled=compiled)
    nq, ng = hood.num_query, hood.num_gallery
    original = hood.scaled_distances(0, nq)
    labels = [np.asarray(x).ravel().astype(np.int64) for x in (q_pids, g_pids, q_camids, g_camids)]
    length = min(50, ng)
    plain = evaluate_rank(original, *labels, compiled=compiled)
    rows = []
    by_k1: dict[int, dict[int, list[float]]] = {}
    for k1, k2, lam in grid:
        by_k1.setdefault(k1, {}).setdefault(k2, []).append(lam)
    bar = tqdm(total=len(grid), desc="re-ranking grid", disable=not progress, leave=False)
    everyone = torch.arange(nq + ng, device=hood.knn.device)
    for k1, k2s in by_k1.items():
        v = weighted_sets(hood.feats, hood.knn, hood.knn_d, hood.row_max, k1, compiled=compiled)
        for k2, lams in k2s.items():
            queries = query_expansion(v, hood.knn, k2, everyone[:nq], compiled)
            gallery = query_expansion(v, hood.knn, k2, everyone[nq:], compiled)
            inter = jaccard_numerator(queries, gallery, compiled=compiled)
            jaccard = 1.0 - inter / (2.0 - inter)
            if use:
                first, ap, inp = kernels.rank_stats_mixed(jaccard.numpy(), original.numpy(), lams, *labels)
                scores = [rank_result(first[i], ap[i], inp[i], length) for i in range(len(lams))]
            else:
                scores = [evaluate_rank(jaccard * (1 - lam) + original * lam, *labels, compiled=False) for lam in lams]
            for lam, res in zip(lams, scores):
                rows.append({"k1": k1, "k2": k2, "lambda": lam, "mAP": res.mAP, "rank1": float(res.cmc[0]),
                             "mINP": res.mINP})
                bar.update()
    bar.close()
    best = max(rows, key=lambda r: r["mAP"] + r["rank1"])
    return SearchResult(rows, best, {"mAP": plain.mAP, "rank1": float(plain.cmc[0]), "mINP": plain.mINP})
