"""Evaluation under the Market-1501 protocol: CMC, mAP and mINP from a distance matrix.

For each query the gallery is sorted by distance. Gallery images of the query's own
identity taken by the query's own camera are removed first: finding the same person in
the same camera a few frames later is tracking, not re-identification. A query with no
true match left is skipped. Then

* CMC@k is 1 if a true match is among the first k results (averaged over queries);
* AP is the mean of the precision at the rank of each true match (average precision);
* INP is (number of true matches) / (rank of the last, hardest true match) (Ye et al.,
  TPAMI 2021): how much of the list a user must inspect to find them all.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm


@dataclass(frozen=True)
class RankResult:
    """CMC curve (cmc[k-1] = Rank-k), mAP and mINP, all as fractions in [0, 1]."""

    cmc: np.ndarray
    mAP: float
    mINP: float
    num_valid: int  # queries that kept at least one true match and were scored

    def __getitem__(self, key: str):
        return getattr(self, key)

    def summary(self, ranks=(1, 5, 10)) -> str:
        parts = [f"mAP {100 * self.mAP:.1f}", *(f"R{r} {100 * self.cmc[r - 1]:.1f}" for r in ranks if r <= len(self.cmc))]
        return " | ".join(parts + [f"mINP {100 * self.mINP:.1f}"])


def _check_inputs(distmat, q_pids, g_pids, q_camids, g_camids):
    distmat = np.asarray(distmat)
    q_pids, g_pids = np.asarray(q_pids).ravel(), np.asarray(g_pids).ravel()
    q_camids, g_camids = np.asarray(q_camids).ravel(), np.asarray(g_camids).ravel()
    if distmat.ndim != 2:
        raise ValueError(f"distmat must be 2-D (num_query, num_gallery), got shape {distmat.shape}")
    nq, ng = distmat.shape
    if nq == 0 or ng == 0:
        raise ValueError(f"distmat has shape {distmat.shape}: the query and the gallery must both be non-empty")
    for name, arr, n in (("q_pids", q_pids, nq), ("q_camids", q_camids, nq), ("g_pids", g_pids, ng),
                         ("g_camids", g_camids, ng)):
        if len(arr) != n:
            raise ValueError(f"{name} has {len(arr)} entries but distmat {distmat.shape} needs {n}")
    if np.isnan(distmat).any():
        raise ValueError("distmat contains NaN: check the features (a NaN feature poisons every distance)")
    return distmat, q_pids, g_pids, q_camids, g_camids


def evaluate_rank(distmat, q_pids, g_pids, q_camids, g_camids, max_rank: int = 50) -> RankResult:
    """CMC (length min(max_rank, num_gallery)), mAP and mINP under the Market-1501 protocol.

    A straightforward loop over queries. Ties in distance are broken by gallery order
    (stable sort). AP follows the convention of every Python re-id code base (mean of the
    precision at each true match). When the gallery kept for a query is shorter than the
    CMC curve, the curve is continued with its last value: a query that found its match
    stays found at every larger rank.
    """
    distmat, q_pids, g_pids, q_camids, g_camids = _check_inputs(distmat, q_pids, g_pids, q_camids, g_camids)
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
        positions = np.flatnonzero(matches) + 1.0  # 1-based ranks of the true matches
        all_ap.append(np.mean(hits[matches > 0] / positions))
        all_inp.append(matches.sum() / positions[-1])
    if not all_cmc:
        raise ValueError("no query has a true match in the gallery from another camera: nothing to evaluate. "
                         "Are the query and gallery from the same dataset?")
    return RankResult(np.mean(all_cmc, axis=0), float(np.mean(all_ap)), float(np.mean(all_inp)), len(all_cmc))


# --------------------------------------------------------------------------------------
# Features and distances
# --------------------------------------------------------------------------------------
def autocast_dtype(device: torch.device, amp: bool = True) -> torch.dtype | None:
    """The mixed-precision type on CUDA (bfloat16 where supported, else float16); None on the CPU or amp=False."""
    if not amp or device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


@torch.inference_mode()
def extract_features(model: nn.Module, loader, device: torch.device | str = "cpu", flip: bool = False,
                     amp: bool = True, channels_last: bool = True, progress: bool = False):
    """Features of every image of `loader` in order: (feats (N, d) float32 on the CPU, pids, camids).

    `flip=True` adds the feature of the mirrored image to the image's own (the seed's flipped
    features): a person seen from the left and from the right gets one description.
    """
    device = torch.device(device)
    dtype = autocast_dtype(device, amp)
    was_training = model.training
    model.eval()
    feats, pids, camids = [], [], []
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    for images, pid, camid, _ in tqdm(loader, desc="features", leave=False, disable=not progress):
        images = images.to(device, non_blocking=True, memory_format=fmt)
        with torch.autocast(device.type, dtype=dtype or torch.bfloat16, enabled=dtype is not None):
            feat = model(images).float()  # (B, d)
            if flip:
                feat = feat + model(torch.flip(images, dims=[3])).float()
        feats.append(feat.cpu())
        pids.append(torch.as_tensor(pid))
        camids.append(torch.as_tensor(camid))
    model.train(was_training)
    return torch.cat(feats), torch.cat(pids).numpy(), torch.cat(camids).numpy()


def pairwise_distance(query: torch.Tensor, gallery: torch.Tensor, metric: str = "euclidean",
                      chunk_size: int = 4096) -> torch.Tensor:
    """(len(query), len(gallery)) distances by matrix products, in query chunks on the features' device.

    "euclidean" is the squared Euclidean distance |q|^2 + |g|^2 - 2 q.g (clamped at 0);
    "cosine" is 1 - cos(q, g). Computed in float32; memory beyond the result is one chunk.
    """
    if metric not in ("euclidean", "cosine"):
        raise ValueError(f"metric={metric!r} is unknown; choose 'euclidean' or 'cosine'")
    if query.ndim != 2 or gallery.ndim != 2 or query.shape[1] != gallery.shape[1]:
        raise ValueError(f"features must be (N, d) with the same d, got {tuple(query.shape)} and {tuple(gallery.shape)}")
    q, g = query.float(), gallery.float()
    if metric == "cosine":
        q, g = F.normalize(q, dim=1), F.normalize(g, dim=1)
    g_sq = g.pow(2).sum(1)  # (G,)
    out = torch.empty(len(q), len(g), dtype=torch.float32, device=q.device)
    for start in range(0, len(q), chunk_size):
        qc = q[start:start + chunk_size]  # (c, d)
        if metric == "cosine":
            out[start:start + chunk_size] = 1.0 - qc @ g.T
        else:
            d = qc.pow(2).sum(1, keepdim=True) + g_sq - 2.0 * (qc @ g.T)
            out[start:start + chunk_size] = d.clamp_(min=0.0)
    return out


def evaluate_features(feats: torch.Tensor, pids, camids, num_query: int, distance: str = "cosine",
                      feat_norm: bool = True, max_rank: int = 50) -> RankResult:
    """Split features into query and gallery, compute distances, score under the Market protocol."""
    if torch.isnan(feats).any():
        raise ValueError("the features contain NaN: the model's weights or the input images are broken")
    if feat_norm:
        feats = F.normalize(feats, dim=1)
    dist = pairwise_distance(feats[:num_query], feats[num_query:], distance)
    return evaluate_rank(dist.cpu().numpy(), pids[:num_query], pids[num_query:], camids[:num_query],
                         camids[num_query:], max_rank=max_rank)


def evaluate_model(model: nn.Module, test_loader, num_query: int, cfg, device: torch.device | str = "cpu",
                   flip: bool | None = None, progress: bool = False) -> RankResult:
    """CMC/mAP/mINP of `model` on the query + gallery of `test_loader`, with the test settings of `cfg`."""
    feats, pids, camids = extract_features(model, test_loader, device, cfg.flip_feats if flip is None else flip,
                                           cfg.amp, getattr(cfg, "channels_last", True), progress)
    return evaluate_features(feats, pids, camids, num_query, cfg.distance, cfg.feat_norm, cfg.max_rank)
