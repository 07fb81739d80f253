"""Baselines without learning: the colour histogram and the exact chance level."""

import itertools

import numpy as np
import pytest

from reid.baselines import chance_scores, color_histogram
from reid.evaluation import evaluate_rank


def test_chance_scores_are_the_mean_over_every_order():
    """Averaged over all 7! orders of a 7-image gallery, evaluate_rank gives exactly chance_scores's values."""
    g_pids = np.array([1, 1, 1, 2, 2, 3, 0])
    g_cams = np.array([0, 1, 2, 0, 1, 1, 2])
    q_pids, q_cams = np.array([1, 2, 3, 1]), np.array([0, 1, 1, 2])  # query 2 (pid 3, cam 1) keeps no match
    orders = np.array(list(itertools.permutations(range(7))), dtype=float)  # (5040, 7): each a distance row
    # every query meets every order once: one evaluation of 5040 x 4 query rows averages over all of them
    dist = np.repeat(orders, len(q_pids), axis=0)  # (20160, 7)
    reps = len(orders)
    runs = evaluate_rank(dist, np.tile(q_pids, reps), g_pids, np.tile(q_cams, reps), g_cams, max_rank=7)
    exact = chance_scores(q_pids, g_pids, q_cams, g_cams, max_rank=7)
    assert exact.num_valid == 3 and runs.num_valid == 3 * reps
    np.testing.assert_allclose(exact.cmc, runs.cmc, atol=1e-9)
    assert exact.mAP == pytest.approx(runs.mAP, abs=1e-9)
    assert exact.mINP == pytest.approx(runs.mINP, abs=1e-9)


def test_chance_scores_need_a_match():
    with pytest.raises(ValueError, match="no query has a true match"):
        chance_scores([1], [1, 2], [0], [0, 1])


def test_colour_histogram_distance_is_hellinger():
    rng = np.random.default_rng(0)
    a, b = (rng.integers(0, 256, (16, 8, 3), dtype=np.uint8) for _ in range(2))
    ha, hb = color_histogram(a, bins=4), color_histogram(b, bins=4)
    pa, pb = ha**2, hb**2  # the normalised histograms
    hellinger = np.sqrt(0.5 * np.sum((np.sqrt(pa) - np.sqrt(pb)) ** 2))
    assert np.linalg.norm(ha - hb) == pytest.approx(np.sqrt(2) * hellinger, rel=1e-5)
    assert pa.sum() == pytest.approx(1.0)
