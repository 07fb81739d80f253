"""Compiled loops for the two inner loops of re-ranking and scoring, with numba (optional).

Both loops are simple to write one element at a time and wasteful to write with tensor
operations, which must materialise every intermediate:

* `join_min_sum`: the Jaccard numerator of k-reciprocal re-ranking, sum_k min(V[q, k], V[g, k])
  for each query q and every gallery image g, walking the nonzeros of q's row and, for each,
  the nonzeros of that column of V. As tensor operations it builds every (nonzero, partner)
  pair in memory; here each pair is one minimum and one addition into a row held in cache.
* `rank_stats`: for each query, the rank of every true match: the number of impostors
  (other identities) closer than it, plus the matches before it. No sort of the gallery:
  the few true-match distances are sorted and each impostor is placed among them by
  binary search. From those ranks come CMC, AP and INP (`reid.evaluation`).
  `rank_stats_mixed` does the same for several mixes `a * (1 - lambda) + b * lambda` of two
  distance matrices without writing any of them (the re-ranking search).

Whether they are used: `available()` (numba importable, and `REID_NUMBA` is not "0").
Without numba every caller falls back to the torch code beside it, which gives the same
numbers (tests compare the two). The functions are compiled on first use (a few seconds)
and cached beside this file where it is writable.
"""

from __future__ import annotations

import functools
import os

import numpy as np


@functools.lru_cache(maxsize=None)
def _numba():
    try:
        import numba
    except ImportError:
        return None
    return numba


def available() -> bool:
    """True when the compiled loops can be used: numba is installed and REID_NUMBA is not "0"."""
    return os.environ.get("REID_NUMBA", "1") != "0" and _numba() is not None


def use_compiled(compiled: bool | None) -> bool:
    """The choice of a caller's `compiled` argument: None -> `available()`; True demands numba (a clear error
    without it); False -> the torch code."""
    if compiled is None:
        return available()
    if compiled and _numba() is None:
        raise ImportError("compiled=True needs numba: pip install numba (or \"reid[fast]\"), or pass compiled=None")
    return bool(compiled)


@functools.lru_cache(maxsize=None)
def _kernels():
    numba = _numba()
    njit, prange = numba.njit, numba.prange
    f32 = np.float32

    @njit(parallel=True, cache=True, nogil=True)
    def join_min_sum(q_ptr, q_col, q_val, c_ptr, c_row, c_val, out):
        # out (B, G) float32, zeroed: out[b, g] = sum over k of min(Vq[b, k], Vg[g, k]).
        # Query rows in CSR (q_ptr, q_col, q_val); the gallery's columns in CSC (c_ptr, c_row, c_val).
        for b in prange(out.shape[0]):
            acc = out[b]
            for p in range(q_ptr[b], q_ptr[b + 1]):
                k = q_col[p]
                v = q_val[p]
                for s in range(c_ptr[k], c_ptr[k + 1]):
                    w = c_val[s]
                    acc[c_row[s]] += v if v < w else w

    @njit(parallel=True, cache=True, nogil=True)
    def merge_nearest(d, col0, best_d, best_i, row_max):
        # Merge the block d (A, B) of distances to images col0, col0 + 1, ... into each row's running k nearest
        # (best_d ascending, best_i) and row maximum. One comparison rejects almost every element.
        k = best_d.shape[1]
        for r in prange(d.shape[0]):
            worst = best_d[r, k - 1]
            top = row_max[r]
            for c in range(d.shape[1]):
                x = d[r, c]
                if x > top:
                    top = x
                if x < worst:  # insert, keeping the row sorted (an equal distance stays behind the earlier one)
                    p = k - 1
                    while p > 0 and best_d[r, p - 1] > x:
                        best_d[r, p] = best_d[r, p - 1]
                        best_i[r, p] = best_i[r, p - 1]
                        p -= 1
                    best_d[r, p] = x
                    best_i[r, p] = col0 + c
                    worst = best_d[r, k - 1]
            row_max[r] = top

    @njit(parallel=True, cache=True, nogil=True)
    def reciprocal_masks(knn, k, out):
        # out (N, k + 1): is knn[i, t] among the k + 1 nearest of i's neighbour, and i among its?
        for i in prange(knn.shape[0]):
            for t in range(k + 1):
                j = knn[i, t]
                found = False
                for u in range(k + 1):
                    if knn[j, u] == i:
                        found = True
                        break
                out[i, t] = found

    @njit(parallel=True, cache=True, nogil=True)
    def weighted_rows(feats, sq, knn, knn_d, row_max, recip, recip_half, start, rows_per_task, cols, vals, sizes):
        # Rows start, start + 1, ... of V: the expanded k-reciprocal set of each image (sorted) and its Gaussian
        # weights exp(-d / row max), normalised to sum 1, into cols/vals (c, M); sizes (c,) the set sizes.
        k1, kh = recip.shape[1] - 1, recip_half.shape[1] - 1
        n_rows = cols.shape[0]
        for task in prange((n_rows + rows_per_task - 1) // rows_per_task):
            mark = np.full(knn.shape[0], -1, dtype=np.int64)  # mark[j] == i: j is a member of R(i, k1)
            found = np.empty(cols.shape[1], dtype=np.int64)
            for r in range(task * rows_per_task, min((task + 1) * rows_per_task, n_rows)):
                i = start + r
                n = 0
                for t in range(k1 + 1):
                    if recip[i, t]:
                        found[n] = knn[i, t]
                        mark[knn[i, t]] = i
                        n += 1
                m = n
                for a in range(m):
                    j = found[a]
                    c = 0
                    inside = 0
                    for t in range(kh + 1):
                        if recip_half[j, t]:
                            c += 1
                            if mark[knn[j, t]] == i:
                                inside += 1
                    if inside > 2.0 / 3.0 * c:
                        for t in range(kh + 1):
                            if recip_half[j, t]:
                                found[n] = knn[j, t]
                                n += 1
                found[:n].sort()
                size = 0
                total = f32(0.0)
                scale = max(row_max[i], f32(1e-12))
                for a in range(n):
                    j = found[a]
                    if a > 0 and j == found[a - 1]:
                        continue
                    d = f32(-1.0)
                    for t in range(knn.shape[1]):
                        if knn[i, t] == j:
                            d = knn_d[i, t]
                            break
                    if d < 0:  # not among the kept nearest: from the features
                        dot = f32(0.0)
                        for x in range(feats.shape[1]):
                            dot += feats[i, x] * feats[j, x]
                        d = max(sq[i] + sq[j] - f32(2.0) * dot, f32(0.0))
                    w = np.exp(-d / scale)
                    cols[r, size] = j
                    vals[r, size] = w
                    total += w
                    size += 1
                for a in range(size):
                    vals[r, a] = vals[r, a] / total
                sizes[r] = size

    @njit(parallel=True, cache=True, nogil=True)
    def expand_rows(v_ptr, v_col, v_val, neighbours, num_cols, rows_per_task, cols, vals, sizes):
        # Rows of V_qe: the mean of V's rows `neighbours[r]` (r's k2 nearest): each row's columns in the order they
        # are first met (no sort: the joins need none) with their values added in neighbour order.
        k2 = neighbours.shape[1]
        n_rows = neighbours.shape[0]
        for task in prange((n_rows + rows_per_task - 1) // rows_per_task):
            mark = np.full(num_cols, -1, dtype=np.int64)
            acc = np.zeros(num_cols, dtype=f32)
            touched = np.empty(cols.shape[1], dtype=np.int64)
            for r in range(task * rows_per_task, min((task + 1) * rows_per_task, n_rows)):
                n = 0
                for t in range(k2):
                    j = neighbours[r, t]
                    for p in range(v_ptr[j], v_ptr[j + 1]):
                        c = v_col[p]
                        if mark[c] != r:
                            mark[c] = r
                            acc[c] = f32(0.0)
                            touched[n] = c
                            n += 1
                        acc[c] += v_val[p] / f32(k2)
                for a in range(n):
                    cols[r, a] = touched[a]
                    vals[r, a] = acc[touched[a]]
                sizes[r] = n

    @njit(cache=True, nogil=True)
    def transpose(ptr, col, val, num_cols, out_ptr, out_col, out_val):
        # CSR -> CSC by a counting sort: out row c lists the rows holding column c, in increasing row order.
        for p in range(col.shape[0]):
            out_ptr[col[p] + 1] += 1
        for c in range(num_cols):
            out_ptr[c + 1] += out_ptr[c]
        fill = out_ptr[:-1].copy()
        for r in range(ptr.shape[0] - 1):
            for p in range(ptr[r], ptr[r + 1]):
                q = fill[col[p]]
                out_col[q] = r
                out_val[q] = val[p]
                fill[col[p]] = q + 1

    @njit(parallel=True, cache=True, nogil=True)
    def compact(cols, vals, sizes, ptr, col, val):
        # Padded rows (c, W) with their sizes -> CSR (ptr holds the row starts already).
        for r in prange(cols.shape[0]):
            p = ptr[r]
            for a in range(sizes[r]):
                col[p + a] = cols[r, a]
                val[p + a] = vals[r, a]

    @njit(parallel=True, cache=True, nogil=True)
    def join_min_sum_dense(q_ptr, q_col, q_val, columns, out):
        # As join_min_sum with the gallery's columns held dense, columns (N, G): one minimum and one addition per
        # element, in SIMD; a zero of a column adds nothing, so the sums are those of the sparse join, bit for bit.
        for b in prange(out.shape[0]):
            acc = out[b]
            for p in range(q_ptr[b], q_ptr[b + 1]):
                v = q_val[p]
                col = columns[q_col[p]]
                for g in range(acc.shape[0]):
                    w = col[g]
                    acc[g] += v if v < w else w

    @njit(cache=True, nogil=True)
    def _row(d, qp, qc, g_pids, g_cams, match_buf, counts, trapezoid):
        # One query's ranks: returns (first rank, AP, INP), first rank 0 when no true match is kept.
        # AP averages the precision at each match; with `trapezoid`, the mean of it and the precision
        # just before the match (the Market-1501 MATLAB code's area by trapezoids).
        n = 0
        for g in range(d.shape[0]):
            if g_pids[g] == qp and g_cams[g] != qc:
                match_buf[n] = d[g]
                n += 1
        if n == 0:
            return 0, 0.0, 0.0
        m = np.sort(match_buf[:n])
        for j in range(n + 1):
            counts[j] = 0
        if n <= 32:  # few matches: count the impostors closer than each, a branch-free pass per match
            below = 0
            for j in range(n):
                c = 0
                for g in range(d.shape[0]):
                    c += (d[g] < m[j]) & (g_pids[g] != qp)
                counts[j] = c - below  # impostors between match j - 1 and match j
                below = c
        else:  # many: each impostor lands after every true match at or below its distance
            for g in range(d.shape[0]):
                if g_pids[g] != qp:
                    counts[np.searchsorted(m, d[g], side="right")] += 1
        before = 0
        ap = 0.0
        first = 0
        rank = 0
        for j in range(n):
            before += counts[j]
            rank = before + j + 1  # 1-based rank of the (j+1)-th true match among the kept images
            if j == 0:
                first = rank
            precision = (j + 1) / rank
            if trapezoid:
                previous = j / (rank - 1) if rank > 1 else 1.0
                ap += (precision + previous) / 2
            else:
                ap += precision
        return first, ap / n, n / rank

    @njit(parallel=True, cache=True, nogil=True)
    def rank_stats(dist, q_pids, g_pids, q_cams, g_cams, trapezoid, first, ap, inp):
        for b in prange(dist.shape[0]):
            match_buf = np.empty(dist.shape[1], dtype=dist.dtype)
            counts = np.empty(dist.shape[1] + 1, dtype=np.int64)
            first[b], ap[b], inp[b] = _row(dist[b], q_pids[b], q_cams[b], g_pids, g_cams, match_buf, counts,
                                           trapezoid)

    @njit(parallel=True, cache=True, nogil=True)
    def rank_stats_mixed(a, b_dist, keeps, lambdas, q_pids, g_pids, q_cams, g_cams, first, ap, inp):
        # For each lambda l: the ranks of a * (1 - l) + b * l, row by row, in float32 as torch computes it
        # (keeps[i] = float32(1 - l), lambdas[i] = float32(l): torch rounds each scalar to float32).
        n_gal = a.shape[1]
        for q in prange(a.shape[0]):
            d = np.empty(n_gal, dtype=f32)
            match_buf = np.empty(n_gal, dtype=f32)
            counts = np.empty(n_gal + 1, dtype=np.int64)
            for li in range(lambdas.shape[0]):
                lam, keep = lambdas[li], keeps[li]
                for g in range(n_gal):
                    d[g] = a[q, g] * keep + b_dist[q, g] * lam
                first[li, q], ap[li, q], inp[li, q] = _row(d, q_pids[q], q_cams[q], g_pids, g_cams, match_buf,
                                                           counts, False)

    return (join_min_sum, rank_stats, rank_stats_mixed, weighted_rows, expand_rows, transpose, merge_nearest,
            reciprocal_masks, join_min_sum_dense, compact)


def join_min_sum(q_ptr, q_col, q_val, c_ptr, c_row, c_val, out: np.ndarray) -> np.ndarray:
    """out (B, G) float32, zeroed, gets sum_k min(Vq[b, k], Vg[g, k]): Vq's rows in CSR and Vg's columns in CSC."""
    _kernels()[0](q_ptr, q_col, q_val, c_ptr, c_row, c_val, out)
    return out


def join_min_sum_dense(q_ptr, q_col, q_val, columns: np.ndarray, out: np.ndarray) -> np.ndarray:
    """`join_min_sum` with V's gallery columns dense, columns (N, G) float32: less work when columns are long."""
    _kernels()[8](q_ptr, q_col, q_val, columns, out)
    return out


def rank_stats(dist: np.ndarray, q_pids, g_pids, q_cams, g_cams, trapezoid: bool = False):
    """Per query: the 1-based rank of its first true match (0: none kept), its AP and its INP (`reid.evaluation`)."""
    nq = len(dist)
    first, ap, inp = np.empty(nq, np.int64), np.empty(nq), np.empty(nq)
    _kernels()[1](dist, q_pids, g_pids, q_cams, g_cams, trapezoid, first, ap, inp)
    return first, ap, inp


def rank_stats_mixed(a: np.ndarray, b: np.ndarray, lambdas, q_pids, g_pids, q_cams, g_cams):
    """`rank_stats` of `a * (1 - lambda) + b * lambda` for each lambda: arrays (len(lambdas), B)."""
    lambdas64 = np.asarray(lambdas, dtype=np.float64)
    keeps, lams = (1.0 - lambdas64).astype(np.float32), lambdas64.astype(np.float32)
    shape = (len(lams), len(a))
    first, ap, inp = np.empty(shape, np.int64), np.empty(shape), np.empty(shape)
    _kernels()[2](a, b, keeps, lams, q_pids, g_pids, q_cams, g_cams, first, ap, inp)
    return first, ap, inp


def _compact(cols: np.ndarray, vals: np.ndarray, sizes: np.ndarray):
    """(c, M) padded rows with their sizes -> CSR (ptr, col, val) for those rows."""
    ptr = np.zeros(len(sizes) + 1, dtype=np.int64)
    np.cumsum(sizes, out=ptr[1:])
    col, val = np.empty(ptr[-1], dtype=cols.dtype), np.empty(ptr[-1], dtype=vals.dtype)
    _kernels()[9](cols, vals, sizes, ptr, col, val)
    return ptr, col, val


def weighted_rows(feats: np.ndarray, sq: np.ndarray, knn: np.ndarray, knn_d: np.ndarray, row_max: np.ndarray,
                  k1: int, chunk: int = 8192, rows_per_task: int = 64):
    """V in CSR (ptr, col, val) for every image (`reid.reranking.weighted_sets`): one compiled loop per row; `sq` the
    squared norms of the features."""
    kh = int(round(k1 / 2))  # Python's round, like numpy.around: halves to even
    recip = np.empty((len(knn), k1 + 1), dtype=np.bool_)
    recip_half = np.empty((len(knn), kh + 1), dtype=np.bool_)
    _kernels()[7](knn, k1, recip)
    _kernels()[7](knn, kh, recip_half)
    width = (k1 + 1) * (kh + 2)  # R(i, k1) and, at most, an R(j, kh) for each member
    ptrs, cols_all, vals_all = [np.zeros(1, dtype=np.int64)], [], []
    for start in range(0, len(knn), chunk):
        c = min(chunk, len(knn) - start)
        cols, vals, sizes = np.empty((c, width), np.int64), np.empty((c, width), np.float32), np.empty(c, np.int64)
        _kernels()[3](feats, sq, knn, knn_d, row_max, recip, recip_half, start, rows_per_task, cols, vals, sizes)
        ptr, col, val = _compact(cols, vals, sizes)
        ptrs.append(ptr[1:] + ptrs[-1][-1])
        cols_all.append(col)
        vals_all.append(val)
    return np.concatenate(ptrs), np.concatenate(cols_all), np.concatenate(vals_all)


def expand_rows(ptr: np.ndarray, col: np.ndarray, val: np.ndarray, neighbours: np.ndarray, num_cols: int,
                chunk: int = 8192, rows_per_task: int = 64):
    """Rows of V_qe in CSR: row r is the mean of V's rows neighbours[r] (`reid.reranking.query_expansion`), its
    columns in the order first met."""
    lengths = np.diff(ptr)
    width = int(lengths[neighbours].sum(1).max()) if len(neighbours) else 0
    ptrs, cols_all, vals_all = [np.zeros(1, dtype=np.int64)], [], []
    for start in range(0, len(neighbours), chunk):
        nb = np.ascontiguousarray(neighbours[start:start + chunk])
        cols, vals, sizes = np.empty((len(nb), width), np.int64), np.empty((len(nb), width), np.float32), \
            np.empty(len(nb), np.int64)
        _kernels()[4](ptr, col, val, nb, num_cols, rows_per_task, cols, vals, sizes)
        p, c, v = _compact(cols, vals, sizes)
        ptrs.append(p[1:] + ptrs[-1][-1])
        cols_all.append(c)
        vals_all.append(v)
    return np.concatenate(ptrs), np.concatenate(cols_all), np.concatenate(vals_all)


def transpose(ptr: np.ndarray, col: np.ndarray, val: np.ndarray, num_cols: int):
    """CSR of a (rows, num_cols) matrix -> CSR of its transpose (rows in increasing order within a column)."""
    out_ptr = np.zeros(num_cols + 1, dtype=np.int64)
    out_col, out_val = np.empty(len(col), np.int64), np.empty(len(col), np.float32)
    _kernels()[5](ptr, col, val, num_cols, out_ptr, out_col, out_val)
    return out_ptr, out_col, out_val


def merge_nearest(d: np.ndarray, col0: int, best_d: np.ndarray, best_i: np.ndarray, row_max: np.ndarray) -> None:
    """Fold a block of distances d (A, B) to images col0... into the running k nearest (A, k) and row maxima, in
    place (`reid.reranking.nearest_neighbours`)."""
    _kernels()[6](d, col0, best_d, best_i, row_max)
