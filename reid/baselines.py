"""Baselines without learning, to know what a trained network has to beat."""

from __future__ import annotations

from typing import Sequence

import numpy as np
from tqdm.auto import tqdm

from .data.loaders import read_image
from .evaluation import RankResult


def color_histogram(img: np.ndarray, bins: int = 8, stripes: int = 1) -> np.ndarray:
    """Joint RGB histogram of an (H, W, 3) uint8 image, optionally per horizontal stripe.

    Returns the square roots of the L1-normalised counts, concatenated over stripes, so that
    the Euclidean distance between two of them is the Hellinger distance between the
    histograms (times sqrt(2)).
    """
    q = img.astype(np.int64) * bins // 256  # (H, W, 3) bin per channel
    index = (q[..., 0] * bins + q[..., 1]) * bins + q[..., 2]  # (H, W) joint bin
    parts = []
    for band in np.array_split(index, stripes, axis=0):
        counts = np.bincount(band.ravel(), minlength=bins**3).astype(np.float32)
        parts.append(np.sqrt(counts / max(counts.sum(), 1.0)))
    return np.concatenate(parts) / np.sqrt(stripes)


def color_histogram_features(paths: Sequence[str], bins: int = 8, stripes: int = 1,
                             size: tuple[int, int] = (128, 64), progress: bool | None = None) -> np.ndarray:
    """(N, stripes * bins**3) colour-histogram features of image files, resized to `size` (H, W).

    A progress bar shows when `progress` is True, or by default past 5,000 images (a few seconds).
    """
    feats = []
    show = progress if progress is not None else len(paths) > 5000
    for path in tqdm(paths, desc="colour histograms", leave=False, mininterval=1.0, disable=not show):
        img = read_image(path).resize((size[1], size[0]))
        feats.append(color_histogram(np.asarray(img), bins, stripes))
    return np.stack(feats)



def chance_scores(q_pids, g_pids, q_camids, g_camids, max_rank: int = 50) -> RankResult:
    """The expected scores of a random ranking under the Market-1501 protocol: the exact chance level.

    For a query whose ranked list keeps n gallery images (its own camera's images of its person removed), m of
    them true matches, a uniformly random order gives: Rank-k = 1 - C(n-m, k) / C(n, k);
    AP = (H_n + (m-1)/(n-1) (n - H_n)) / n, with H_n the n-th harmonic number (AP as `evaluate_rank` computes
    it); INP = sum over r of (m/r) C(r-1, m-1) / C(n, m), r being the rank of the hardest match. Averaged over
    the queries that keep a match, as `evaluate_rank` averages; one random draw scatters around these values.
    """
    q_pids, g_pids, q_camids, g_camids = (np.asarray(a).ravel() for a in (q_pids, g_pids, q_camids, g_camids))
    cmcs, aps, inps = [], [], []
    for pid, cam in zip(q_pids, q_camids):
        kept = ~((g_pids == pid) & (g_camids == cam))
        n, m = int(kept.sum()), int((kept & (g_pids == pid)).sum())
        if m == 0:
            continue  # no true match left: skipped, as evaluate_rank skips it
        k = np.arange(1, max_rank + 1)
        miss = np.cumprod(np.clip((n - m - k + 1) / np.maximum(n - k + 1, 1), 0, 1))  # P(no match in the first k), k = 1..
        cmcs.append(1 - miss)
        h = np.sum(1 / np.arange(1, n + 1))
        aps.append((h + (m - 1) / max(n - 1, 1) * (n - h)) / n)
        r = np.arange(m, n + 1)  # possible ranks of the hardest match
        log_c = np.concatenate([[0.0], np.cumsum(np.log((r[1:] - 1) / (r[1:] - m)))])  # log C(r-1, m-1)
        p = np.exp(log_c - log_c.max())
        inps.append(float(np.sum(m / r * p) / p.sum()))  # P(hardest at r) = C(r-1, m-1) / C(n, m)
    if not cmcs:
        raise ValueError("no query has a true match in the gallery from another camera: nothing to evaluate")
    return RankResult(np.mean(cmcs, axis=0), float(np.mean(aps)), float(np.mean(inps)), len(cmcs))
