"""A toy re-id problem in two dimensions, to *see* what each loss does to an embedding.

Each class is a random prototype in 16-D observed through noise; a small MLP maps the
observations to a 2-D embedding, which is drawn. Training takes a second or two on a CPU.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .losses import CenterLoss, rescale_center_grads, triplet_loss
from .model import ArcFace

TOY_LOSSES = ("softmax", "triplet", "softmax+center", "arcface")


def toy_data(num_classes: int = 8, per_class: int = 60, dim: int = 16, noise: float = 0.6, seed: int = 0,
             split: int = 0):
    """(inputs (N, dim), labels (N,)): noisy observations of one random prototype per class.

    The prototypes depend on `seed` only; the noise on (`seed`, `split`), so split 1 is a
    test set of the same classes that shares no sample with split 0.
    """
    protos = torch.randn(num_classes, dim, generator=torch.Generator().manual_seed(seed))
    labels = torch.arange(num_classes).repeat_interleave(per_class)
    g = torch.Generator().manual_seed(10_000 * (seed + 1) + split)
    x = protos[labels] + noise * torch.randn(len(labels), dim, generator=g)
    return x, labels


def train_toy_embedding(loss: str, steps: int = 400, num_classes: int = 8, seed: int = 0,
                        center_weight: float = 0.3) -> tuple[torch.Tensor, torch.Tensor]:
    """Train a 16 -> 64 -> 2 MLP with one loss on PK batches (P=8, K=8); return (2-D test embedding, labels)."""
    if loss not in TOY_LOSSES:
        raise ValueError(f"loss={loss!r} is unknown; choose one of {', '.join(TOY_LOSSES)}")
    torch.manual_seed(seed)
    x, y = toy_data(num_classes, seed=seed)
    x_test, y_test = toy_data(num_classes, per_class=40, seed=seed, split=1)
    net = nn.Sequential(nn.Linear(x.shape[1], 64), nn.ReLU(), nn.Linear(64, 2))
    head = ArcFace(2, num_classes, s=10.0, m=0.3) if loss == "arcface" else nn.Linear(2, num_classes)
    center = CenterLoss(num_classes, 2) if "center" in loss else None
    opt = torch.optim.Adam(list(net.parameters()) + list(head.parameters()), lr=1e-2)
    opt_center = torch.optim.SGD(center.parameters(), lr=0.5) if center is not None else None
    g = torch.Generator().manual_seed(seed)
    per_class = len(y) // num_classes
    for _ in range(steps):
        idx = torch.cat([c * per_class + torch.randperm(per_class, generator=g)[:8] for c in range(num_classes)])
        emb, lab = net(x[idx]), y[idx]
        if loss == "triplet":
            total = triplet_loss(emb, lab, margin=0.3)[0]
        elif loss == "arcface":
            total = F.cross_entropy(head(emb, lab), lab)
        else:
            total = F.cross_entropy(head(emb), lab)
        if center is not None:
            total = total + center_weight * center(emb, lab)
            opt_center.zero_grad()
        opt.zero_grad()
        total.backward()
        opt.step()
        if center is not None:
            rescale_center_grads(center, center_weight)
            opt_center.step()
    with torch.no_grad():
        emb = net(x_test)
    return emb, y_test
