import math

import pytest
import torch

from reid import Config
from reid.losses import (CenterLoss, euclidean_dist, hard_example_mining, id_loss, make_loss, rescale_center_grads,
                         smoothed_targets, triplet_loss)


def pk_batch(p=3, k=3, d=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(p * k, d, generator=g), torch.arange(p).repeat_interleave(k)


def test_label_smoothing_equals_the_papers_targets():
    torch.manual_seed(0)
    logits, labels = torch.randn(5, 7), torch.tensor([0, 3, 6, 2, 2])
    q = smoothed_targets(labels, 7, 0.1)
    assert q[0, 0].item() == pytest.approx(1 - 6 * 0.1 / 7)
    assert q[0, 1].item() == pytest.approx(0.1 / 7)
    by_hand = -(q * logits.log_softmax(1)).sum(1).mean()
    assert id_loss(0.1)(logits, labels).item() == pytest.approx(by_hand.item(), rel=1e-6)


def test_euclidean_dist_matches_cdist_and_has_finite_gradient_at_zero():
    x = torch.randn(5, 3, dtype=torch.float64)
    assert torch.allclose(euclidean_dist(x, x).double(), torch.cdist(x, x), atol=1e-3)
    y = torch.zeros(2, 3, requires_grad=True)
    euclidean_dist(y, y).sum().backward()
    assert torch.isfinite(y.grad).all()


def test_mined_pairs_are_the_true_hardest():
    feat, labels = pk_batch(4, 3, 5)
    dist = euclidean_dist(feat, feat)
    d_ap, d_an, p_idx, n_idx = hard_example_mining(dist, labels)
    for i in range(len(labels)):
        pos = [j for j in range(len(labels)) if labels[j] == labels[i] and j != i]
        neg = [j for j in range(len(labels)) if labels[j] != labels[i]]
        assert int(p_idx[i]) == max(pos, key=lambda j: dist[i, j])
        assert int(n_idx[i]) == min(neg, key=lambda j: dist[i, j])
        assert d_ap[i] == dist[i, p_idx[i]] and d_an[i] == dist[i, n_idx[i]]


def test_triplet_loss_by_hand_and_hem():
    # 1-D features: identity 0 at 0 and 1, identity 1 at 1.5 and 4
    feat, labels = torch.tensor([[0.0], [1.0], [1.5], [4.0]]), torch.tensor([0, 0, 1, 1])
    # anchors: d_ap = 1, 1, 2.5, 2.5 ; d_an = 1.5, 0.5, 0.5, 3
    loss, d_ap, d_an = triplet_loss(feat, labels, margin=0.3)
    expected = (max(0, 1 - 1.5 + 0.3) + max(0, 1 - 0.5 + 0.3) + max(0, 2.5 - 0.5 + 0.3) + max(0, 2.5 - 3 + 0.3)) / 4
    assert loss.item() == pytest.approx(expected, abs=1e-5)
    a = 0.2
    hem, _, _ = triplet_loss(feat, labels, margin=0.3, hard_factor=a)
    by_hand = sum(max(0, (1 + a) * p - (1 - a) * n + 0.3) for p, n in [(1, 1.5), (1, 0.5), (2.5, 0.5), (2.5, 3)]) / 4
    assert hem.item() == pytest.approx(by_hand, abs=1e-5)
    soft, _, _ = triplet_loss(feat, labels, margin=0.0)
    assert soft.item() == pytest.approx(sum(math.log1p(math.exp(p - n)) for p, n in
                                            [(1, 1.5), (1, 0.5), (2.5, 0.5), (2.5, 3)]) / 4, abs=1e-5)


def test_hem_zero_is_batch_hard():
    feat, labels = pk_batch()
    a, _, _ = triplet_loss(feat, labels, hard_factor=0.0)
    dist = torch.cdist(feat, feat)
    same = labels[:, None] == labels[None, :]
    d_ap = dist.masked_fill(~same, -1).max(1).values
    d_an = dist.masked_fill(same, 1e9).min(1).values
    assert a.item() == pytest.approx(torch.relu(d_ap - d_an + 0.3).mean().item(), abs=1e-5)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_gradients_finite_under_amp_dtypes(dtype):
    feat, labels = pk_batch(4, 4, 16)
    feat = feat.to(dtype).requires_grad_(True)
    cfg = Config.smoke(loss_type="triplet+softmax+center", hard_factor=0.2)
    loss_fn = make_loss(cfg, 4, 16)
    logits = (feat.float() @ torch.randn(16, 4)).to(dtype)
    total, parts = loss_fn(logits, feat, labels)
    total.backward()
    assert torch.isfinite(total) and torch.isfinite(feat.grad.float()).all()
    assert set(parts) == {"id", "triplet", "center"}


def test_batch_without_positive_or_negative():
    feat = torch.randn(3, 4)
    with pytest.raises(ValueError, match="no positive"):
        triplet_loss(feat, torch.tensor([0, 1, 1]))
    with pytest.raises(ValueError, match="no negative"):
        triplet_loss(feat, torch.tensor([1, 1, 1]))


def test_labels_outside_range():
    cfg = Config.smoke(loss_type="softmax+center")
    loss_fn = make_loss(cfg, 3, 4)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 3\)"):
        loss_fn(torch.randn(2, 3), torch.randn(2, 4), torch.tensor([0, 3]))
    with pytest.raises(ValueError, match="labels must lie"):
        smoothed_targets(torch.tensor([-1]), 3, 0.1)


def test_unknown_loss_name():
    cfg = Config.smoke()
    cfg.loss_type = "triplet+focal"
    with pytest.raises(ValueError, match="loss_type='triplet\\+focal' is unknown"):
        make_loss(cfg, 3, 4)


def test_make_loss_weighs_each_part_by_its_setting():
    """Each part, computed by hand here, enters the total with its own weight from the config."""
    feat, labels = pk_batch(2, 2, 4)  # a PK batch: 2 identities x 2 images, 4-d features
    logits = torch.tensor([[2.0, -1.0], [0.5, 0.0], [-1.0, 1.5], [0.0, 0.3]])
    w_id, w_tri, beta, eps, margin = 2.0, 3.0, 0.01, 0.1, 0.3
    cfg = Config.smoke(id_loss_weight=w_id, triplet_loss_weight=w_tri, center_loss_weight=beta, label_smoothing=eps,
                       margin=margin)
    loss_fn = make_loss(cfg, 2, 4)
    with torch.no_grad():
        loss_fn.center.centers.copy_(torch.tensor([[1.0, 0.0, 0.0, 0.0], [0.0, -1.0, 0.5, 0.0]]))

    q = torch.full((4, 2), eps / 2)
    q[torch.arange(4), labels] += 1 - eps
    by_hand_id = -(q * logits.log_softmax(1)).sum(1).mean()
    d = torch.cdist(feat.double(), feat.double())
    same = labels[:, None] == labels[None, :]
    by_hand_tri = sum(max(0.0, d[i][same[i]].max().item() - d[i][~same[i]].min().item() + margin)
                      for i in range(4)) / 4
    by_hand_center = (feat - loss_fn.center.centers.detach()[labels]).pow(2).sum(1).mean()

    total, parts = loss_fn(logits, feat, labels)
    assert parts["id"].item() == pytest.approx(w_id * by_hand_id.item(), rel=1e-5)
    assert parts["triplet"].item() == pytest.approx(w_tri * by_hand_tri, rel=1e-4)
    assert parts["center"].item() == pytest.approx(beta * by_hand_center.item(), rel=1e-5)
    assert total.item() == pytest.approx(w_id * by_hand_id.item() + w_tri * by_hand_tri
                                         + beta * by_hand_center.item(), rel=1e-4)
    for name, expected in [("softmax", {"id"}), ("triplet+softmax", {"id", "triplet"}),
                           ("softmax+center", {"id", "center"})]:
        assert set(make_loss(Config.smoke(loss_type=name), 2, 4)(logits, feat, labels)[1]) == expected


def test_center_loss_value_and_gradient_rescaling():
    feat, labels = torch.tensor([[1.0, 0.0], [0.0, 2.0]]), torch.tensor([0, 1])
    center = CenterLoss(2, 2)
    with torch.no_grad():
        center.centers.zero_()
    assert center(feat, labels).item() == pytest.approx((1 + 4) / 2)
    beta = 5e-4
    (beta * center(feat, labels)).backward()
    rescale_center_grads(center, beta)
    # d/dc of mean ||f - c||^2 = -2 (f - c) / N: the weight beta is divided back out
    assert torch.allclose(center.centers.grad, -2 * feat / 2, atol=1e-5)
