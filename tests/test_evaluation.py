import numpy as np
import pytest

from reid.evaluation import evaluate_rank


def test_hand_computed_example():
    # one query, pid 1, camera 0; gallery sorted by distance as listed
    dist = np.array([[0.1, 0.2, 0.3, 0.4, 0.5, 0.6]])
    g_pids = np.array([2, 1, 1, 3, 1, 1])
    g_cams = np.array([1, 0, 1, 1, 2, 1])  # the pid-1 image at index 1 is same camera: removed
    res = evaluate_rank(dist, [1], g_pids, [0], g_cams, max_rank=5)
    # kept ranking: 2, 1, 3, 1, 1 -> matches at ranks 2, 4, 5
    assert np.allclose(res.cmc, [0, 1, 1, 1, 1])
    assert res.mAP == pytest.approx((1 / 2 + 2 / 4 + 3 / 5) / 3)
    assert res.mINP == pytest.approx(3 / 5)
    assert res["mAP"] == res.mAP and res.num_valid == 1


def test_two_queries_and_a_skipped_one():
    dist = np.array([[0.3, 0.1, 0.2], [0.1, 0.2, 0.3], [0.5, 0.4, 0.6]])
    g_pids = np.array([1, 2, 1])
    g_cams = np.array([1, 1, 0])
    q_pids, q_cams = [1, 2, 3], [0, 0, 0]
    res = evaluate_rank(dist, q_pids, g_pids, q_cams, g_cams, max_rank=3)
    # q0 (pid 1, cam 0): gallery 2 is pid 1 cam 0 -> removed; order 1(pid2),0(pid1) -> match at rank 2
    # q1 (pid 2): order 0,1,2 -> pid2 at rank 2
    # q2 (pid 3): no match -> skipped
    assert res.num_valid == 2
    assert np.allclose(res.cmc, [0, 1, 1])
    assert res.mAP == pytest.approx(0.5)
    assert res.mINP == pytest.approx(0.5)


def test_perfect_ranking_scores_one():
    rng = np.random.default_rng(0)
    g_pids = np.repeat(np.arange(10), 3)
    g_cams = np.tile([1, 2, 3], 10)
    q_pids = np.arange(10)
    dist = np.where(q_pids[:, None] == g_pids[None, :], 0.0, 1.0) + rng.uniform(0, 0.1, (10, 30))
    res = evaluate_rank(dist, q_pids, g_pids, np.zeros(10), g_cams)
    assert res.mAP == pytest.approx(1.0) and res.mINP == pytest.approx(1.0) and res.cmc[0] == 1.0
    assert len(res.cmc) == 30  # gallery smaller than max_rank: the curve has one entry per gallery image


def test_short_gallery_after_removal_keeps_cmc_monotone():
    # 4 gallery images, 3 removed for the query (same pid and camera); max_rank 4
    dist = np.array([[0.1, 0.2, 0.3, 0.4]])
    res = evaluate_rank(dist, [5], [5, 5, 5, 5], [0], [0, 0, 0, 1], max_rank=4)
    assert np.allclose(res.cmc, [1, 1, 1, 1])
    assert np.all(np.diff(res.cmc) >= 0)


@pytest.mark.parametrize("args, match", [
    ((np.zeros((2, 3)), [1], [1, 2, 3], [0, 0], [1, 1, 1]), "q_pids has 1 entries"),
    ((np.zeros((2, 3)), [1, 2], [1, 2], [0, 0], [1, 1, 1]), "g_pids has 2 entries"),
    ((np.zeros((0, 3)), [], [1, 2, 3], [], [1, 1, 1]), "non-empty"),
    ((np.full((1, 2), np.nan), [1], [1, 2], [0], [1, 1]), "NaN"),
    ((np.zeros(3), [1], [1, 2, 3], [0], [1, 1, 1]), "2-D"),
    ((np.zeros((1, 2)), [1], [2, 3], [0], [1, 1]), "no query has a true match"),
])
def test_bad_input(args, match):
    with pytest.raises(ValueError, match=match):
        evaluate_rank(*args)
