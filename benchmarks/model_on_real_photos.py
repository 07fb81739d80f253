"""How well does a trained run find real people? A run evaluated on a Market-layout folder of real photos.

The book's smoke run learns from the synthetic set (drawn figures, 64x32 pixels). This script
evaluates such a run, unchanged, on photos of real people that it never saw: CUHK01 (Li, Zhao
and Wang, ACCV 2012; 971 people, two cameras), rebuilt in the Market-1501 layout, which lies
under ../shared/data/cuhk01 on the machines this project is developed on (research use only;
not distributed with the project). It prints, on the test split (query against gallery, the
Market-1501 protocol: the query's own camera is not counted), mAP and the share of queries
whose first true match is at rank 1 and within the top 10, for

* the colour histogram of chapter 1 (no learning at all: the floor),
* the run with plain and with flipped features, each with and without k-reciprocal re-ranking
  (`python -m reid test` does the same on the run's own dataset).

    python benchmarks/model_on_real_photos.py --run runs/smoke [--root ../shared/data/cuhk01]
"""

from __future__ import annotations

import argparse
import dataclasses
import platform
from pathlib import Path

import numpy as np
import torch

from reid import describe_device, get_device
from reid.__main__ import test_rows
from reid.baselines import color_histogram_features
from reid.data import Market1501, make_dataloaders
from reid.engine import load_model
from reid.evaluation import evaluate_features

DEFAULT_ROOT = Path(__file__).resolve().parents[2] / "shared" / "data" / "cuhk01"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", required=True, help="a run folder (or a run's name under runs/)")
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT, help="a Market-layout folder of real photos")
    args = parser.parse_args()
    if not (args.root / "bounding_box_test").is_dir():
        raise SystemExit(f"no Market-layout dataset at {args.root}; pass --root")
    device = get_device("auto")
    model, cfg = load_model(args.run, device)
    trained_on = "the synthetic set" if cfg.dataset == "synthetic" else cfg.dataset
    cfg = dataclasses.replace(cfg, dataset="market1501", data_root=str(args.root.parent), market_dir=args.root.name,
                              num_workers=0)
    dataset = Market1501(args.root, verbose=False)
    _, test_loader, num_query, _ = make_dataloaders(cfg, dataset)
    print(f"machine: {platform.machine()}, {describe_device(device)}; torch {torch.__version__}")
    print(f"run {args.run}: {cfg.backbone} at {cfg.input_size[0]}x{cfg.input_size[1]}, trained on {trained_on}")
    people = len({r.pid for r in dataset.query})
    print(f"test split of {args.root.name}: {num_query} queries of {people} people, "
          f"{len(dataset.gallery)} gallery images")
    print(f"{'features':<40} {'mAP':>6} {'rank-1':>7} {'top-10':>7}")
    records = dataset.query + dataset.gallery
    hist = torch.from_numpy(color_histogram_features([r.path for r in records]))
    pids, camids = np.array([r.pid for r in records]), np.array([r.camid for r in records])
    colour = evaluate_features(hist, pids, camids, num_query, distance="euclidean", feat_norm=False)
    rows = [("colour histogram (chapter 1, no learning)", colour)]
    rows += test_rows(cfg, model, test_loader, num_query, device)
    for name, res in rows:
        print(f"{name:<40} {100 * res.mAP:6.1f} {100 * res.cmc[0]:7.1f} {100 * res.cmc[9]:7.1f}")


if __name__ == "__main__":
    main()
