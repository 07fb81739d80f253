"""Evaluation under the Market-1501 protocol: CMC, mAP and mINP from a distance matrix.

For each query the gallery is sorted by distance. Gallery images of the query's own
identity taken by the query's own camera are removed first: finding the same person in
the same camera a few frames later is tracking, not re-identification. A query with no
true match left is skipped. Then

* CMC@k is 1 if a true match is among the first k results (averaged over queries);
* AP is the mean of the precision at the rank of each true match (average precision);
* INP is (number of true matches) / (rank of the last, hardest true match) (Ye et al.,
  TPAMI 2021): the share of true matches among the images a user inspects until all of
  them are found (1 when they are all at the top; higher is better). mINP is its mean.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from .utils import memory_format


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
    """As tensors, after checking shapes, emptiness and NaN (errors name the argument and the fix)."""
    dist = torch.as_tensor(distmat)
    ids = [torch.as_tensor(np.asarray(a).ravel().astype(np.int64)) if not isinstance(a, torch.Tensor)
           else a.ravel().long() for a in (q_pids, g_pids, q_camids, g_camids)]
    q_pids, g_pids, q_camids, g_camids = ids
    if dist.ndim != 2:
        raise ValueError(f"distmat must be 2-D (num_query, num_gallery), got shape {tuple(dist.shape)}")
    nq, ng = dist.shape
    if nq == 0 or ng == 0:
        raise ValueError(f"distmat has shape {tuple(dist.shape)}: the query and the gallery must both be non-empty")
    for name, arr, n in (("q_pids", q_pids, nq), ("q_camids", q_camids, nq), ("g_pids", g_pids, ng),
                         ("g_camids", g_camids, ng)):
        if len(arr) != n:
            raise ValueError(f"{name} has {len(arr)} entries but distmat {tuple(dist.shape)} needs {n}")
    if torch.isnan(dist).any():
        raise ValueError("distmat contains NaN: check the features (a NaN feature poisons every distance)")
    return dist, q_pids, g_pids, q_camids, g_camids


def evaluate_rank(distmat, q_pids, g_pids, q_camids, g_camids, max_rank: int = 50, ap_rule: str = "python",
                  chunk_size: int = 256, device: torch.device | str | None = None,
                  compiled: bool | None = None) -> RankResult:
    """CMC (length min(max_rank, num_gallery)), mAP and mINP under the Market-1501 protocol.

    No sort of the gallery (`rank_statistics`): for each query only the ranks of its true
    matches are needed, and the rank of a match is the number of kept gallery images closer
    than it, plus one. Identical to a per-query sort on inputs without ties; with ties, a
    true match is ranked before an impostor at the same distance.

    ``ap_rule="python"`` averages the precision at each true match, the convention of
    person-reid-tiny-baseline, reid-strong-baseline and most Python re-id code. ``"trapezoid"``
    is the official Market-1501 MATLAB code's rule (the area under the precision-recall
    curve by trapezoids), which scores lower. When the gallery kept for a query is shorter
    than the CMC curve, the curve stays at its last value: a query that found its match
    stays found at every larger rank.
    """
    dist, q_pids, g_pids, q_camids, g_camids = _check_inputs(distmat, q_pids, g_pids, q_camids, g_camids)
    stats = rank_statistics(dist, q_pids, g_pids, q_camids, g_camids, ap_rule, chunk_size, device, compiled)
    return rank_result(*stats, length=min(max_rank, dist.shape[1]))


def rank_result(first: np.ndarray, ap: np.ndarray, inp: np.ndarray, length: int) -> RankResult:
    """CMC, mAP and mINP from per-query statistics (`rank_statistics`), over the queries that kept a true match."""
    first, ap, inp = (np.asarray(a) for a in (first, ap, inp))
    valid = first > 0
    if not valid.any():
        raise ValueError("no query has a true match in the gallery from another camera: nothing to evaluate. "
                         "Are the query and gallery from the same dataset?")
    cmc = (first[valid, None] <= np.arange(1, length + 1)[None, :]).mean(0)
    return RankResult(cmc, float(ap[valid].mean()), float(inp[valid].mean()), int(valid.sum()))


def rank_statistics(distmat, q_pids, g_pids, q_camids, g_camids, ap_rule: str = "python", chunk_size: int = 256,
                    device: torch.device | str | None = None, compiled: bool | None = None):
    """Per query: the 1-based rank of its first true match (0 when none is kept: the query is not scored), its
    AP and its INP, as NumPy arrays (int64, float64, float64). `rank_result` turns them into CMC/mAP/mINP.

    For each query the distances of its k true matches are sorted (k is small), every impostor
    falls into one of the k + 1 intervals between them, and a cumulative count of the intervals
    gives the rank of every match. With numba (`reid.kernels`, `compiled` None or True, on the
    CPU) one compiled loop per query does this; otherwise the same steps run as tensor
    operations in query chunks on `device` (the distances' device by default). Both give the
    same ranks. Inputs are checked by `evaluate_rank`; call this directly on checked tensors.
    """
    from . import kernels

    if ap_rule not in ("python", "trapezoid"):
        raise ValueError(f"ap_rule={ap_rule!r} is unknown; choose 'python' (mean precision) or 'trapezoid' (MATLAB)")
    dist = torch.as_tensor(distmat)
    device = torch.device(device) if device is not None else dist.device
    ids = [torch.as_tensor(np.asarray(a).ravel().astype(np.int64)) if not isinstance(a, torch.Tensor)
           else a.ravel().long() for a in (q_pids, g_pids, q_camids, g_camids)]
    if device.type == "cpu" and kernels.use_compiled(compiled):
        return kernels.rank_stats(np.ascontiguousarray(dist.cpu().numpy()), *(a.cpu().numpy() for a in ids),
                                  trapezoid=ap_rule == "trapezoid")
    q_pids, g_pids, q_camids, g_camids = ids
    dist = dist.to(device)
    g_pids, g_camids = g_pids.to(device), g_camids.to(device)
    n_cams = int(max(q_camids.max(), g_camids.max())) + 1
    g_keys = g_pids * n_cams + g_camids  # (G,): one integer per (person, camera)
    inf = torch.tensor(float("inf"), device=device)
    nq = dist.shape[0]
    first = torch.zeros(nq, dtype=torch.int64)
    ap_all, inp_all = torch.zeros(nq, dtype=torch.float64), torch.zeros(nq, dtype=torch.float64)
    for start in range(0, nq, chunk_size):
        d = dist[start:start + chunk_size].float()  # (c, G)
        qp = q_pids[start:start + chunk_size].to(device)[:, None]  # (c, 1)
        qk = qp * n_cams + q_camids[start:start + chunk_size].to(device)[:, None]
        same_pid = g_pids[None, :] == qp  # (c, G)
        match = same_pid & (g_keys[None, :] != qk)  # same person, another camera (same camera: removed)
        n_match = match.sum(1)  # (c,)
        valid = n_match > 0
        if not valid.any():
            continue
        rows_valid = valid.nonzero().squeeze(1).cpu() + start
        d, same_pid, match, n_match = d[valid], same_pid[valid], match[valid], n_match[valid]
        kmax = int(n_match.max())
        match_d = torch.topk(torch.where(match, d, inf), kmax, dim=1, largest=False, sorted=True).values  # (c, k)
        # every impostor (another person) lands in interval b = number of true matches at or below its
        # distance; true matches and removed images are set to inf, past every match, and not counted
        impostor_d = d.masked_fill(same_pid, float("inf"))
        bucket = torch.searchsorted(match_d, impostor_d, right=True, out_int32=True)  # (c, G) in [0, k]
        rows = torch.arange(len(d), device=device, dtype=torch.int32)[:, None] * (kmax + 1)
        counts = torch.bincount((bucket + rows).flatten(), minlength=len(d) * (kmax + 1)).view(len(d), kmax + 1)
        before = counts.cumsum(1)[:, :kmax]  # impostors ahead of the j-th true match
        j = torch.arange(1, kmax + 1, device=device, dtype=torch.float64)[None, :]  # (1, k)
        rank = before.double() + j  # (c, k): 1-based rank of the j-th true match among the kept images
        real = j <= n_match[:, None]  # padded columns are not matches
        precision = j / rank
        if ap_rule == "python":
            ap = (precision * real).sum(1) / n_match
        else:
            previous = torch.where(rank > 1, (j - 1) / (rank - 1).clamp(min=1), torch.ones_like(rank))
            ap = ((precision + previous) / 2 * real).sum(1) / n_match
        last = rank.gather(1, (n_match - 1)[:, None]).squeeze(1)  # rank of the hardest true match
        first[rows_valid] = rank[:, 0].long().cpu()
        ap_all[rows_valid] = ap.cpu()
        inp_all[rows_valid] = (n_match / last).cpu()
    return first.numpy(), ap_all.numpy(), inp_all.numpy()


def evaluate_rank_loop(distmat, q_pids, g_pids, q_camids, g_camids, max_rank: int = 50) -> RankResult:
    """`evaluate_rank` written as most re-id code writes it: one query at a time, sort its gallery row, drop its
    own camera's images of its person, walk the list. Slow (a full sort per query); for reading and checking.

    On ties it keeps the gallery order (a stable sort), where `evaluate_rank` puts the true match first.
    """
    dist, q_pids, g_pids, q_camids, g_camids = (np.asarray(a) for a in _check_inputs(
        distmat, q_pids, g_pids, q_camids, g_camids))
    length = min(max_rank, dist.shape[1])
    cmcs, aps, inps = [], [], []
    for q in range(len(dist)):
        order = np.argsort(dist[q], kind="stable")  # the gallery, nearest first
        same_person = g_pids[order] == q_pids[q]
        removed = same_person & (g_camids[order] == q_camids[q])  # same person, same camera: not scored
        matches = same_person[~removed]  # True where the kept list has a true match
        if not matches.any():
            continue  # no true match left: the query is skipped
        ranks = np.flatnonzero(matches) + 1  # 1-based ranks of the true matches
        cmc = np.zeros(length)
        cmc[ranks[0] - 1:] = 1.0  # found from the first match's rank on (nothing if it is past the curve)
        cmcs.append(cmc)
        aps.append(np.mean(np.arange(1, len(ranks) + 1) / ranks))  # precision at each true match
        inps.append(len(ranks) / ranks[-1])  # matches / rank of the hardest one
    if not cmcs:
        raise ValueError("no query has a true match in the gallery from another camera: nothing to evaluate")
    return RankResult(np.mean(cmcs, axis=0), float(np.mean(aps)), float(np.mean(inps)), len(cmcs))


# --------------------------------------------------------------------------------------
# Features and distances
# --------------------------------------------------------------------------------------
def autocast_dtype(device: torch.device, amp: bool = True) -> torch.dtype | None:
    """The mixed-precision type on CUDA (bfloat16 where the GPU has it natively, else float16); None on the
    CPU or amp=False. Natively: a T4 (Colab's free GPU) only emulates bfloat16, slowly, so it gets float16."""
    if not amp or device.type != "cuda":
        return None
    native = torch.version.hip is not None or torch.cuda.get_device_capability(device)[0] >= 8  # ROCm; Ampere+
    return torch.bfloat16 if native else torch.float16


class Embedder(nn.Module):
    """A run's model as it is tested: images (B, 3, H, W), normalised -> features (B, d).

    With `flip` the feature of the mirrored image is added (`cfg.flip_feats`); with
    `normalize` the result is L2-normalised (`cfg.feat_norm`), so that cosine distance is
    1 - q.g. `extract_features` runs it, and so do `reid.search.build_index` and the ONNX export
    (`reid.export`), so that all three give the same features.
    """

    def __init__(self, model: nn.Module, flip: bool, normalize: bool):
        super().__init__()
        self.model, self.flip, self.normalize = model.eval(), flip, normalize

    @classmethod
    def of_run(cls, model: nn.Module, cfg, flip: bool | None = None) -> "Embedder":
        return cls(model, cfg.flip_feats if flip is None else flip, cfg.feat_norm)

    def plain_and_flipped(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The image's feature, and the same plus its mirror's (flipped features); neither normalised."""
        feat = self.model(images).float()
        return feat, feat + self.model(torch.flip(images, dims=[3])).float()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        feat = self.plain_and_flipped(images)[1] if self.flip else self.model(images).float()
        return F.normalize(feat, dim=1) if self.normalize else feat


def _batches(model: nn.Module, loader, device: torch.device, amp: bool, channels_last: bool, progress: bool):
    """(images on `device`, pids, camids) of each batch, inside the autocast `amp` asks for; the model moved to
    `device` and put in eval mode for the pass, then back to its mode."""
    dtype = autocast_dtype(device, amp)
    was_training = model.training
    model.to(device).eval()
    fmt = memory_format(channels_last, device)
    # tqdm gets an iterator, not the loader: in Jupyter, tqdm.auto makes an iterator of its own from a
    # loader and never runs it, leaving its worker processes to the garbage collector.
    batches = tqdm(iter(loader), total=len(loader), desc="features", leave=False, disable=not progress)
    try:
        for images, pid, camid, _ in batches:
            images = images.to(device, non_blocking=True, memory_format=fmt)
            with torch.autocast(device.type, dtype=dtype or torch.bfloat16, enabled=dtype is not None):
                yield images, torch.as_tensor(pid), torch.as_tensor(camid)
    finally:
        model.train(was_training)


@torch.inference_mode()
def extract_features(model: nn.Module, loader, device: torch.device | str = "cpu", flip: bool = False,
                     amp: bool = False, channels_last: bool = True, progress: bool = False):
    """Features of every image of `loader` in order: (feats (N, d) float32 on the CPU, pids, camids).

    `flip=True` adds the feature of the mirrored image to the image's own (flipped features,
    as person-reid-tiny-baseline computes them): a person seen from the left and from the
    right gets one description. `amp=True` runs the network in bfloat16 or float16 on CUDA
    (`cfg.eval_amp`); the default is float32, as the published recipes extract features.
    The model is moved to `device`.
    """
    embedder = Embedder(model, flip, normalize=False)
    feats, pids, camids = [], [], []
    for images, pid, camid in _batches(model, loader, torch.device(device), amp, channels_last, progress):
        feats.append(embedder(images).cpu())  # (B, d), float32
        pids.append(pid)
        camids.append(camid)
    return torch.cat(feats), torch.cat(pids).numpy(), torch.cat(camids).numpy()


@torch.inference_mode()
def extract_plain_and_flipped(model: nn.Module, loader, device: torch.device | str = "cpu", amp: bool = False,
                              channels_last: bool = True, progress: bool = False):
    """`extract_features` with and without flip in one pass (the mirrored images are the only extra work):
    (plain (N, d), flipped (N, d), pids, camids), each equal to what `extract_features` gives."""
    embedder = Embedder(model, flip=True, normalize=False)
    plain, flipped, pids, camids = [], [], [], []
    for images, pid, camid in _batches(model, loader, torch.device(device), amp, channels_last, progress):
        a, b = embedder.plain_and_flipped(images)
        plain.append(a.cpu())
        flipped.append(b.cpu())
        pids.append(pid)
        camids.append(camid)
    return torch.cat(plain), torch.cat(flipped), torch.cat(pids).numpy(), torch.cat(camids).numpy()


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
    return evaluate_rank(dist, pids[:num_query], pids[num_query:], camids[:num_query],
                         camids[num_query:], max_rank=max_rank)


def evaluate_model(model: nn.Module, test_loader, num_query: int, cfg, device: torch.device | str = "cpu",
                   flip: bool | None = None, progress: bool = False) -> RankResult:
    """CMC/mAP/mINP of `model` on the query + gallery of `test_loader`, with the test settings of `cfg`."""
    feats, pids, camids = extract_features(model, test_loader, device, cfg.flip_feats if flip is None else flip,
                                           cfg.eval_amp, cfg.channels_last, progress)
    return evaluate_features(feats, pids, camids, num_query, cfg.distance, cfg.feat_norm, cfg.max_rank)
