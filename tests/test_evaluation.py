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


def test_pairwise_distance_matches_brute_force_in_chunks():
    import torch

    from reid.evaluation import pairwise_distance

    g = torch.Generator().manual_seed(0)
    q, gal = torch.randn(37, 16, generator=g), torch.randn(53, 16, generator=g)
    brute = ((q[:, None, :] - gal[None, :, :]) ** 2).sum(-1)
    assert torch.allclose(pairwise_distance(q, gal, "euclidean", chunk_size=5), brute, atol=1e-4)
    cos = 1 - torch.nn.functional.cosine_similarity(q[:, None, :], gal[None, :, :], dim=-1)
    assert torch.allclose(pairwise_distance(q, gal, "cosine", chunk_size=8), cos, atol=1e-5)
    assert (pairwise_distance(q, q) >= 0).all()  # clamped: no tiny negative self-distances
    with pytest.raises(ValueError, match="metric='manhattan' is unknown"):
        pairwise_distance(q, gal, "manhattan")
    with pytest.raises(ValueError, match="same d"):
        pairwise_distance(q, gal[:, :8])


def test_extract_features_flip_adds_the_mirror_image():
    import torch
    from torch import nn

    from reid.evaluation import evaluate_features, extract_features

    class LeftHalf(nn.Module):  # a "model" that sees only the left half of the image
        def forward(self, x):
            return x[..., : x.shape[-1] // 2].mean(dim=(2, 3))

    images = torch.rand(6, 3, 4, 4)
    loader = [(images[:4], torch.tensor([1, 1, 2, 2]), torch.tensor([0, 1, 0, 1]), ["a"] * 4),
              (images[4:], torch.tensor([3, 3]), torch.tensor([0, 1]), ["b"] * 2)]
    plain, pids, camids = extract_features(LeftHalf(), loader)
    flipped, _, _ = extract_features(LeftHalf(), loader, flip=True)
    assert plain.shape == (6, 3) and pids.tolist() == [1, 1, 2, 2, 3, 3] and camids.tolist() == [0, 1, 0, 1, 0, 1]
    assert torch.allclose(flipped, images.mean(dim=(2, 3)) * 2, atol=1e-6)  # left half + right half = whole
    with pytest.raises(ValueError, match="contain NaN"):
        evaluate_features(torch.full((6, 3), float("nan")), pids, camids, num_query=2)
