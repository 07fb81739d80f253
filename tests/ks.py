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
