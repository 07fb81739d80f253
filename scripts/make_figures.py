"""Draw the book's static figures (those not produced by a notebook) into book/images/.

Run from the repository root:

    python scripts/make_figures.py            # pipeline.png, favicon.png
    python scripts/make_figures.py --readme   # also ranked_lists.png for README.md, from the smoke run
                                              # (trained by chapter 5; trained here if absent, minutes on a CPU)
"""

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

from reid.visualize import pipeline_figure  # noqa: E402

OUT = Path(__file__).resolve().parents[1] / "book" / "images"


def favicon_figure():
    """The book's tab icon, 32x32: a query (blue) and its true match (green) side by side."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyBboxPatch

    fig = plt.figure(figsize=(1, 1))
    ax = fig.add_axes([0, 0, 1, 1])
    ax.set_xlim(0, 1), ax.set_ylim(0, 1), ax.axis("off")
    for x, colour in ((0.06, "tab:blue"), (0.54, "tab:green")):
        ax.add_patch(FancyBboxPatch((x, 0.06), 0.4, 0.88, boxstyle="round,pad=0,rounding_size=0.08", color=colour))
        ax.add_patch(plt.Circle((x + 0.2, 0.72), 0.1, color="white"))
        ax.add_patch(FancyBboxPatch((x + 0.08, 0.16), 0.24, 0.38, boxstyle="round,pad=0,rounding_size=0.06",
                                    color="white"))
    return fig


def ranked_lists_figure():
    """Chapter 6's ranked lists of the smoke model (flipped, normalised features, cosine distance)."""
    import torch.nn.functional as F

    from reid import Config
    from reid.data import load_dataset, make_dataloaders
    from reid.engine import trained_model
    from reid.evaluation import extract_features, pairwise_distance
    from reid.visualize import show_ranked_lists

    cfg = Config.smoke()
    dataset = load_dataset(cfg, verbose=False)
    model, _ = trained_model(cfg, dataset=dataset)
    _, loader, nq, _ = make_dataloaders(cfg, dataset)
    feats, _, _ = extract_features(model, loader, "cpu", flip=True)
    feats = F.normalize(feats, dim=1)
    distmat = pairwise_distance(feats[:nq], feats[nq:], "cosine")
    return show_ranked_lists(dataset.query, dataset.gallery, distmat, rows=[0, 40, 80, 120], top=8)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--readme", action="store_true", help="also draw ranked_lists.png from the smoke run")
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    figures = {"pipeline.png": (pipeline_figure, dict(dpi=150, bbox_inches="tight")),
               "favicon.png": (favicon_figure, dict(dpi=32, transparent=True))}
    if args.readme:
        figures["ranked_lists.png"] = (ranked_lists_figure, dict(dpi=110, bbox_inches="tight"))
    for name, (draw, options) in figures.items():
        draw().savefig(OUT / name, metadata={"Software": None}, **options)
        print(f"wrote {OUT / name}")


if __name__ == "__main__":
    main()
