"""A toy re-id problem in two dimensions, to *see* what each loss does to an embedding.

Each class is a random prototype in 16-D observed through noise; a small MLP maps the
observations to a 2-D embedding, which is drawn. Training takes about a second on a CPU.
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


def train_toy_embedding(loss: str, steps: int = 400, num_classes: int = 8, seed: int = 0, margin: float = 0.3,
                        center_weight: float = 0.3, arcface_scale: float = 30.0, arcface_margin: float = 0.5,
                        label_smoothing: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Train a 16 -> 64 -> 2 MLP with one loss on PK batches (P=8, K=8); return (2-D test embedding, labels).

    'softmax': cross-entropy of a linear classifier without bias (as the baseline's), with
    `label_smoothing` (0: plain); 'triplet': batch-hard triplet loss with `margin`;
    'softmax+center': softmax + `center_weight` * center loss; 'arcface': cross-entropy of an
    ArcFace head (`arcface_scale`, `arcface_margin`: the baseline's s = 30, m = 0.5 by default).
    """
    if loss not in TOY_LOSSES:
        raise ValueError(f"loss={loss!r} is unknown; choose one of {', '.join(TOY_LOSSES)}")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a network this small runs fastest on one thread (and slowest on a busy machine's two)
    try:
        torch.manual_seed(seed)
        x, y = toy_data(num_classes, seed=seed)
        x_test, y_test = toy_data(num_classes, per_class=40, seed=seed, split=1)
        net = nn.Sequential(nn.Linear(x.shape[1], 64), nn.ReLU(), nn.Linear(64, 2))
        if loss == "arcface":
            head = ArcFace(2, num_classes, s=arcface_scale, m=arcface_margin)
        else:
            head = nn.Linear(2, num_classes, bias=False)
        center = CenterLoss(num_classes, 2) if "center" in loss else None
        opt = torch.optim.Adam(list(net.parameters()) + list(head.parameters()), lr=1e-2)
        opt_center = torch.optim.SGD(center.parameters(), lr=0.5) if center is not None else None
        g = torch.Generator().manual_seed(seed)
        per_class = len(y) // num_classes
        for _ in range(steps):
            idx = torch.cat([c * per_class + torch.randperm(per_class, generator=g)[:8] for c in range(num_classes)])
            emb, lab = net(x[idx]), y[idx]
            if loss == "triplet":
                total = triplet_loss(emb, lab, margin=margin)[0]
            elif loss == "arcface":
                total = F.cross_entropy(head(emb, lab), lab, label_smoothing=label_smoothing)
            else:
                total = F.cross_entropy(head(emb), lab, label_smoothing=label_smoothing)
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
    finally:
        torch.set_num_threads(threads)
    return emb, y_test


def spread_ratios(emb: torch.Tensor, labels: torch.Tensor) -> tuple[float, float]:
    """(distance ratio, angle ratio) of a 2-D embedding (N, 2): how wide the classes are for how far apart.

    Distance: the mean distance of a point to its class's centroid, divided by the mean over
    classes of the distance from its centroid to the nearest other centroid. Angle: the same
    with angles, measured from the origin: the mean angle between a point and its class's mean
    direction, divided by the mean angle from a class's direction to the nearest other one.
    Smaller is tighter; both are free of the embedding's scale.
    """
    classes = labels.unique()
    eye = torch.eye(len(classes), dtype=torch.bool)
    index = (labels.view(-1, 1) == classes.view(1, -1)).float().argmax(1)  # (N,) row of each point's class

    def ratio(points: torch.Tensor, dist) -> float:
        centres = torch.stack([points[labels == c].mean(0) for c in classes])  # (C, 2)
        within = dist(points, centres[index]).mean()
        between = dist(centres.unsqueeze(1), centres.unsqueeze(0)).masked_fill(eye, float("inf")).min(1).values
        return float(within / between.mean())

    def angle(a, b):
        return torch.acos(F.cosine_similarity(a, b, dim=-1).clamp(-1.0, 1.0))

    return ratio(emb.float(), lambda a, b: (a - b).norm(dim=-1)), ratio(F.normalize(emb.float(), dim=1), angle)
