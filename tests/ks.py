"""Two-sample Kolmogorov-Smirnov test for the augmentation laws (no SciPy needed)."""

import numpy as np


def ks_statistic(a, b) -> float:
    """The largest gap between the two samples' empirical CDFs."""
    a, b = np.sort(np.asarray(a, dtype=np.float64)), np.sort(np.asarray(b, dtype=np.float64))
    grid = np.concatenate([a, b])
    return float(np.abs(np.searchsorted(a, grid, "right") / len(a) - np.searchsorted(b, grid, "right") / len(b)).max())


def ks_critical(n: int, m: int, alpha: float = 1e-3) -> float:
    """The statistic above which two samples of sizes n and m differ at level `alpha` (asymptotic)."""
    return float(np.sqrt(-np.log(alpha / 2) / 2) * np.sqrt((n + m) / (n * m)))


def box_stats(boxes, height: int, width: int) -> dict:
    """Erasing boxes (n, 4): top, left, h, w as the quantities their law fixes: relative area, h / w, position."""
    b = np.asarray(boxes, dtype=np.float64)
    return {"area": b[:, 2] * b[:, 3] / (height * width), "h/w": b[:, 2] / b[:, 3],
            "top": b[:, 0] / (height - b[:, 2]), "left": b[:, 1] / (width - b[:, 3])}


def assert_same_box_law(ours, theirs, height: int, width: int) -> None:
    """Each quantity of `box_stats` passes the two-sample test at level 0.001."""
    a, b = box_stats(ours, height, width), box_stats(theirs, height, width)
    critical = ks_critical(len(ours), len(theirs))
    for name in a:
        assert ks_statistic(a[name], b[name]) < critical, name
