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

    from reid.evaluation import evaluate_features, extract_features, extract_plain_and_flipped

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
    both = extract_plain_and_flipped(LeftHalf(), loader)  # one pass, both: the same bits as two passes
    assert torch.equal(both[0], plain) and torch.equal(both[1], flipped) and both[2].tolist() == pids.tolist()
    with pytest.raises(ValueError, match="contain NaN"):
        evaluate_features(torch.full((6, 3), float("nan")), pids, camids, num_query=2)


# --------------------------------------------------------------------------------------
# The vectorised evaluate_rank against straightforward per-query references
# --------------------------------------------------------------------------------------
def reference_rank(distmat, q_pids, g_pids, q_camids, g_camids, max_rank=50, ap_rule="python"):
    """Per query: sort the gallery, drop same person + same camera, walk the list (the seed's way)."""
    length = min(max_rank, distmat.shape[1])
    all_cmc, all_ap, all_inp = [], [], []
    for i in range(distmat.shape[0]):
        order = np.argsort(distmat[i], kind="stable")
        keep = ~((g_pids[order] == q_pids[i]) & (g_camids[order] == q_camids[i]))
        matches = (g_pids[order][keep] == q_pids[i]).astype(np.float64)
        if not matches.any():
            continue
        hits = matches.cumsum()
        cmc = np.minimum(hits, 1.0)[:length]
        if len(cmc) < length:
            cmc = np.concatenate([cmc, np.full(length - len(cmc), cmc[-1])])
        all_cmc.append(cmc)
        positions = np.flatnonzero(matches) + 1.0
        if ap_rule == "python":
            all_ap.append(np.mean(hits[matches > 0] / positions))
        else:  # the Market-1501 MATLAB compute_AP.m, walked item by item
            ngood, old_recall, old_precision, ap, found = matches.sum(), 0.0, 1.0, 0.0, 0
            for n, m in enumerate(matches):
                found += m
                recall, precision = found / ngood, found / (n + 1)
                ap += (recall - old_recall) * (old_precision + precision) / 2
                old_recall, old_precision = recall, precision
                if found == ngood:
                    break
            all_ap.append(ap)
        all_inp.append(matches.sum() / positions[-1])
    if not all_cmc:
        return None
    return np.mean(all_cmc, axis=0), float(np.mean(all_ap)), float(np.mean(all_inp)), len(all_cmc)


def random_problem(seed, nq, ng, n_ids, n_cams=3, max_rank=50):
    rng = np.random.default_rng(seed)
    q_pids, g_pids = rng.integers(0, n_ids, nq), rng.integers(0, n_ids, ng)
    q_cams, g_cams = rng.integers(0, n_cams, nq), rng.integers(0, n_cams, ng)
    dist = rng.random((nq, ng)) + 0.5 * (q_pids[:, None] != g_pids[None, :])  # some identity structure, no ties
    return dist, q_pids, g_pids, q_cams, g_cams


@pytest.mark.parametrize("compiled", [True, False], ids=["numba", "tensors"])
@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("ap_rule", ["python", "trapezoid"])
def test_vectorised_equals_reference_on_random_problems(seed, ap_rule, compiled):
    """Both ways of `rank_statistics` against a sort per query; the last seeds have one to three identities, so
    that queries have more than 32 true matches (the compiled loop's other way)."""
    rng = np.random.default_rng(1000 + seed)
    nq, ng = int(rng.integers(1, 60)), int(rng.integers(1, 120)) + (200 if seed >= 9 else 0)
    n_ids = int(rng.integers(1, 25)) if seed < 9 else seed - 8
    max_rank = int(rng.choice([1, 5, 50, 200]))
    problem = random_problem(seed, nq, ng, n_ids)
    ref = reference_rank(*problem, max_rank=max_rank, ap_rule=ap_rule)
    if ref is None:  # no query has a valid match: refuse
        with pytest.raises(ValueError, match="no query has a true match"):
            evaluate_rank(*problem, max_rank=max_rank, ap_rule=ap_rule, compiled=compiled)
        return
    res = evaluate_rank(*problem, max_rank=max_rank, ap_rule=ap_rule, chunk_size=7, compiled=compiled)
    assert res.num_valid == ref[3]
    np.testing.assert_allclose(res.cmc, ref[0], atol=1e-6)
    assert res.mAP == pytest.approx(ref[1], abs=1e-6) and res.mINP == pytest.approx(ref[2], abs=1e-6)


def test_trapezoid_rule_scores_lower_and_by_hand():
    # one query, matches at ranks 2 and 4 of 4 kept images
    dist, g_pids, g_cams = np.array([[0.1, 0.2, 0.3, 0.4]]), np.array([2, 1, 3, 1]), np.array([1, 1, 1, 1])
    python = evaluate_rank(dist, [1], g_pids, [0], g_cams).mAP
    trapezoid = evaluate_rank(dist, [1], g_pids, [0], g_cams, ap_rule="trapezoid").mAP
    assert python == pytest.approx((1 / 2 + 2 / 4) / 2)
    # recall steps of 1/2 at ranks 2 and 4: (0 + 1/2)/2 and (1/3 + 2/4)/2 as the trapezoid heights
    assert trapezoid == pytest.approx(0.5 * (0 + 0.5) / 2 + 0.5 * (1 / 3 + 0.5) / 2)
    assert trapezoid < python
    with pytest.raises(ValueError, match="ap_rule='simpson' is unknown"):
        evaluate_rank(dist, [1], g_pids, [0], g_cams, ap_rule="simpson")


def test_torch_inputs_and_a_query_without_matches():
    import torch

    dist, q_pids, g_pids, q_cams, g_cams = random_problem(3, 20, 40, 6)
    q_pids[0] = 99  # no true match: skipped, as in the reference
    ref = reference_rank(dist, q_pids, g_pids, q_cams, g_cams)
    res = evaluate_rank(torch.from_numpy(dist), torch.from_numpy(q_pids), torch.from_numpy(g_pids),
                        torch.from_numpy(q_cams), torch.from_numpy(g_cams))
    assert res.num_valid == ref[3] == 19 and res.mAP == pytest.approx(ref[1], abs=1e-6)


def test_autocast_picks_bfloat16_only_where_the_gpu_has_it_natively(monkeypatch):
    import torch

    from reid.evaluation import autocast_dtype

    cuda = torch.device("cuda")
    monkeypatch.setattr(torch.version, "hip", None)
    # A T4 (compute capability 7.5): bfloat16 only by emulation, slowly; float16 with a gradient scaler.
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (7, 5))
    assert autocast_dtype(cuda) == torch.float16
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (8, 0))  # an A100; an H100 is 9.0
    assert autocast_dtype(cuda) == torch.bfloat16
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (7, 5))
    monkeypatch.setattr(torch.version, "hip", "6.2")  # AMD GPUs under ROCm have bfloat16
    assert autocast_dtype(cuda) == torch.bfloat16
    assert autocast_dtype(cuda, amp=False) is None and autocast_dtype(torch.device("cpu")) is None


def test_feature_extraction_leaves_no_loader_workers_running(tiny_root, monkeypatch):
    """In Jupyter, tqdm.auto made an iterator of its own from the loader it wrapped, kept it and
    never ran it: its workers stayed alive until the garbage collector, possibly inside the next
    loader's forked workers ("can only test a child process"). Imitate that tqdm."""
    import multiprocessing as mp

    import reid.evaluation as evaluation
    from reid import Config
    from reid.data import make_dataloaders
    from reid.model import Baseline

    kept, real_tqdm = [], evaluation.tqdm

    def notebook_like_tqdm(iterable, **kwargs):
        kept.append(iter(iterable))
        return real_tqdm(iterable, **kwargs)

    monkeypatch.setattr(evaluation, "tqdm", notebook_like_tqdm)
    cfg = Config.smoke(data_root=str(tiny_root.parent), synthetic_preset="tiny", val_identities=0, num_workers=2)
    _, loader, _, _ = make_dataloaders(cfg)
    model = Baseline.from_config(cfg, num_classes=24)
    feats, _, _ = evaluation.extract_features(model, loader, "cpu", progress=True)
    assert len(feats) == len(loader.dataset) and kept
    assert mp.active_children() == []


@pytest.mark.parametrize("compiled", [True, False], ids=["numba", "tensors"])
def test_ties_rank_the_true_match_first(compiled):
    """The documented tie rule: a true match ties ahead of an impostor at the same distance (a sort that
    breaks ties by gallery position, as person-reid-tiny-baseline's np.argsort may, can order them either way)."""
    dist = np.array([[0.5, 0.5, 0.7, 0.9, 0.5]])
    g_pids, g_cams = np.array([2, 1, 3, 1, 1]), np.array([1, 1, 1, 1, 0])  # the last: same camera, removed
    res = evaluate_rank(dist, [1], g_pids, [0], g_cams, max_rank=4, compiled=compiled)
    # kept order: match (0.5), impostor (0.5), impostor (0.7), match (0.9) -> ranks 1 and 4
    assert res.cmc.tolist() == [1.0, 1.0, 1.0, 1.0]
    assert res.mAP == pytest.approx((1 / 1 + 2 / 4) / 2) and res.mINP == pytest.approx(2 / 4)
    # the tie decides Rank-1: the impostor a hair closer takes it, a hair farther leaves it to the match
    nudge = np.array([[1e-6, 0, 0, 0, 0]])
    assert evaluate_rank(dist - nudge, [1], g_pids, [0], g_cams, max_rank=4, compiled=compiled).cmc[0] == 0.0
    assert evaluate_rank(dist + nudge, [1], g_pids, [0], g_cams, max_rank=4,
                         compiled=compiled).mAP == pytest.approx(res.mAP)


def test_numba_is_optional_and_can_be_switched_off(monkeypatch):
    from reid import kernels

    monkeypatch.setenv("REID_NUMBA", "0")
    assert not kernels.available() and not kernels.use_compiled(None) and kernels.use_compiled(True)
    monkeypatch.delenv("REID_NUMBA")
    monkeypatch.setattr(kernels, "_numba", lambda: None)  # as if numba were not installed
    assert not kernels.available() and not kernels.use_compiled(None)
    with pytest.raises(ImportError, match="compiled=True needs numba: pip install numba"):
        kernels.use_compiled(True)
    dist, q_pids, g_pids, q_cams, g_cams = random_problem(4, 30, 60, 5)
    assert evaluate_rank(dist, q_pids, g_pids, q_cams, g_cams).mAP == pytest.approx(
        reference_rank(dist, q_pids, g_pids, q_cams, g_cams)[1], abs=1e-12)


def test_minp_can_exceed_map():
    """Two true matches at ranks 50 and 51: AP = (1/50 + 2/51) / 2 = 0.030, INP = 2/51 = 0.039."""
    g_pids = np.array([1] * 2 + [2] * 49)
    dist = np.concatenate([[50.0, 51.0], np.arange(1, 50, dtype=np.float64)])[None, :]  # impostors at 1..49
    res = evaluate_rank(dist, [1], g_pids, [0], np.ones(51, dtype=int))
    assert res.mAP == pytest.approx((1 / 50 + 2 / 51) / 2) and res.mINP == pytest.approx(2 / 51)
    assert res.mINP > res.mAP


@pytest.mark.parametrize("seed", range(6))
def test_the_plain_loop_of_chapter_6_gives_the_vectorised_scores(seed):
    from reid.evaluation import evaluate_rank_loop

    rng = np.random.default_rng(2000 + seed)
    nq, ng, n_ids = int(rng.integers(5, 60)), int(rng.integers(5, 120)), int(rng.integers(2, 20))
    problem = random_problem(seed, nq, ng, n_ids)
    max_rank = int(rng.choice([1, 5, 50, 200]))
    try:
        fast = evaluate_rank(*problem, max_rank=max_rank)
    except ValueError:
        with pytest.raises(ValueError, match="no query has a true match"):
            evaluate_rank_loop(*problem, max_rank=max_rank)
        return
    slow = evaluate_rank_loop(*problem, max_rank=max_rank)
    assert slow.num_valid == fast.num_valid
    np.testing.assert_allclose(slow.cmc, fast.cmc, atol=1e-12)
    assert slow.mAP == pytest.approx(fast.mAP, abs=1e-12) and slow.mINP == pytest.approx(fast.mINP, abs=1e-12)
