"""How hard is the synthetic Market-1501? Generation time, size, and three reference scores.

1. a colour-histogram nearest neighbour (global, and per 6 horizontal stripes);
2. an untrained ResNet18 (random weights) as a feature extractor;
3. the same ResNet18 trained from scratch with the label-smoothed ID loss alone (no
   triplet loss, no BNNeck, no ImageNet weights): a deliberately plain CNN.

A useful synthetic set puts (1) well below (3): then the tricks of the book have room to
show. Run: `python benchmarks/synthetic_difficulty.py [--preset small] [--epochs 20]`.
Prints what it measured; the numbers go into the closing notes and the book with the
machine named.
"""

from __future__ import annotations

import argparse
import platform
import shutil
import tempfile
import time

import numpy as np
import torch
import torchvision
from torch import nn

from reid import Config, describe_device, get_device, seed_everything
from reid.baselines import color_histogram_features
from reid.data import load_dataset, make_dataloaders, make_synthetic_market
from reid.evaluation import evaluate_rank, pairwise_distance


def folder_size(path) -> tuple[int, float]:
    files = [p for p in path.rglob("*.jpg")]
    return len(files), sum(p.stat().st_size for p in files) / 2**20


@torch.inference_mode()
def extract(backbone: nn.Module, loader, device) -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
    backbone.eval()
    feats, pids, camids = [], [], []
    for img, pid, camid, _ in loader:
        feats.append(backbone(img.to(device)).float().cpu())
        pids.append(pid.numpy())
        camids.append(camid.numpy())
    return torch.cat(feats), np.concatenate(pids), np.concatenate(camids)


def cnn_score(backbone, loader, num_query, device):
    f, pids, camids = extract(backbone, loader, device)
    f = nn.functional.normalize(f, dim=1)
    dist = 1 - f[:num_query] @ f[num_query:].T  # cosine distance
    return evaluate_rank(dist.numpy(), pids[:num_query], pids[num_query:], camids[:num_query], camids[num_query:])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="small")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--size", type=int, nargs=2, default=(128, 64), metavar=("H", "W"))
    args = ap.parse_args()
    device = get_device()
    print(f"machine: {platform.processor() or platform.machine()}, torch {torch.__version__}, {describe_device(device)}")

    root = tempfile.mkdtemp(prefix="reid-difficulty-")
    try:
        start = time.perf_counter()
        folder = make_synthetic_market(root, args.preset, args.seed, verbose=False)
        gen = time.perf_counter() - start
        n, mb = folder_size(folder)
        print(f"generation: {args.preset} preset, {n} images, {mb:.1f} MiB, {gen:.1f} s (cold, empty cache)")

        cfg = Config.smoke(data_root=root, synthetic_preset=args.preset, synthetic_seed=args.seed,
                           input_size=tuple(args.size), num_workers=2, max_epochs=args.epochs,
                           val_identities=0)  # train on all 150 identities, as measured
        data = load_dataset(cfg, verbose=True)
        q, g = data.query, data.gallery
        qp, gp = np.array([r.pid for r in q]), np.array([r.pid for r in g])
        qc, gc = np.array([r.camid for r in q]), np.array([r.camid for r in g])
        for stripes in (1, 6):
            feats = color_histogram_features([r.path for r in q + g], stripes=stripes)
            feats = torch.from_numpy(feats)
            res = evaluate_rank(pairwise_distance(feats[: len(q)], feats[len(q):]), qp, gp, qc, gc)
            print(f"colour histogram ({stripes} stripe{'s' if stripes > 1 else ''}): {res.summary()}")

        seed_everything(cfg.seed)
        train_loader, test_loader, num_query, num_classes = make_dataloaders(cfg, data)
        backbone = torchvision.models.resnet18(weights=None)
        backbone.fc = nn.Identity()
        head = nn.Linear(512, num_classes)
        backbone.to(device), head.to(device)
        print(f"untrained ResNet18: {cnn_score(backbone, test_loader, num_query, device).summary()}")

        params = list(backbone.parameters()) + list(head.parameters())
        opt = torch.optim.Adam(params, lr=1e-3, weight_decay=5e-4)
        sched = torch.optim.lr_scheduler.MultiStepLR(opt, [int(args.epochs * 0.6), int(args.epochs * 0.85)], 0.1)
        ce = nn.CrossEntropyLoss(label_smoothing=0.1)
        start, seen = time.perf_counter(), 0
        for epoch in range(args.epochs):
            backbone.train(), head.train()
            total = 0.0
            for img, pid, _, _ in train_loader:
                loss = ce(head(backbone(img.to(device))), pid.to(device))
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                total += loss.item()
                seen += len(img)
            sched.step()
            print(f"epoch {epoch + 1:3d}: loss {total / len(train_loader):.3f}")
        train_s = time.perf_counter() - start
        res = cnn_score(backbone, test_loader, num_query, device)
        print(f"trained ResNet18 ({args.epochs} epochs, ID loss only, {args.size[0]}x{args.size[1]}, "
              f"{train_s:.0f} s, {seen / train_s:.0f} img/s): {res.summary()}")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
