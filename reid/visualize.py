"""Every figure the book draws. Each function returns its matplotlib Figure."""

from __future__ import annotations

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
    """One test identity across cameras: a column per camera, queries framed in blue."""
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
    fig.suptitle(f"identity {pid:04d} seen by {len(cams)} cameras", fontsize=10)
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
    """The augmentation viewer: the original, then each training augmentation alone, `samples` draws each."""
    torch.manual_seed(seed)
    img = read_image(path)
    steps = augmentation_steps(cfg)
    fig, axes = plt.subplots(samples, len(steps) + 1, figsize=(1.25 * (len(steps) + 1), 2.2 * samples),
                             squeeze=False)
    for i in range(samples):
        _show(axes[i, 0], img, "original" if i == 0 else None)
        for j, (name, transform) in enumerate(steps.items(), start=1):
            _show(axes[i, j], denormalize(transform(img), cfg), name if i == 0 else None)
    fig.tight_layout()
    return fig


def show_dataset_overview(dataset: Market1501) -> plt.Figure:
    """Images per camera in each split, and images per identity in the training set."""
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 2.8))
    cams = sorted({r.camid for r in dataset.train + dataset.query + dataset.gallery})
    width = 0.27
    for k, (name, recs) in enumerate((("train", dataset.train), ("query", dataset.query),
                                      ("gallery", dataset.gallery))):
        counts = [sum(r.camid == c for r in recs) for c in cams]
        a.bar(np.arange(len(cams)) + (k - 1) * width, counts, width, label=name)
    a.set_xticks(range(len(cams)), [f"c{c + 1}" for c in cams])
    a.set_ylabel("images"), a.set_title("images per camera", fontsize=10), a.legend(fontsize=8)
    per_id = np.bincount([r.pid for r in dataset.train])
    b.hist(per_id, bins=np.arange(per_id.min(), per_id.max() + 2) - 0.5, color="tab:gray")
    b.set_xlabel("images of one identity"), b.set_ylabel("identities")
    b.set_title("training images per identity", fontsize=10)
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
    fig, ax = plt.subplots(figsize=(11, 3.6))
    ax.set_xlim(0, 11), ax.set_ylim(0, 3.6), ax.axis("off")

    def box(x, y, w, h, text, colour, style="-"):
        ax.add_patch(plt.Rectangle((x, y), w, h, facecolor=colour, alpha=0.2, edgecolor=colour, lw=1.5, ls=style))
        ax.text(x + w / 2, y + h / 2, text, ha="center", va="center", fontsize=8)
        return (x, y, w, h)

    def arrow(a, b, label="", style="-", colour="0.25", at=(0.0, 0.0)):
        ax.annotate("", xy=b, xytext=a, arrowprops=dict(arrowstyle="->", lw=1.3, color=colour, ls=style))
        if label:
            ax.text((a[0] + b[0]) / 2 + at[0], (a[1] + b[1]) / 2 + at[1], label, ha="center", va="center",
                    fontsize=7, color="0.3")

    net, loss, test = "tab:blue", "tab:red", "tab:green"
    box(0.1, 1.6, 1.1, 0.8, f"image\n3 x {input_size[0]} x {input_size[1]}", "0.5")
    box(1.6, 1.5, 1.7, 1.0, f"{backbone}\nstem, layer1-4\nlast stride 1", net)
    box(3.7, 1.6, 1.0, 0.8, "global avg.\npooling", net)
    box(5.1, 1.6, 1.1, 0.8, f"feat\n{feat_dim}", net)
    box(6.6, 1.6, 1.2, 0.8, "BNNeck\nBatchNorm1d\n(bias frozen)", net)
    box(8.2, 1.6, 1.1, 0.8, f"bn_feat\n{feat_dim}", net)
    box(9.6, 1.6, 1.3, 0.8, "classifier\nno bias\n(or ArcFace)", net)
    box(4.6, 2.9, 2.1, 0.6, "triplet loss (+ HEM)\ncenter loss", loss)
    box(9.6, 2.9, 1.3, 0.6, "ID loss\n(label smoothing)", loss)
    box(7.6, 0.15, 2.6, 0.7, "test: L2-normalise, flip,\ncosine distance, re-ranking", test, "--")
    arrow((1.2, 2.0), (1.6, 2.0))
    arrow((3.3, 2.0), (3.7, 2.0), f"map {feat_dim} x {map_size[0]} x {map_size[1]}", at=(0.35, -0.75))
    arrow((4.7, 2.0), (5.1, 2.0))
    arrow((6.2, 2.0), (6.6, 2.0))
    arrow((7.8, 2.0), (8.2, 2.0))
    arrow((9.3, 2.0), (9.6, 2.0))
    arrow((5.65, 2.4), (5.65, 2.9), colour=loss)
    arrow((10.25, 2.4), (10.25, 2.9), "logits", colour=loss, at=(0.3, 0.0))
    arrow((8.75, 1.6), (8.75, 0.85), style="--", colour=test)
    ax.text(0.1, 3.35, "training: red, the losses and the feature each one sees", fontsize=8, color=loss)
    ax.text(0.1, 0.5, "test (neck_feat = \"after\"): green, dashed", fontsize=8, color=test)
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
    fig.tight_layout()
    return fig


def show_toy_embeddings(results: dict[str, tuple[torch.Tensor, torch.Tensor]]) -> plt.Figure:
    """One panel per loss: the 2-D test embedding, coloured by class, on equal axes with their scale."""
    fig, axes = plt.subplots(1, len(results), figsize=(2.6 * len(results), 2.8), squeeze=False)
    for ax, (name, (emb, labels)) in zip(axes[0], results.items()):
        ax.scatter(emb[:, 0].numpy(), emb[:, 1].numpy(), c=labels.numpy(), cmap="tab10", s=5, vmin=0, vmax=9)
        ax.axhline(0, color="0.85", lw=0.8, zorder=0), ax.axvline(0, color="0.85", lw=0.8, zorder=0)
        ax.set_title(name, fontsize=10)
        ax.tick_params(labelsize=7)  # the scale: distances (and the triplet margin) can be read off the axes
        ax.grid(alpha=0.25, lw=0.5)
        ax.set_aspect("equal", adjustable="datalim")
    fig.tight_layout()
    return fig


def show_mined_pairs(images: torch.Tensor, labels: Sequence[int], p_idx: torch.Tensor, n_idx: torch.Tensor,
                     d_ap: torch.Tensor, d_an: torch.Tensor, cfg: Config, anchors: Sequence[int]) -> plt.Figure:
    """For each anchor: the anchor, its hardest positive (green) and its hardest negative (red)."""
    images = denormalize(images, cfg)
    fig, axes = plt.subplots(len(anchors), 3, figsize=(3.6, 2.0 * len(anchors)), squeeze=False)
    for row, a in enumerate(anchors):
        p, n = int(p_idx[a]), int(n_idx[a])
        _show(axes[row, 0], images[a], f"anchor (id {int(labels[a])})")
        _show(axes[row, 1], images[p], f"d_ap = {d_ap[a]:.2f}", "tab:green")
        _show(axes[row, 2], images[n], f"d_an = {d_an[a]:.2f} (id {int(labels[n])})", "tab:red")
    fig.suptitle("hardest positive and hardest negative per anchor", fontsize=10)
    fig.tight_layout()
    return fig


def show_hem_distributions(d_ap: torch.Tensor, d_an: torch.Tensor, alphas: Sequence[float],
                           margin: float = 0.3) -> plt.Figure:
    """The mined distances as the loss sees them, (1 + α) d_ap and (1 − α) d_an, for each HEM factor α."""
    fig, axes = plt.subplots(1, len(alphas), figsize=(3.2 * len(alphas), 2.6), sharey=True, squeeze=False)
    hi = float(max(d_ap.max(), d_an.max())) * (1 + max(alphas))
    bins = np.linspace(0, hi, 30)
    for ax, a in zip(axes[0], alphas):
        ap, an = (1 + a) * d_ap, (1 - a) * d_an
        active = (ap - an + margin > 0).float().mean().item()
        ax.hist(ap.numpy(), bins=bins, alpha=0.6, color="tab:green", label="(1+α) d_ap")
        ax.hist(an.numpy(), bins=bins, alpha=0.6, color="tab:red", label="(1−α) d_an")
        ax.set_title(f"α = {a}: {100 * active:.0f}% of anchors violate the margin", fontsize=9)
        ax.set_xlabel("distance")
    axes[0, 0].set_ylabel("anchors"), axes[0, 0].legend(fontsize=8)
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
    """For each query row: the query, then its `top` nearest gallery images, framed green (same
    person, another camera: a true match), red (another person) or grey (same person, same
    camera: removed by the protocol, not counted)."""
    distmat = torch.as_tensor(distmat)
    fig, axes = plt.subplots(len(rows), top + 1, figsize=(0.9 * (top + 1), 2.0 * len(rows)), squeeze=False)
    for r, qi in enumerate(rows):
        q = query[qi]
        _show(axes[r, 0], np.asarray(read_image(q.path)), f"query (id {q.pid})", "black")
        order = torch.argsort(distmat[qi], stable=True)[:top]
        rank = 0  # the rank under the protocol: removed images do not count
        for c, gi in enumerate(order.tolist(), start=1):
            g = gallery[gi]
            if g.pid == q.pid and g.camid == q.camid:
                colour, label = "0.6", "same cam"
            else:
                rank += 1
                colour, label = ("tab:green" if g.pid == q.pid else "tab:red"), f"rank {rank}"
            _show(axes[r, c], np.asarray(read_image(g.path)), label, colour)
    fig.tight_layout()
    return fig


def show_cmc(results: dict, max_rank: int = 20) -> plt.Figure:
    """CMC curves, one per named RankResult, with mAP in the legend."""
    fig, ax = plt.subplots(figsize=(5, 3.2))
    for name, res in results.items():
        n = min(max_rank, len(res.cmc))
        ax.plot(np.arange(1, n + 1), 100 * np.asarray(res.cmc[:n]), marker="o", ms=3,
                label=f"{name} (mAP {100 * res.mAP:.1f})")
    ax.set_xlabel("rank k"), ax.set_ylabel("CMC@k (%)"), ax.set_title("cumulative matching characteristic", fontsize=10)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # ranks are whole numbers
    ax.grid(alpha=0.3), ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def show_distance_histograms(distmat, q_pids, g_pids, q_camids, g_camids, title: str = "") -> plt.Figure:
    """Distances of true matches (same person, another camera) against all other pairs.

    Both histograms are densities (each has area 1), so that a few thousand true matches and
    hundreds of thousands of other pairs can be compared on one axis; the legend gives the counts.
    """
    d = np.asarray(distmat, dtype=np.float64)
    same = np.asarray(q_pids)[:, None] == np.asarray(g_pids)[None, :]
    same_cam = np.asarray(q_camids)[:, None] == np.asarray(g_camids)[None, :]
    pos, neg = d[same & ~same_cam], d[~same]
    fig, ax = plt.subplots(figsize=(5, 3))
    bins = np.linspace(min(pos.min(), neg.min()), max(pos.max(), neg.max()), 60)
    ax.hist(neg, bins=bins, density=True, alpha=0.6, color="tab:red", label=f"other people ({len(neg):,} pairs)")
    ax.hist(pos, bins=bins, density=True, alpha=0.6, color="tab:green", label=f"true matches ({len(pos):,} pairs)")
    ax.set_xlabel("distance"), ax.set_ylabel("share of pairs per unit of distance"), ax.legend(fontsize=8)
    ax.set_title(title or "query-gallery distances", fontsize=10)
    fig.tight_layout()
    return fig


def show_search_heatmap(result, metric: str = "mAP") -> plt.Figure:
    """The search grid as heatmaps of `metric` over (k1, k2), one panel per lambda; the best point circled."""
    lambdas = sorted({r["lambda"] for r in result.rows})
    k1s, k2s = sorted({r["k1"] for r in result.rows}), sorted({r["k2"] for r in result.rows})
    fig, axes = plt.subplots(1, len(lambdas), figsize=(3.9 * len(lambdas), 3.9), squeeze=False, sharey=True)
    values = [100 * r[metric] for r in result.rows]
    vmin, vmax = min(values), max(values)
    for ax, lam in zip(axes[0], lambdas):
        grid = np.full((len(k2s), len(k1s)), np.nan)
        for r in result.rows:
            if r["lambda"] == lam:
                grid[k2s.index(r["k2"]), k1s.index(r["k1"])] = 100 * r[metric]
        im = ax.imshow(grid, origin="lower", cmap="viridis", vmin=vmin, vmax=vmax, aspect="auto")
        ax.set_xticks(range(len(k1s)), k1s, fontsize=8, rotation=90), ax.set_yticks(range(len(k2s)), k2s, fontsize=8)
        ax.set_xlabel("k1", fontsize=10), ax.set_title(f"λ = {lam}", fontsize=11)
        if result.best["lambda"] == lam:
            ax.plot(k1s.index(result.best["k1"]), k2s.index(result.best["k2"]), "o", mfc="none", mec="red", ms=10)
    axes[0, 0].set_ylabel("k2", fontsize=10)
    fig.colorbar(im, ax=axes[0].tolist(), label=f"{metric} (%)", shrink=0.8)
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
    _show(axes[0, 0], np.asarray(read_image(centre.path)), f"image (id {centre.pid})", "black")
    for k, (n, recip) in enumerate(shown):
        ax = axes[1 + k // cols, k % cols]
        ax.axis("on")
        rec = records[n]
        _show(ax, np.asarray(read_image(rec.path)), f"{k + 1}: {'same' if rec.pid == centre.pid else 'other'}",
              "tab:blue" if recip else "0.7")
    fig.suptitle("nearest neighbours: blue = k-reciprocal, grey = one-way", fontsize=10)
    fig.tight_layout()
    return fig


def show_results(table) -> plt.Figure:
    """The results table as gains over B1: each trick's change in mAP and Rank-1, ours beside the published one.

    `table` is a `reid.results.ResultsTable`. Absolute levels differ between datasets; what a
    trick adds is what can be compared. A row without a published number has one bar.
    """
    rows = table.rows[1:]
    base = table.rows[0]
    labels = [r.label.removeprefix("B1 + ") for r in rows]
    y = np.arange(len(rows))
    fig, axes = plt.subplots(1, 2, figsize=(11, 0.55 * len(rows) + 1.2), sharey=True)
    for ax, (key, title) in zip(axes, (("mAP", "mAP"), ("rank1", "Rank-1"))):
        ours = [getattr(r, key) - getattr(base, key) for r in rows]
        published = [(yi, getattr(r, f"published_{key}") - getattr(base, f"published_{key}")) for yi, r in zip(y, rows)
                     if getattr(r, f"published_{key}") is not None]
        ax.barh(y - 0.2, ours, height=0.4, color="tab:blue", label="this book (measured)")
        ax.barh([yi + 0.2 for yi, _ in published], [v for _, v in published], height=0.4, color="tab:grey",
                label="person-reid-tiny-baseline, Market-1501")
        for yi, value in [(yi - 0.2, v) for yi, v in zip(y, ours)] + [(yi + 0.2, v) for yi, v in published]:
            ax.annotate(f"{value:+.1f}", (value, yi), xytext=(3 if value >= 0 else -3, 0),
                        textcoords="offset points", va="center", ha="left" if value >= 0 else "right", fontsize=7)
        ax.axvline(0, color="black", lw=0.8)
        ax.set_title(f"{title}: change over B1 (points)", fontsize=10)
        ax.grid(axis="x", alpha=0.3)
        ax.margins(x=0.15)  # room for the labels at the ends of the bars
    axes[0].set_yticks(y, labels, fontsize=8)
    axes[0].invert_yaxis()
    handles, names = axes[0].get_legend_handles_labels()
    fig.legend(handles, names, fontsize=8, loc="lower center", ncol=2, frameon=False)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
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
