"""The losses of the baseline: label-smoothed ID loss, batch-hard triplet loss with harder
example mining (HEM), center loss, and their weighted sum.

Notation: a batch of B features f_i with identity labels y_i among N identities (classes);
D(a, b) = ||a - b||_2.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .config import LOSS_TYPES, Config


# --------------------------------------------------------------------------------------
# ID loss
# --------------------------------------------------------------------------------------
def id_loss(label_smoothing: float = 0.1) -> nn.CrossEntropyLoss:
    """Cross-entropy with label smoothing (Szegedy et al. 2016; Luo et al. 2019, Eq. 2).

    The target of class i for an image of class y is q_i = 1 - (N - 1) eps / N if i = y and
    eps / N otherwise, with N classes. torch's ``label_smoothing=eps`` builds exactly these
    targets: (1 - eps) * one_hot + eps / N. `smoothed_targets` writes them out.
    """
    return nn.CrossEntropyLoss(label_smoothing=label_smoothing)


def smoothed_targets(labels: torch.Tensor, num_classes: int, epsilon: float) -> torch.Tensor:
    """(B, N) label-smoothed target distribution of the paper's Eq. 2, for B labels and N classes."""
    check_labels(labels, num_classes)
    q = torch.full((len(labels), num_classes), epsilon / num_classes)
    q[torch.arange(len(labels)), labels] = 1 - (num_classes - 1) * epsilon / num_classes
    return q


def check_labels(labels: torch.Tensor, num_classes: int) -> None:
    if labels.numel() and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"labels must lie in [0, {num_classes}) but range over [{int(labels.min())}, "
                         f"{int(labels.max())}]: are the training pids relabelled (Market1501.train is)?")


# --------------------------------------------------------------------------------------
# Triplet loss
# --------------------------------------------------------------------------------------
def euclidean_dist(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The (len(x), len(y)) Euclidean distances between the rows of x and those of y, each of width d.

    sqrt(|x|^2 + |y|^2 - 2 x.y), computed in float32 and clamped at 1e-12 before the square
    root: rounding can make a squared distance of zero slightly negative, and the gradient of
    sqrt at 0 is infinite.
    """
    x, y = x.float(), y.float()
    d = x.pow(2).sum(1, keepdim=True) + y.pow(2).sum(1).unsqueeze(0) - 2.0 * x @ y.T
    return d.clamp(min=1e-12).sqrt()


def hard_example_mining(dist: torch.Tensor, labels: torch.Tensor):
    """For each anchor, its hardest positive (farthest same-id) and hardest negative (closest other-id).

    Returns (d_ap, d_an, positive index, negative index), each of shape (B,) for a batch of B images.
    Every anchor needs one other image of its identity and one image of another identity: a PK
    batch (K >= 2, P >= 2).
    """
    b = len(labels)
    same = labels.view(b, 1) == labels.view(1, b)  # (B, B)
    eye = torch.eye(b, dtype=torch.bool, device=labels.device)
    pos, neg = same & ~eye, ~same
    bad = ~(pos.any(1) & neg.any(1))
    if bad.any():
        i = int(bad.nonzero()[0])
        raise ValueError(
            f"anchor {i} (label {int(labels[i])}) has no {'positive' if not pos[i].any() else 'negative'} in its "
            "batch: the triplet loss needs P >= 2 identities with K >= 2 images each; use RandomIdentitySampler"
        )
    d_ap, p_idx = dist.masked_fill(~pos, float("-inf")).max(1)
    d_an, n_idx = dist.masked_fill(~neg, float("inf")).min(1)
    return d_ap, d_an, p_idx, n_idx


def triplet_loss(feat: torch.Tensor, labels: torch.Tensor, margin: float = 0.3, hard_factor: float = 0.0,
                 normalize: bool = False):
    """Batch-hard triplet loss with harder example mining; returns (loss, d_ap, d_an).

    L = mean_i max(0, (1 + a) * max_p D(f_i, f_p) - (1 - a) * min_n D(f_i, f_n) + m)

    with a = `hard_factor` (a = 0 is the batch-hard loss of Hermans et al. 2017). Scaling the
    hardest positive distance up and the hardest negative distance down makes every triplet
    look harder, so more of them violate the margin and give a gradient. With ``margin=0``
    the soft margin log(1 + exp(d_ap - d_an)) replaces the hinge.
    """
    if normalize:
        feat = F.normalize(feat, dim=1)
    d_ap, d_an, _, _ = hard_example_mining(euclidean_dist(feat, feat), labels)
    d_ap, d_an = d_ap * (1.0 + hard_factor), d_an * (1.0 - hard_factor)
    if margin > 0:
        loss = F.margin_ranking_loss(d_an, d_ap, torch.ones_like(d_an), margin=margin)
    else:
        loss = F.softplus(d_ap - d_an).mean()
    return loss, d_ap, d_an


# --------------------------------------------------------------------------------------
# Center loss
# --------------------------------------------------------------------------------------
class CenterLoss(nn.Module):
    """Center loss (Wen et al., ECCV 2016), the squared distance of each feature to its class center.

    Wen et al. (and Luo et al. 2019) write L_C = 1/2 sum_i ||f_i - c_{y_i}||^2; the published code of
    reid-strong-baseline and person-reid-tiny-baseline, and we, use the mean over the B images of the
    batch, L_C = 1/B sum_i ||f_i - c_{y_i}||^2.

    The centers c_j are parameters with their own SGD optimizer (lr 0.5). The total loss
    weighs this term by beta = 5e-4, which would also shrink the centers' gradient by beta;
    `rescale_center_grads` divides it back out before the centers' step, so that the centers
    move with lr 0.5 whatever beta is (person-reid-tiny-baseline's
    ``param.grad *= 1 / CENTER_LOSS_WEIGHT``).
    """

    def __init__(self, num_classes: int, feat_dim: int):
        super().__init__()
        self.num_classes = num_classes
        self.centers = nn.Parameter(torch.randn(num_classes, feat_dim))

    def forward(self, feat: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        diff = feat.float() - self.centers[labels]  # (B, d); BaselineLoss has checked the labels
        return diff.pow(2).sum(1).clamp(1e-12, 1e12).sum() / len(labels)


def rescale_center_grads(center_loss: CenterLoss, weight: float) -> None:
    """Undo the loss weight on the centers' gradient (call after backward, before their optimizer step)."""
    if center_loss.centers.grad is not None and weight > 0:
        center_loss.centers.grad.mul_(1.0 / weight)


# --------------------------------------------------------------------------------------
# The combination
# --------------------------------------------------------------------------------------
class BaselineLoss(nn.Module):
    """The weighted sum named by `cfg.loss_type`; returns (total, {part: value}).

    'softmax' is the ID loss alone; 'triplet' adds the HEM triplet loss on the feature before
    the BNNeck; 'center' adds beta times the center loss on that feature.
    """

    def __init__(self, cfg: Config, num_classes: int, feat_dim: int):
        super().__init__()
        if cfg.loss_type not in LOSS_TYPES:
            raise ValueError(f"loss_type={cfg.loss_type!r} is unknown; choose one of {', '.join(LOSS_TYPES)}")
        parts = cfg.loss_type.split("+")
        self.cfg, self.num_classes = cfg, num_classes
        self.use_triplet, self.use_center = "triplet" in parts, "center" in parts
        self.id_loss = id_loss(cfg.label_smoothing)
        self.center = CenterLoss(num_classes, feat_dim) if self.use_center else None

    def forward(self, logits: torch.Tensor, feat: torch.Tensor, labels: torch.Tensor):
        cfg = self.cfg
        check_labels(labels, self.num_classes)
        parts = {"id": cfg.id_loss_weight * self.id_loss(logits.float(), labels)}
        if self.use_triplet:
            loss, _, _ = triplet_loss(feat, labels, cfg.margin, cfg.hard_factor)
            parts["triplet"] = cfg.triplet_loss_weight * loss
        if self.center is not None:
            parts["center"] = cfg.center_loss_weight * self.center(feat, labels)
        return sum(parts.values()), parts


def make_loss(cfg: Config, num_classes: int, feat_dim: int) -> BaselineLoss:
    """The loss of `cfg.loss_type` for `num_classes` identities and features of `feat_dim`."""
    return BaselineLoss(cfg, num_classes, feat_dim)
