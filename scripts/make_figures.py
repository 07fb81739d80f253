"""Draw the book's static figures (those not produced by a notebook) into book/images/.

Run from the repository root: `python scripts/make_figures.py`.
"""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

from reid.visualize import pipeline_figure  # noqa: E402

OUT = Path(__file__).resolve().parents[1] / "book" / "images"


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    fig = pipeline_figure()
    fig.savefig(OUT / "pipeline.png", dpi=150, bbox_inches="tight", metadata={"Software": None})
    print(f"wrote {OUT / 'pipeline.png'}")


if __name__ == "__main__":
    main()
