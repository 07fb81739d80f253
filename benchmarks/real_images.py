"""Does the smoke profile learn on real images? Colour histogram, untrained and trained network on CUHK01.

CUHK01 (Li, Zhao and Wang, ACCV 2012; 971 people, two cameras, 4 images each), rebuilt in
the Market-1501 layout, lies under ../shared/data/cuhk01 on the machines this project is
developed on; it is not distributed with the project. The script prints mAP / Rank-1 of

* the colour histogram of chapter 1 (no learning),
* the smoke profile's network before training (random weights),
* the same network after `reid.engine.train` with the smoke profile (ResNet18 from scratch),

and the wall time of the training. Usage:

    python benchmarks/real_images.py [--root ../shared/data/cuhk01] [--max-epochs N] [--output-dir runs]
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import numpy as np
import torch

from reid import Config, describe_device, get_device, seed_everything
from reid.baselines import color_histogram_features
from reid.data import Market1501, make_dataloaders
from reid.engine import train
from reid.evaluation import RankResult, evaluate_features, evaluate_model
from reid.model import Baseline

DEFAULT_ROOT = Path(__file__).resolve().parents[2] / "shared" / "data" / "cuhk01"


def real_config(root: Path, **changes) -> Config:
    """The smoke profile pointed at a Market-layout folder of real images."""
    return Config.smoke(dataset="market1501", data_root=str(root.parent), market_dir=root.name,
                        name=f"smoke_{root.name}", **changes)


def baselines(cfg: Config, dataset: Market1501) -> tuple[RankResult, RankResult]:
    """(colour histogram, untrained network) on the query and gallery of `dataset`."""
    records = dataset.query + dataset.gallery
    hist = torch.from_numpy(color_histogram_features([r.path for r in records]))
    pids, camids = np.array([r.pid for r in records]), np.array([r.camid for r in records])
    colour = evaluate_features(hist, pids, camids, len(dataset.query), distance="euclidean", feat_norm=False)
    _, test_loader, num_query, num_classes = make_dataloaders(cfg, dataset)
    seed_everything(cfg.seed)
    untrained = evaluate_model(Baseline.from_config(cfg, num_classes), test_loader, num_query, cfg, get_device(cfg.device))
    return colour, untrained


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT)
    parser.add_argument("--max-epochs", type=int, default=None, help="default: the smoke profile's")
    parser.add_argument("--output-dir", default="runs")
    args = parser.parse_args()
    if not (args.root / "bounding_box_train").is_dir():
        raise SystemExit(f"no Market-layout dataset at {args.root}; pass --root")
    cfg = real_config(args.root, output_dir=args.output_dir)
    if args.max_epochs:
        cfg = dataclasses.replace(cfg, max_epochs=args.max_epochs, name=f"{cfg.name}_e{args.max_epochs}")
    dataset = Market1501(args.root, verbose=False)
    print(f"{args.root.name}: {len(dataset.train)} train / {len(dataset.query)} query / {len(dataset.gallery)} gallery "
          f"images; {describe_device(get_device(cfg.device))}")
    colour, untrained = baselines(cfg, dataset)
    print(f"colour histogram : {colour.summary()}")
    print(f"untrained network: {untrained.summary()}", flush=True)
    start = time.perf_counter()
    result = train(cfg, resume=True, dataset=dataset)
    wall = time.perf_counter() - start
    trained = evaluate_model(result.model, make_dataloaders(cfg, dataset)[1], len(dataset.query), cfg, result.device)
    print(f"trained network  : {trained.summary()}  ({cfg.max_epochs} epochs, {wall:.0f} s wall incl. evaluations)")


if __name__ == "__main__":
    main()
