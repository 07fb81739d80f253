import pytest
import torch

from reid.toy import toy_data, train_toy_embedding


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
