"""Every figure the book draws. Each function returns its matplotlib Figure."""

from __future__ import annotations

import itertools
from collections import defaultdict
from typing import Sequence

import matplotlib.pyplot as plt
from matplotlib.ticker import MaxNLocator
import numpy as np
import torch

from .config import Config
from .data.loaders import read_image
from .data.market1501 import Market1501, Record
from .data.transforms import augmentation_steps, denormalize


def _show(ax, img, title: str | None = None, colour: str | None = None) -> None:
    if isinstance(img, torch.Tensor):
        img = img.permute(1, 2, 0).numpy()
    ax.imshow(img)
    ax.set_xticks([]), ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(colour is not None)
        if colour is not None:
            spine.set_edgecolor(colour)
            spine.set_linewidth(3)
    if title:
        ax.set_title(title, fontsize=8)


def show_identity(dataset: Market1501, pid: int, max_per_camera: int = 4) -> plt.Figure:
    """One test identity across cameras: a column per camera, queries framed in blue.

    At most `max_per_camera` images per camera; the title says when some were left out.
    """
    by_cam: dict[int, list[tuple[str, Record]]] = defaultdict(list)
    for split, recs in (("query", dataset.query), ("gallery", dataset.gallery)):
        for r in recs:
            if r.pid == pid:
                by_cam[r.camid].append((split, r))
    if not by_cam:
        raise ValueError(f"pid {pid} is not in the query or gallery of {dataset.root}")
    cams = sorted(by_cam)
    rows = min(max_per_camera, max(len(v) for v in by_cam.values()))
    fig, axes = plt.subplots(rows, len(cams), figsize=(1.2 * len(cams), 2.3 * rows), squeeze=False)
    for j, cam in enumerate(cams):
        for i in range(rows):
            ax = axes[i, j]
            if i < len(by_cam[cam]):
                split, r = by_cam[cam][i]
                _show(ax, read_image(r.path), f"c{cam + 1} {split}", "tab:blue" if split == "query" else None)
            else:
                ax.axis("off")
    left_out = sum(max(0, len(v) - rows) for v in by_cam.values())
    title = f"identity {pid:04d} seen by {len(cams)} cameras"
    if left_out:
        title += f"\n({left_out} more image{'s' if left_out > 1 else ''} not shown: {rows} per camera at most)"
    else:
        title += f", all {sum(len(v) for v in by_cam.values())} images"
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def show_batch(images: torch.Tensor, pids: Sequence[int], cfg: Config, max_identities: int = 8) -> plt.Figure:
    """A PK batch: one row per identity (P rows), its K images side by side."""
    images = denormalize(images, cfg)
    pids = [int(p) for p in pids]
    order = list(dict.fromkeys(pids))[:max_identities]
    k = max(pids.count(p) for p in order)
    fig, axes = plt.subplots(len(order), k, figsize=(1.0 * k + 0.6, 1.9 * len(order)), squeeze=False)
    for i, pid in enumerate(order):
        idx = [n for n, p in enumerate(pids) if p == pid]
        for j in range(k):
            if j < len(idx):
                _show(axes[i, j], images[idx[j]])
            else:
                axes[i, j].axis("off")
        axes[i, 0].set_ylabel(f"label {pid}", fontsize=8)
    fig.suptitle(f"a PK batch: P={len(set(pids))} identities x K={k} images (first {len(order)} rows)", fontsize=10)
    fig.tight_layout()
    return fig


def show_augmentations(path: str, cfg: Config, samples: int = 4, seed: int = 0) -> plt.Figure:
    """The augmentation viewer: the original, then each training augmentation alone, `samples` draws each.

    The original, and a step without randomness (resize, the forced flip), give the same image every time:
    they are drawn in the first row only. Each column draws from torch's generator seeded with `seed` and its position, so a
    change to one step's settings leaves the other columns' draws as they were.
    """
    img = read_image(path)
    steps = augmentation_steps(cfg)
    fig, axes = plt.subplots(samples, len(steps) + 1, figsize=(1.25 * (len(steps) + 1), 2.2 * samples),
                             squeeze=False)
    for j, (name, transform) in enumerate(steps.items(), start=1):
        torch.manual_seed(seed * len(steps) + j)
        draws = [denormalize(transform(img), cfg) for _ in range(samples)]
        fixed = all(torch.equal(d, draws[0]) for d in draws)
        for i, draw in enumerate(draws):
            if fixed and i > 0:
                axes[i, j].axis("off")
            else:
                _show(axes[i, j], draw, (f"{name}\n(no randomness)" if fixed else f"{name}\n(random)")
                      if i == 0 else None)
    _show(axes[0, 0], img, "original")
    for i in range(1, samples):
        axes[i, 0].axis("off")
    fig.tight_layout()
    return fig


def show_dataset_overview(dataset: Market1501) -> plt.Figure:
    """Images per camera in each split, training images per identity, and cameras per test identity."""
    fig, (a, b, c) = plt.subplots(1, 3, figsize=(12, 2.8))
    cams = sorted({r.camid for r in dataset.train + dataset.query + dataset.gallery})
    width, top = 0.27, 0
    for k, (name, recs) in enumerate((("train", dataset.train), ("query", dataset.query),
                                      ("gallery", dataset.gallery))):
        counts = [sum(r.camid == c for r in recs) for c in cams]
        a.bar(np.arange(len(cams)) + (k - 1) * width, counts, width, label=name)
        top = max(top, *counts)
    a.set_xticks(range(len(cams)), [f"c{c + 1}" for c in cams])
    a.set_ylim(0, top * 1.3)  # headroom: the legend sits above the bars, not on them
    a.set_ylabel("images"), a.set_title("images per camera", fontsize=10)
    a.legend(fontsize=8, ncol=3, loc="upper center", frameon=False)
    per_id = np.bincount([r.pid for r in dataset.train])
    b.hist(per_id, bins=np.arange(per_id.min(), per_id.max() + 2) - 0.5, color="tab:gray")
    b.set_xlabel("images of one identity"), b.set_ylabel("identities")
    b.set_title("training images per identity", fontsize=10)
    b.yaxis.set_major_locator(MaxNLocator(integer=True))
    cams_of: dict[int, set[int]] = defaultdict(set)
    for r in dataset.query + dataset.gallery:
        if r.pid > 0:  # test identities (0 marks distractors)
            cams_of[r.pid].add(r.camid)
    n_cams = np.array([len(v) for v in cams_of.values()])
    c.hist(n_cams, bins=np.arange(1, len(cams) + 2) - 0.5, color="tab:purple")
    c.set_xticks(range(1, len(cams) + 1))
    c.set_xlabel("cameras that see the identity"), c.set_ylabel("identities")
    c.set_title("cameras per test identity", fontsize=10)
    c.yaxis.set_major_locator(MaxNLocator(integer=True))
    fig.tight_layout()
    return fig


def pipeline_figure() -> plt.Figure:
    """The book's map: data flows left to right through the package's modules."""
    stages = [
        ("records", "reid.data", "Market-1501\nfile names"),
        ("PK loader", "reid.data", "P ids x K imgs\nflip, crop, erase"),
        ("ResNet50", "reid.model", "last stride 1\nBNNeck"),
        ("losses", "reid.losses", "ID (smoothed)\ntriplet + HEM\ncenter, ArcFace"),
        ("training", "reid.engine", "Adam, warmup\nAMP, resume"),
        ("features", "reid.evaluation", "flip, L2\ncos / Euclid"),
        ("re-ranking", "reid.reranking", "k-reciprocal\nparam. search"),
        ("CMC / mAP", "reid.evaluation", "Market protocol\nmINP"),
    ]
    fig, ax = plt.subplots(figsize=(12, 2.3))
    ax.set_xlim(-0.1, len(stages) * 1.5 - 0.4), ax.set_ylim(-0.5, 1.8), ax.axis("off")
    colours = plt.cm.tab10(np.linspace(0, 1, 10))
    for i, (title, module, body) in enumerate(stages):
        x = i * 1.5
        box = plt.Rectangle((x, 0), 1.1, 1.5, facecolor=colours[i % 10], alpha=0.18, edgecolor=colours[i % 10], lw=1.5)
        ax.add_patch(box)
        ax.text(x + 0.55, 1.3, title, ha="center", va="center", fontsize=10, weight="bold")
        ax.text(x + 0.55, 0.62, body, ha="center", va="center", fontsize=7.5)
        ax.text(x + 0.55, -0.22, module, ha="center", va="center", fontsize=7.5, family="monospace", color="0.3")
        if i + 1 < len(stages):
            ax.annotate("", xy=(x + 1.48, 0.75), xytext=(x + 1.12, 0.75),
                        arrowprops=dict(arrowstyle="->", lw=1.5, color="0.3"))
    fig.tight_layout()
    return fig


def show_network(backbone: str = "ResNet50", feat_dim: int = 2048, map_size: tuple[int, int] = (16, 8),
                 input_size: tuple[int, int] = (256, 128)) -> plt.Figure:
    """The baseline's network as a diagram: what each loss sees (training) and which feature is compared (test)."""
    fig, ax = plt.subplots(figsize=(11, 3.9))
    ax.set_xlim(0, 11), ax.set_ylim(0, 3.9), ax.axis("off")

    def box(x, y, w, h, text, colour, style="-"):
        ax.add_patch(plt.Rectangle((x, y), w, h, facecolor=colour, alpha=0.2, edgecolor=colour, lw=1.5, ls=style))
        ax.text(x + w / 2, y + h / 2, text, ha="center", va="center", fontsize=9.5)
        return (x, y, w, h)

    def arrow(a, b, label="", style="-", colour="0.25", at=(0.0, 0.0)):
        ax.annotate("", xy=b, xytext=a, arrowprops=dict(arrowstyle="->", lw=1.3, color=colour, ls=style))
        if label:
            ax.text((a[0] + b[0]) / 2 + at[0], (a[1] + b[1]) / 2 + at[1], label, ha="center", va="center",
                    fontsize=9, color="0.3")

    net, loss, test = "tab:blue", "tab:red", "tab:green"
    box(0.05, 1.55, 1.2, 0.9, f"image\n3 x {input_size[0]} x {input_size[1]}", "0.5")
    box(1.55, 1.45, 1.8, 1.1, f"{backbone}\nstem, layer1-4\nlast stride 1", net)
    box(3.7, 1.55, 1.05, 0.9, "global avg.\npooling", net)
    box(5.05, 1.55, 1.1, 0.9, f"feat\n{feat_dim}", net)
    box(6.45, 1.5, 1.4, 1.0, "BNNeck\nBatchNorm1d\n(bias frozen)", net)
    box(8.15, 1.55, 1.1, 0.9, f"bn_feat\n{feat_dim}", net)
    box(9.55, 1.5, 1.4, 1.0, "classifier\nno bias\n(or ArcFace)", net)
    box(4.1, 3.0, 3.1, 0.7, "triplet loss (batch hard; optional\nharder mining, ch. 4), center loss", loss)
    box(9.3, 3.0, 1.65, 0.7, "ID loss (label\nsmoothing, ch. 3)", loss)
    box(7.15, 0.1, 3.4, 0.8, "test: L2-normalise, cosine distance\n(options: flip, re-ranking; ch. 6, 7)", test, "--")
    arrow((1.25, 2.0), (1.55, 2.0))
    arrow((3.35, 2.0), (3.7, 2.0), f"map {feat_dim} x {map_size[0]} x {map_size[1]}", at=(0.3, -0.85))
    arrow((4.75, 2.0), (5.05, 2.0))
    arrow((6.15, 2.0), (6.45, 2.0))
    arrow((7.85, 2.0), (8.15, 2.0))
    arrow((9.25, 2.0), (9.55, 2.0))
    arrow((5.6, 2.45), (5.6, 3.0), colour=loss)
    arrow((10.25, 2.5), (10.25, 3.0), "logits", colour=loss, at=(0.35, 0.0))
    arrow((8.7, 1.55), (8.7, 0.9), style="--", colour=test)
    ax.text(0.05, 3.55, "training (red): the losses, and\narrows from the feature each sees", fontsize=9.5, color=loss,
            va="center")
    ax.text(0.05, 0.5, "test (neck_feat = \"after\"): green, dashed", fontsize=9.5, color=test, va="center")
    fig.tight_layout()
    return fig


def show_bnneck(feat_before: torch.Tensor, feat_after: torch.Tensor) -> plt.Figure:
    """What the BNNeck does to a batch of features: their values, and the cosine between pairs."""
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 2.8))
    for name, f, colour in (("before BNNeck", feat_before, "tab:orange"), ("after BNNeck", feat_after, "tab:blue")):
        f = f.float()
        a.hist(f.flatten().numpy(), bins=80, alpha=0.6, color=colour, label=name, density=True)
        fn = torch.nn.functional.normalize(f, dim=1)
        cos = (fn @ fn.T)[~torch.eye(len(f), dtype=torch.bool)]
        b.hist(cos.numpy(), bins=60, range=(-1, 1), alpha=0.6, color=colour, label=name, density=True)
    a.set_title("feature values", fontsize=10), a.set_xlabel("value"), a.legend(fontsize=8)
    b.set_title("cosine similarity between two images", fontsize=10), b.set_xlabel("cosine"), b.legend(fontsize=8)
    a.set_ylabel("density"), b.set_ylabel("density")  # each histogram has area 1
    fig.tight_layout()
    return fig


def show_arcface_target(head: torch.nn.Module) -> plt.Figure:
    """The logit an ArcFace head gives a class, divided by s, against the angle theta between the feature and that
    class's weight: cos(theta) for a wrong class, the head's own output for the true class, and cos(theta + m)."""
    m = head.m
    theta = torch.linspace(0, torch.pi, 721)
    w = torch.nn.functional.normalize(head.weight[0].detach().float(), dim=0)
    other = torch.randn_like(w)
    other = torch.nn.functional.normalize(other - (other @ w) * w, dim=0)  # a unit vector at right angles to w
    x = torch.cos(theta)[:, None] * w + torch.sin(theta)[:, None] * other  # features at angle theta to class 0
    with torch.no_grad():
        target = head(x, torch.zeros(len(x), dtype=torch.long))[:, 0] / head.s  # (721,)
    deg = torch.rad2deg(theta).numpy()
    fig, ax = plt.subplots(figsize=(6.4, 3.3))
    ax.plot(deg, torch.cos(theta).numpy(), color="0.45", lw=1.5, label=r"wrong class: $\cos\theta$")
    ax.plot(deg, torch.cos(theta + m).numpy(), color="tab:orange", lw=1.2, ls=":", label=r"$\cos(\theta + m)$")
    ax.plot(deg, target.numpy(), color="tab:blue", lw=2.2, alpha=0.8, label="true class: the head's target")
    switch = float(np.degrees(np.pi - m))
    ax.axvline(switch, color="tab:red", lw=0.8, ls="--")
    ax.text(switch - 2, 0.75, f"θ = π − m = {switch:.1f}°\n(cos θ = threshold\n= {head.threshold:.3f})",
            ha="right", va="top", fontsize=8.5, color="tab:red")
    # the true class's curve is the wrong class's shifted left by m: the same logit needs an angle m smaller
    # in black: orange is the dotted cos(theta + m) curve's colour, and the arrow is not part of that curve
    ax.annotate("", xy=(90, 0), xytext=(90 - np.degrees(m), 0), arrowprops=dict(arrowstyle="<->", color="black",
                                                                                 lw=1.2))
    ax.text(96, 0.22, f"m = {m} rad = {np.degrees(m):.1f}°", ha="left", fontsize=8.5, color="black")
    # room below the target's lowest point, cos(pi) - m sin(m), so that its tail stays off the bottom spine
    ax.set_xlim(0, 180), ax.set_ylim(min(-1.0, float(target.min())) - 0.15, 1.05), ax.set_xticks(range(0, 181, 30))
    ax.set_xlabel("θ: angle between the feature and the class weight (degrees)")
    ax.set_ylabel("logit / s")
    ax.grid(alpha=0.3, lw=0.5)
    ax.legend(fontsize=8.5, loc="lower left")
    fig.tight_layout()
    return fig


def angle_window(theta: torch.Tensor | np.ndarray, min_gap: float = 10.0) -> float:
    """Where a 360-degree axis of the angles `theta` (degrees) should start so that it cuts no cloud of points.

    -180 and 180 are one direction, so the usual axis from -180 to 180 splits a cloud that sits there into two
    pieces, one at each edge. The axis starts at -180 when no point lies within `min_gap` / 2 degrees of that
    direction; else in the middle of the empty arc, at least `min_gap` wide (or the widest, if none is), that
    is nearest to it, so that the axis moves as little as it can. The start lies in [-360, 0).
    """
    t = np.sort(np.asarray(theta, dtype=float) % 360.0)  # in [0, 360)
    if len(t) < 2:
        return -180.0
    off = np.abs((t - 180.0 + 180.0) % 360.0 - 180.0)  # each point's angle away from the direction 180
    if off.min() >= min_gap / 2.0:
        return -180.0
    gaps = np.diff(np.concatenate([t, t[:1] + 360.0]))  # gap i: the empty arc from t[i] to the next point
    wide = np.flatnonzero(gaps >= min(min_gap, gaps.max()))
    middles = t[wide] + gaps[wide] / 2.0
    start = float(middles[np.abs((middles - 180.0 + 180.0) % 360.0 - 180.0).argmin()] % 360.0)
    return start - 360.0 if start > 0.0 else start


def class_angles(theta: torch.Tensor | np.ndarray, labels: torch.Tensor | np.ndarray) -> np.ndarray:
    """Each point's angle (degrees) as an angle panel draws it: on the 360-degree axis of `angle_window`, except
    that a class the axis's edge cuts is drawn in one piece around its own mean direction, past that edge.

    The axis starts in an empty direction of all the points taken together, but one class's stray point can still
    lie across it from the rest of its class (a point at 196 degrees drawn at -164 while its class sits at 175).
    Such a class is moved by whole turns, point by point, to within 180 degrees of its mean direction; a class
    drawn in one piece already is left where it is.
    """
    theta, labels = np.asarray(theta, dtype=float), np.asarray(labels)
    start = angle_window(theta)
    shown = (theta - start) % 360.0 + start  # the same directions, on an axis from start to start + 360
    for c in np.unique(labels):
        t = theta[labels == c]
        mean = np.degrees(np.arctan2(np.sin(np.radians(t)).mean(), np.cos(np.radians(t)).mean()))
        mean = (mean - start) % 360.0 + start  # the class's mean direction, on the axis
        around = mean + (t - mean + 180.0) % 360.0 - 180.0  # each point within 180 degrees of it
        if np.ptp(around) < np.ptp(shown[labels == c]):  # the axis's edge cut this class: draw it in one piece
            shown[labels == c] = around
    return shown


def show_toy_embeddings(results: dict[str, tuple[torch.Tensor, torch.Tensor]], angles: bool = True,
                        same_scale: bool = False) -> plt.Figure:
    """One column per loss: the 2-D test embedding coloured by class, on equal axes with their scale, and
    (`angles`) below it each point's angle around the origin, a row per class. Each panel's title gives
    its within/between ratio (`reid.toy.spread_ratios`): smaller is tighter classes for their spacing. An
    embedding panel's title also gives its largest radius, the farthest point's distance from the origin.

    Each embedding panel has its own scale unless `same_scale`, which draws them all on the axes of the
    largest, so that a difference in size shows at a glance. Each angle panel spans 360 degrees, from -180
    to 180 unless a class sits there: then it starts in the nearest empty direction (`angle_window`), and an
    angle left of -180 is that angle plus 360. A class whose stray point still lies across an edge is drawn
    in one piece past that edge, and the panel widens to show it (`class_angles`)."""
    from .toy import spread_ratios

    rows = 2 if angles else 1
    fig, axes = plt.subplots(rows, len(results), figsize=(2.9 * len(results), 3.2 + 1.9 * (rows - 1)),
                             gridspec_kw={"height_ratios": [3, 1.3][:rows]}, squeeze=False)
    reach = 1.08 * max(float(emb.abs().max()) for emb, _ in results.values())  # the largest coordinate, and room
    for col, (name, (emb, labels)) in enumerate(results.items()):
        by_distance, by_angle = spread_ratios(emb, labels)
        colours = {"c": labels.numpy(), "cmap": "tab10", "vmin": 0, "vmax": 9}
        ax = axes[0, col]
        ax.scatter(emb[:, 0].numpy(), emb[:, 1].numpy(), s=5, **colours)
        ax.axhline(0, color="0.85", lw=0.8, zorder=0), ax.axvline(0, color="0.85", lw=0.8, zorder=0)
        radius = float(emb.norm(dim=1).max())  # how far the farthest point lies from the origin: the panel's size
        radius_text = f"{radius:.0f}" if radius >= 10 else f"{radius:.1f}"
        ax.set_title(f"{name}\ndistance: within/between {by_distance:.2f}\nlargest radius {radius_text}", fontsize=9)
        ax.tick_params(labelsize=8)  # the scale: distances (and the triplet margin) can be read off the axes
        ax.grid(alpha=0.25, lw=0.5)
        if same_scale:
            ax.set_xlim(-reach, reach), ax.set_ylim(-reach, reach)
            ax.set_aspect("equal", adjustable="box")
        else:
            ax.set_aspect("equal", adjustable="datalim")
        if angles:
            ax = axes[1, col]
            theta = torch.rad2deg(torch.atan2(emb[:, 1], emb[:, 0])).numpy()
            start = angle_window(theta)
            shown = class_angles(theta, labels.numpy())  # on the axis from start, each class in one piece
            jitter = 0.3 * (torch.rand(len(labels), generator=torch.Generator().manual_seed(0)) - 0.5)
            ax.scatter(shown, (labels + jitter).numpy(), s=4, **colours)
            low = start if shown.min() >= start else shown.min() - 5.0  # wider than 360 only for a class past an edge
            high = start + 360.0 if shown.max() <= start + 360.0 else shown.max() + 5.0
            ax.set_xlim(low, high)
            ax.set_xticks(np.arange(np.ceil(low / 90.0), np.floor(high / 90.0) + 1) * 90.0)
            ax.set_yticks([]), ax.tick_params(labelsize=8), ax.grid(axis="x", alpha=0.3)
            ax.set_xlabel("angle around the origin (°)", fontsize=8)
            ax.set_title(f"angle: within/between {by_angle:.2f}", fontsize=9)
    if angles:
        axes[1, 0].set_ylabel("class", fontsize=8)
    fig.tight_layout()
    return fig


def show_mined_pairs(images: torch.Tensor, labels: Sequence[int], p_idx: torch.Tensor, n_idx: torch.Tensor,
                     d_ap: torch.Tensor, d_an: torch.Tensor, cfg: Config, anchors: Sequence[int],
                     camids: Sequence[int] | None = None) -> plt.Figure:
    """For each anchor: the anchor, its hardest positive (green) and its hardest negative (red).

    With `camids` (the package's 0-based camera ids) each title also names the camera as the
    file names do, c1 to c6 (camid + 1).
    """
    images = denormalize(images, cfg)
    fig, axes = plt.subplots(len(anchors), 3, figsize=(4.2, 2.0 * len(anchors)), squeeze=False)

    def cam(i: int) -> str:
        return "" if camids is None else f", c{int(camids[i]) + 1}"

    for row, a in enumerate(anchors):
        p, n = int(p_idx[a]), int(n_idx[a])
        _show(axes[row, 0], images[a], f"anchor\nid {int(labels[a])}{cam(a)}")
        _show(axes[row, 1], images[p], f"d_ap = {d_ap[a]:.2f}\nid {int(labels[p])}{cam(p)}", "tab:green")
        _show(axes[row, 2], images[n], f"d_an = {d_an[a]:.2f}\nid {int(labels[n])}{cam(n)}", "tab:red")
    fig.suptitle("hardest positive and hardest negative per anchor", fontsize=10)
    fig.tight_layout()
    return fig


def show_hem_boundary(d_ap: torch.Tensor, d_an: torch.Tensor, alphas: Sequence[float],
                      margin: float = 0.3) -> plt.Figure:
    """Each anchor as a dot (d_ap, d_an), and for each HEM factor α the line below which it counts.

    An anchor's hinge term (1 + α) d_ap − (1 − α) d_an + m is positive below the line
    d_an = ((1 + α) d_ap + m) / (1 − α); the legend gives the share of anchors below each line.
    Anchors that clear the margin at α = 0 (the nearly solved ones) are drawn in orange. The
    vertical axis spans the dots; the horizontal one reaches left (not below 0) to where the
    steepest line enters at the bottom, so every line crosses the plot whole, above the dots it counts.
    """
    d_ap, d_an = d_ap.detach().cpu().numpy(), d_an.detach().cpu().numpy()
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    solved = d_ap - d_an + margin <= 0
    ax.scatter(d_ap[~solved], d_an[~solved], s=10, color="0.45", label="counts at α = 0")
    ax.scatter(d_ap[solved], d_an[solved], s=14, color="tab:orange", label="clears the margin at α = 0")
    pad_x, pad_y = 0.05 * (np.ptp(d_ap) or 1.0), 0.05 * (np.ptp(d_an) or 1.0)
    y_low = d_an.min() - pad_y
    enters = [((1 - a) * y_low - margin) / (1 + a) for a in alphas]  # where each line crosses the bottom edge
    x = np.linspace(max(0.0, min([d_ap.min() - pad_x, *enters])), d_ap.max() + pad_x, 50)
    for a, colour in zip(alphas, plt.cm.viridis(np.linspace(0.0, 0.85, len(alphas)))):
        share = np.mean((1 + a) * d_ap - (1 - a) * d_an + margin > 0)
        ax.plot(x, ((1 + a) * x + margin) / (1 - a), color=colour, lw=1.8,
                label=f"α = {a:g}: {100 * share:.0f}% count")
    ax.set_xlim(x[0], x[-1])
    ax.set_ylim(y_low, d_an.max() + pad_y)
    ax.set_xlabel("d_ap, hardest positive distance")
    ax.set_ylabel("d_an, hardest negative distance")
    ax.set_title(f"an anchor counts below the line of its α (m = {margin:g})", fontsize=10)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)
    fig.tight_layout()
    return fig


def show_schedule(schedules: dict[str, tuple], ncols: int | None = None) -> plt.Figure:
    """The learning rate each epoch trains at, on a log axis, one panel per name.

    {name: (cfg, rates)} draws one schedule over all its epochs; {name: (cfg, {label: rates},
    (first, last))} overlays several (two stepping orders, say) over epochs first..last, the
    first label in blue, the second in orange, in every panel. Each epoch is a flat step
    centred on its number, with a mark where a panel shows at most 40 epochs: a change
    between epochs e - 1 and e falls at e - 1/2, and the mark at e is the rate epoch e trains
    at. The labels get one legend below the panels, never over them. `ncols`: panels per row
    (all in one row by default, up to three).
    """
    from matplotlib.lines import Line2D

    styles = [dict(color="tab:blue", marker="o", ms=4, ls="-"), dict(color="tab:orange", marker="x", ms=6, ls="--")]
    ncols = ncols or min(3, len(schedules))
    nrows = -(-len(schedules) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.6 * ncols, 2.9 * nrows + 0.4), squeeze=False)
    legend: dict[str, Line2D] = {}
    for ax, (name, (cfg, rates, *window)) in zip(axes.flat, schedules.items()):
        curves = rates if isinstance(rates, dict) else {None: rates}
        first, last = window[0] if window else (1, len(next(iter(curves.values()))))
        epochs = np.arange(first, last + 1)
        marks = len(epochs) <= 40
        for (label, values), style in zip(curves.items(), styles * len(curves)):
            shown = np.asarray(values[first - 1:last])
            ax.stairs(shown, np.arange(first - 0.5, last + 1), color=style["color"], ls=style["ls"], lw=1.5,
                      baseline=None)
            if marks:
                ax.plot(epochs, shown, ls="none", marker=style["marker"], ms=style["ms"], color=style["color"])
            if label is not None:
                legend.setdefault(label, Line2D([], [], **style))
        ax.set_yscale("log")
        ax.set_xlabel("epoch"), ax.set_ylabel("learning rate")
        if marks:
            ax.set_xticks(epochs if len(epochs) <= 15 else epochs[::5])
        ax.set_title(f"{name}\nwarmup {cfg.warmup_epochs}, steps at {', '.join(map(str, cfg.steps))}", fontsize=9)
        ax.grid(alpha=0.3)
    for ax in axes.flat[len(schedules):]:
        ax.axis("off")
    bottom = 0.0
    if legend:
        bottom = 0.45 / fig.get_figheight()
        fig.legend(legend.values(), legend.keys(), loc="lower center", ncol=len(legend), fontsize=9, frameon=False)
    fig.tight_layout(rect=(0, bottom, 1, 1))
    return fig


def show_history(history: Sequence[dict], title: str | None = None, lr_steps: Sequence[int] = ()) -> plt.Figure:
    """Training curves from a run's history: loss parts, training accuracy, and test mAP / Rank-1.

    `lr_steps` (a config's `steps`): a dashed line in every panel between epochs s - 1 and s, the
    first epoch that trains at the lower rate, and the same epoch axis on all three panels."""
    epochs = [h["epoch"] for h in history]
    fig, (a, b, c) = plt.subplots(1, 3, figsize=(12, 3))
    for key, colour in (("loss_total", "black"), ("loss_id", "tab:blue"), ("loss_triplet", "tab:orange"),
                        ("loss_center", "tab:green")):
        if key in history[0]:
            a.plot(epochs, [h[key] for h in history], color=colour, label=key.removeprefix("loss_"))
    a.set_xlabel("epoch"), a.set_title("loss (weighted parts)", fontsize=10), a.legend(fontsize=8)
    b.plot(epochs, [100 * h["accuracy"] for h in history], color="tab:blue")
    b.set_xlabel("epoch"), b.set_ylabel("%"), b.set_title("training accuracy (ID classifier)", fontsize=10)
    b.set_ylim(0, 100)
    evaluated = [h for h in history if "mAP" in h]
    for key, colour, label in (("mAP", "tab:purple", "mAP"), ("rank1", "tab:red", "Rank-1")):
        c.plot([h["epoch"] for h in evaluated], [100 * h[key] for h in evaluated], "o-", color=colour, label=label)
    c.set_xlabel("epoch"), c.set_ylabel("%"), c.set_title("test set (query vs gallery)", fontsize=10)
    c.set_ylim(0, 100), c.legend(fontsize=8)
    for ax in (a, b, c):
        ax.grid(alpha=0.3)
    steps = [st for st in lr_steps if epochs[0] < st <= epochs[-1]]
    if steps:
        for ax in (a, b, c):
            ax.set_xlim(epochs[0] - 0.3, epochs[-1] + 0.3)
            for st in steps:
                ax.axvline(st - 0.5, color="0.4", ls="--", lw=1, zorder=0)
        for st in steps:
            b.text(st - 0.5, 97, f"lr step, epoch {st} ", rotation=90, fontsize=7, ha="right", va="top", color="0.3")
        a.legend(fontsize=8, loc="upper right", ncol=2)  # clear of the lines, above the late, low losses
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def show_ranked_lists(query: Sequence[Record], gallery: Sequence[Record], distmat, rows: Sequence[int],
                      top: int = 10) -> plt.Figure:
    """For each query row: the query (framed blue, as in `show_identity`), then its `top` nearest gallery
    images, framed green (same person, another camera: a true match), red (another person) or grey (same
    person, same camera: removed by the protocol, not counted). A distractor (pid 0) has "(0000)" in its title."""
    distmat = torch.as_tensor(distmat)
    fig, axes = plt.subplots(len(rows), top + 1, figsize=(0.9 * (top + 1), 2.0 * len(rows)), squeeze=False)
    for r, qi in enumerate(rows):
        q = query[qi]
        _show(axes[r, 0], np.asarray(read_image(q.path)), f"query (id {q.pid})", "tab:blue")
        order = torch.argsort(distmat[qi], stable=True)[:top]
        rank = 0  # the rank under the protocol: removed images do not count
        for c, gi in enumerate(order.tolist(), start=1):
            g = gallery[gi]
            if g.pid == q.pid and g.camid == q.camid:
                colour, label = "0.6", "same cam"
            else:
                rank += 1
                colour, label = ("tab:green" if g.pid == q.pid else "tab:red"), f"rank {rank}"
                if g.pid == 0:  # a distractor: no person of the test set
                    label += " (0000)"
            _show(axes[r, c], np.asarray(read_image(g.path)), label, colour)
    fig.tight_layout()
    return fig


def show_cmc(results: dict, max_rank: int = 20) -> plt.Figure:
    """CMC curves, one per named RankResult, with mAP in the legend. The rank axis is ticked at 1, 5, 10, ...,
    the ranks that tables quote (Rank-1, Rank-5, Rank-10), when the curves reach rank 10."""
    fig, ax = plt.subplots(figsize=(5, 3.2))
    longest = 0
    for name, res in results.items():
        n = min(max_rank, len(res.cmc))
        longest = max(longest, n)
        ax.plot(np.arange(1, n + 1), 100 * np.asarray(res.cmc[:n]), marker="o", ms=3,
                label=f"{name} (mAP {100 * res.mAP:.1f})")
    ax.set_xlabel("rank k"), ax.set_ylabel("CMC@k (%)"), ax.set_title("cumulative matching characteristic", fontsize=10)
    if longest >= 10:
        ax.set_xticks([1, *range(5, longest + 1, 5)])
    else:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # ranks are whole numbers
    ax.grid(alpha=0.3), ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def show_distance_histograms(distmat, q_pids, g_pids, q_camids, g_camids, title: str = "") -> plt.Figure:
    """Distances of true matches (same person, another camera) and of impostors (another person).

    Counts of pairs per bin on a logarithmic axis: impostors outnumber true matches by hundreds
    to one, and the few impostors as close as a true match, which are what costs Rank-1 and
    mAP, would look like zero on a linear axis (or on densities, each of area 1). Pairs of the
    query's person from the query's own camera, which the protocol removes, are left out.
    """
    d = np.asarray(distmat, dtype=np.float64)
    same = np.asarray(q_pids)[:, None] == np.asarray(g_pids)[None, :]
    same_cam = np.asarray(q_camids)[:, None] == np.asarray(g_camids)[None, :]
    pos, neg = d[same & ~same_cam], d[~same]
    fig, ax = plt.subplots(figsize=(5.5, 3.2))
    bins = np.linspace(min(pos.min(), neg.min()), max(pos.max(), neg.max()), 60)
    neg_counts = ax.hist(neg, bins=bins, histtype="stepfilled", alpha=0.4, color="tab:red", edgecolor="tab:red",
                         label=f"impostors: other people ({len(neg):,} pairs)")[0]
    pos_counts = ax.hist(pos, bins=bins, histtype="step", linewidth=2, color="tab:green",
                         label=f"true matches ({len(pos):,} pairs)")[0]  # an outline: the impostors show through
    ax.set_yscale("log")
    top = max(neg_counts.max(), pos_counts.max())
    ax.set_ylim(0.7, top * 30)  # room above the bars for the legend
    ax.set_xlabel("distance"), ax.set_ylabel("pairs per bin (log scale)")
    ax.legend(fontsize=8, loc="upper left", ncols=1)
    ax.set_title(title or "query-gallery distances", fontsize=10)
    fig.tight_layout()
    return fig


def show_search_heatmap(result, marks: dict[str, tuple[int, int, float]] | None = None) -> plt.Figure:
    """The search grid as heatmaps of its criterion, mAP + Rank-1 (person-reid-tiny-baseline's), over (k1, k2), one
    panel per lambda, on one colour scale. The grid has a point only where k2 <= 0.7 k1 (the blank corner) and
    its k1 and k2 values are unevenly spaced (the axes list them). A red circle marks the best point; `marks`
    adds named points (e.g. the paper's setting) in black, each its own shape (a cross, a square, a triangle, a
    diamond; a fifth point is a cross again), on their lambda's panel; the legend is below."""
    lambdas = sorted({r["lambda"] for r in result.rows})
    k1s, k2s = sorted({r["k1"] for r in result.rows}), sorted({r["k2"] for r in result.rows})
    fig, axes = plt.subplots(1, len(lambdas), figsize=(3.9 * len(lambdas), 4.1), squeeze=False, sharey=True)
    values = [100 * (r["mAP"] + r["rank1"]) for r in result.rows]
    vmin, vmax = min(values), max(values)
    for ax, lam in zip(axes[0], lambdas):
        grid = np.full((len(k2s), len(k1s)), np.nan)
        for r in result.rows:
            if r["lambda"] == lam:
                grid[k2s.index(r["k2"]), k1s.index(r["k1"])] = 100 * (r["mAP"] + r["rank1"])
        im = ax.imshow(grid, origin="lower", cmap="viridis", vmin=vmin, vmax=vmax, aspect="auto")
        ax.set_xticks(range(len(k1s)), k1s, fontsize=8, rotation=90), ax.set_yticks(range(len(k2s)), k2s, fontsize=8)
        ax.set_xlabel("k1", fontsize=10), ax.set_title(f"λ = {lam}", fontsize=11)
        if result.best["lambda"] == lam:
            ax.plot(k1s.index(result.best["k1"]), k2s.index(result.best["k2"]), "o", mfc="none", mec="red", ms=11,
                    mew=2, label="best by the criterion")
        for (name, (k1, k2, mark_lam)), marker in zip((marks or {}).items(), itertools.cycle("xs^D")):
            if mark_lam == lam and k1 in k1s and k2 in k2s:  # one marker shape per named point
                ax.plot(k1s.index(k1), k2s.index(k2), marker, mfc="none" if marker != "x" else "black", mec="black",
                        ms=9, mew=2, label=name)
    axes[0, 0].set_ylabel("k2", fontsize=10)
    handles = {label: h for ax in axes[0] for h, label in zip(*ax.get_legend_handles_labels())}
    fig.subplots_adjust(bottom=0.27 if handles else 0.2, left=0.05, right=0.98, wspace=0.1)
    if handles:
        fig.legend(handles.values(), handles.keys(), loc="lower center", ncol=len(handles), fontsize=8, frameon=False)
    fig.colorbar(im, ax=axes[0].tolist(), label="mAP + Rank-1 (points)", shrink=0.8, pad=0.01)
    return fig


def show_k_reciprocal(records: Sequence[Record], index: int, neighbours: Sequence[int],
                      reciprocal: Sequence[bool]) -> plt.Figure:
    """An image and its nearest neighbours (nearest first): blue frames for the k-reciprocal ones
    (whose own nearest neighbours include the image), grey for one-way neighbours; titles say
    whether the neighbour is the same person."""
    centre = records[index]
    shown = [(n, r) for n, r in zip(neighbours, reciprocal) if n != index]
    cols = 11
    n_rows = 1 + (len(shown) + cols - 1) // cols
    fig, axes = plt.subplots(n_rows, cols, figsize=(0.9 * cols, 2.0 * n_rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    axes[0, 0].axis("on")
    _show(axes[0, 0], np.asarray(read_image(centre.path)), f"image (id {centre.pid}, c{centre.camid + 1})", "black")
    for k, (n, recip) in enumerate(shown):
        ax = axes[1 + k // cols, k % cols]
        ax.axis("on")
        rec = records[n]
        _show(ax, np.asarray(read_image(rec.path)),
              f"{k + 1}: {'same' if rec.pid == centre.pid else 'other'} c{rec.camid + 1}", "tab:blue" if recip else "0.7")
    fig.suptitle("nearest neighbours, nearest first (same/other person, camera): blue = k-reciprocal, grey = one-way",
                 fontsize=10)
    fig.tight_layout()
    return fig


# What each row of the results table adds, and over which row (the table's rows, in order after B1).
GAIN_BASES = {"B1 + flipped features": "B1: triplet + softmax + center", "B1 + HEM": "B1: triplet + softmax + center",
              "B1 + flipped features + HEM": "B1 + HEM", "B1 + HEM + re-ranking": "B1 + HEM",
              "B1 + HEM + re-ranking as the code runs it": "B1 + HEM", "B1 + HEM + searched re-ranking": "B1 + HEM"}


def show_results(table) -> plt.Figure:
    """What each trick adds, over the row it is added to: flipping or HEM over B1, flipping over HEM, each
    re-ranking over HEM; ours beside the published change (mAP, Rank-1), and ours alone for mINP (not published).

    `table` is a `reid.results.ResultsTable`. Absolute levels differ between datasets; what a
    trick adds is what can be compared. A row without a published number has one bar.
    """
    by_label = {r.label: r for r in table.rows}
    rows = [r for r in table.rows if r.label in GAIN_BASES]
    labels = [f"{r.label.removeprefix('B1 + ')}  (over {GAIN_BASES[r.label].split(':')[0]})" for r in rows]
    y = np.arange(len(rows))
    fig, axes = plt.subplots(1, 3, figsize=(13, 0.6 * len(rows) + 1.4), sharey=True)
    for ax, (key, title) in zip(axes, (("mAP", "mAP"), ("rank1", "Rank-1"), ("mINP", "mINP (not published)"))):
        base = [by_label[GAIN_BASES[r.label]] for r in rows]
        ours = [getattr(r, key) - getattr(b, key) for r, b in zip(rows, base)]
        published = []
        if key != "mINP":
            published = [(yi, getattr(r, f"published_{key}") - getattr(b, f"published_{key}"))
                         for yi, r, b in zip(y, rows, base) if getattr(r, f"published_{key}") is not None]
        ax.barh(y - 0.2, ours, height=0.4, color="tab:blue", label="this book (measured)")
        if published:
            ax.barh([yi + 0.2 for yi, _ in published], [v for _, v in published], height=0.4, color="tab:grey",
                    label="person-reid-tiny-baseline, Market-1501")
        for yi, value in [(yi - 0.2, v) for yi, v in zip(y, ours)] + [(yi + 0.2, v) for yi, v in published]:
            ax.annotate(f"{value:+.1f}", (value, yi), xytext=(3 if value >= 0 else -3, 0),
                        textcoords="offset points", va="center", ha="left" if value >= 0 else "right", fontsize=7)
        ax.axvline(0, color="black", lw=0.8)
        ax.set_title(f"{title}: change (points)", fontsize=10)
        ax.grid(axis="x", alpha=0.3)
        ax.margins(x=0.2)  # room for the labels at the ends of the bars
    axes[0].set_yticks(y, labels, fontsize=8)
    axes[0].invert_yaxis()
    handles, names = axes[0].get_legend_handles_labels()
    fig.legend(handles, names, fontsize=8, loc="lower center", ncol=2, frameon=False)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    return fig


def show_seed_spread(record: dict, single: dict | None = None, metric: str = "mAP") -> plt.Figure:
    """One dot per training seed for every row of the results table (`reid.results.load_noise_record`), the mean
    as a bar, and `single` ({row: value}, e.g. the table this chapter trained) as a red ring."""
    rows = list(record["rows"])
    fig, ax = plt.subplots(figsize=(9, 0.5 * len(rows) + 1.3))
    for yi, row in enumerate(rows):
        values = np.asarray(record["rows"][row][metric])
        ax.scatter(values, np.full(len(values), yi), s=22, color="tab:blue", alpha=0.8,
                   label="one training seed" if yi == 0 else None, zorder=3)
        ax.plot([values.mean()] * 2, [yi - 0.3, yi + 0.3], color="black", lw=1.5,
                label=f"mean over {len(values)} seeds" if yi == 0 else None)
        if single and row in single:
            ax.scatter([single[row]], [yi], s=90, facecolors="none", edgecolors="red", lw=1.5, zorder=4,
                       label="this chapter's single run" if yi == 0 else None)
    ax.set_yticks(range(len(rows)), [r.removeprefix("B1 + ") for r in rows], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel(f"{metric} (%), synthetic set, smoke profile"), ax.grid(axis="x", alpha=0.3)
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=3, frameon=False)
    fig.tight_layout()
    return fig


def show_training_run(history: Sequence[dict], title: str | None = None, zoom_from: int | None = None) -> plt.Figure:
    """A long run's curves: each loss part on a log scale (the small ones stay visible), training accuracy, the
    test scores, and the test scores again from epoch `zoom_from` (default: half the run) on an axis fitted to
    them, where the last points differ by tenths; legends outside the curves."""
    epochs = [h["epoch"] for h in history]
    fig, (a, b, c, z) = plt.subplots(1, 4, figsize=(15, 3.4))
    for key, colour, style in (("loss_total", "black", "--"), ("loss_id", "tab:blue", "-"),
                               ("loss_triplet", "tab:orange", "-"), ("loss_center", "tab:green", "-")):
        if key in history[0]:
            a.plot(epochs, [h[key] for h in history], style, color=colour, label=key.removeprefix("loss_"))
    a.set_yscale("log"), a.set_xlabel("epoch"), a.set_title("loss parts (weighted), log scale", fontsize=10)
    a.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=4, frameon=False)
    b.plot(epochs, [100 * h["accuracy"] for h in history], color="tab:blue")
    b.set_xlabel("epoch"), b.set_ylabel("%"), b.set_title("training accuracy (ID classifier)", fontsize=10)
    evaluated = [h for h in history if "mAP" in h]
    zoom_from = zoom_from if zoom_from is not None else max(epochs) // 2
    keys = [(k, colour, label) for k, colour, label in (("mAP", "tab:purple", "mAP"), ("rank1", "tab:red", "Rank-1"),
                                                       ("mINP", "tab:green", "mINP")) if k in evaluated[0]]
    for ax, points in ((c, evaluated), (z, [h for h in evaluated if h["epoch"] >= zoom_from])):
        for key, colour, label in keys:
            ax.plot([h["epoch"] for h in points], [100 * h[key] for h in points], "o-", ms=4, color=colour, label=label)
        ax.set_xlabel("epoch"), ax.set_ylabel("%"), ax.grid(alpha=0.3)
    c.set_ylim(0, 100), c.set_title("test set (query vs gallery)", fontsize=10), c.legend(fontsize=8, loc="lower right")
    late = [100 * h[k] for h in evaluated if h["epoch"] >= zoom_from for k, _, _ in keys]
    z.set_ylim(min(late) - 0.5, min(100.0, max(late) + 0.5))
    z.set_title(f"the same from epoch {zoom_from}, zoomed", fontsize=10)
    for ax in (a, b):
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def show_throughput(rates: dict[str, float], title: str) -> plt.Figure:
    """Training images per second, one bar per way of feeding the network: {label: images/s}."""
    fig, ax = plt.subplots(figsize=(7, 0.5 * len(rates) + 1.0))
    labels, values = list(rates), list(rates.values())
    y = np.arange(len(labels))
    ax.barh(y, values, color=["tab:grey"] + ["tab:blue"] * (len(values) - 1), height=0.6)
    for yi, value in zip(y, values):
        ax.annotate(f"{value:.0f}", (value, yi), xytext=(3, 0), textcoords="offset points", va="center", fontsize=8)
    ax.set_yticks(y, labels, fontsize=9)
    ax.invert_yaxis()
    ax.set_xlabel("training images per second")
    ax.set_title(title, fontsize=10)
    ax.margins(x=0.12)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return fig


def show_query_changes(before, after, n_matches, labels: tuple[str, str] = ("without", "with")) -> plt.Figure:
    """What a change does to each query: its AP (left) and the rank of its hardest true match (right), before
    against after; points under the diagonal on the right found their last match sooner.

    `before` and `after` are `reid.evaluation.rank_statistics` results (first rank, AP, INP per
    query); `n_matches` (per query) turns INP back into the rank of the hardest match (n / INP).
    Queries with no true match are left out."""
    first_b, ap_b, inp_b = (np.asarray(a) for a in before)
    first_a, ap_a, inp_a = (np.asarray(a) for a in after)
    n = np.asarray(n_matches, dtype=np.float64)
    keep = (first_b > 0) & (first_a > 0)
    last_b, last_a = n[keep] / inp_b[keep], n[keep] / inp_a[keep]
    fig, axes = plt.subplots(1, 2, figsize=(9, 4))
    ax = axes[0]
    better, worse = int((ap_a[keep] > ap_b[keep] + 1e-9).sum()), int((ap_a[keep] < ap_b[keep] - 1e-9).sum())
    ax.scatter(100 * ap_b[keep], 100 * ap_a[keep], s=6, alpha=0.5)
    ax.plot([0, 100], [0, 100], color="black", lw=0.8)
    ax.set_xlabel(f"AP {labels[0]} (%)"), ax.set_ylabel(f"AP {labels[1]} (%)")
    ax.set_title(f"AP per query: {better} rise, {worse} fall", fontsize=10)
    ax.set_xlim(-2, 102), ax.set_ylim(-2, 102), ax.set_aspect("equal")  # AP = 0 and 100 off the frame
    ax = axes[1]
    sooner, later = int((last_a < last_b).sum()), int((last_a > last_b).sum())
    ax.scatter(last_b, last_a, s=6, alpha=0.5, color="tab:green")
    top = max(last_b.max(), last_a.max()) * 1.2
    ax.plot([1, top], [1, top], color="black", lw=0.8)
    ax.set_xscale("log"), ax.set_yscale("log"), ax.set_xlim(0.8, top), ax.set_ylim(0.8, top)
    ax.set_xlabel(f"rank of the hardest true match, {labels[0]}")
    ax.set_ylabel(f"rank of the hardest true match, {labels[1]}")
    ax.set_title(f"hardest match: {sooner} sooner, {later} later", fontsize=10)
    ax.set_aspect("equal")
    fig.tight_layout()
    return fig
