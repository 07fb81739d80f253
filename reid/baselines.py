"""Baselines without learning, to know what a trained network has to beat."""

from __future__ import annotations

from typing import Sequence

import numpy as np
from tqdm.auto import tqdm

from .data.loaders import read_image


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

