import math

import pytest
import torch

from reid.toy import spread_ratios, toy_data, train_toy_embedding


def test_toy_splits_share_classes_not_samples():
    x0, y0 = toy_data(per_class=10, split=0)
    x1, y1 = toy_data(per_class=10, split=1)
    assert torch.equal(y0, y1) and not torch.isclose(x0, x1).all(dim=1).any()


@pytest.mark.parametrize("loss", ["triplet", "arcface"])
def test_toy_embedding_separates_classes(loss):
    emb, labels = train_toy_embedding(loss, steps=150)
    assert emb.shape == (len(labels), 2)
    centroids = torch.stack([emb[labels == c].mean(0) for c in range(int(labels.max()) + 1)])
    if loss == "arcface":  # classes are separated by angle
        emb, centroids = torch.nn.functional.normalize(emb), torch.nn.functional.normalize(centroids)
    nearest = torch.cdist(emb, centroids).argmin(1)
    assert (nearest == labels).float().mean() > 0.9


def test_unknown_toy_loss():
    with pytest.raises(ValueError, match="unknown"):
        train_toy_embedding("contrastive")


def test_spread_ratios_by_hand():
    # class 0 at (1, 1) and (1, -1): centroid (1, 0), each point 1 away and 45 degrees off its direction;
    # class 1 at (0, 2) and (0, 4): centroid (0, 3), each point 1 away and on its direction (90 degrees).
    emb = torch.tensor([[1.0, 1.0], [1.0, -1.0], [0.0, 2.0], [0.0, 4.0]])
    labels = torch.tensor([0, 0, 1, 1])
    by_distance, by_angle = spread_ratios(emb, labels)
    assert by_distance == pytest.approx(1 / math.sqrt(10))  # mean within 1, centroids sqrt(1 + 9) apart
    assert by_angle == pytest.approx((math.pi / 8) / (math.pi / 2))  # mean within 45/2 degrees, directions 90 apart
    assert spread_ratios(10 * emb, labels) == pytest.approx((by_distance, by_angle))  # free of the scale


def test_toy_constants_reach_the_losses_and_threads_are_restored():
    threads = torch.get_num_threads()
    plain, labels = train_toy_embedding("softmax", steps=150)
    smoothed, _ = train_toy_embedding("softmax", steps=150, label_smoothing=0.1)
    assert torch.get_num_threads() == threads
    # plain cross-entropy gains from an ever larger radius; smoothed targets are met at a finite one
    assert smoothed.norm(dim=1).max() < 0.5 * plain.norm(dim=1).max()
    heavy, _ = train_toy_embedding("softmax+center", steps=150, center_weight=1.0)
    assert heavy.norm(dim=1).max() < 0.5 * plain.norm(dim=1).max()
