"""Training throughput: the package's loop fed two ways, against a plain fp32 loop in the tiny baseline's style.

Three loops train the same model (same initial weights, loss and optimizer settings) on the
same synthetic data, one after the other in the same process, alternating over rounds; each
is timed over the same number of steps after a few warm-up steps:

* plain: what person-reid-tiny-baseline's `do_train` does: fp32, contiguous tensors, one
  optimizer group per tensor, `loss.item()` every step, a DataLoader whose workers decode and
  augment every JPEG (cuDNN autotuning on, as that project sets it);
* reid, loader: `reid.engine.train_one_epoch` (AMP and channels-last on CUDA, two optimizer
  groups, fused Adam, one host sync per `log_period` steps) fed by the same kind of DataLoader
  (`train_data="loader"`);
* reid, device: the same loop fed by the training split decoded once and augmented a batch at
  a time on the training device (`train_data="device"`, the default where the split fits).

    python benchmarks/train_throughput.py                 # CPU: ResNet18, 64x32, batch 32, about a minute
    python benchmarks/train_throughput.py --gpu           # GPU: ResNet50, 256x128, batch 64 (the paper's)
    python benchmarks/train_throughput.py --gpu --compile # and the device path with torch.compile

Prints images/s of each loop per round, the medians, the ratios, and the device.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import itertools
import statistics
import time

import torch
from torch.utils.data import DataLoader

from reid import Config, describe_device, get_device, seed_everything
from reid.data import ImageDataset, RandomIdentitySampler, load_dataset, train_transforms
from reid.engine import measure_throughput
from reid.losses import make_loss, rescale_center_grads
from reid.model import Baseline


def plain_loop(cfg, model, loss_fn, loader, device, steps: int, warmup: int) -> float:
    """The tiny baseline's loop: fp32, one group per tensor, loss.item() each step. Returns images/s."""
    params = [{"params": [p], "lr": cfg.base_lr, "weight_decay": cfg.weight_decay}
              for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params)
    center_optimizer = torch.optim.SGD(loss_fn.center.parameters(), lr=cfg.center_lr)
    model.train()
    seen, start = 0, None
    for i, (img, pid, _, _) in enumerate(itertools.islice(iter(loader), warmup + steps)):
        if i == warmup:
            if device.type == "cuda":
                torch.cuda.synchronize()
            start, seen = time.perf_counter(), 0
        optimizer.zero_grad()
        center_optimizer.zero_grad()
        img, target = img.to(device), pid.to(device)
        score, feat = model(img)
        loss, _ = loss_fn(score, feat, target)
        loss.backward()
        optimizer.step()
        rescale_center_grads(loss_fn.center, cfg.center_loss_weight)
        center_optimizer.step()
        (score.max(1)[1] == target).float().mean()
        loss.item()  # the tiny baseline's loss meter: a host sync every step
        seen += len(img)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return seen / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gpu", action="store_true", help="the GPU setting: ResNet50, 256x128, batch 64, 60 steps")
    parser.add_argument("--backbone", default=None)
    parser.add_argument("--input-size", type=int, nargs=2, default=None)
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--steps", type=int, default=None, help="timed steps per loop")
    parser.add_argument("--warmup", type=int, default=None, help="untimed steps first (cuDNN autotuning, workers)")
    parser.add_argument("--num-workers", type=int, default=None)
    parser.add_argument("--synthetic-preset", default="small")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds of the three loops")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--compile", action="store_true", help="also time the device path with cfg.compile=True")
    parser.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=True,
                        help="our loops with channels-last tensors on CUDA (the default; the CPU uses NCHW)")
    args = parser.parse_args()
    gpu = dict(backbone="resnet50", input_size=(256, 128), batch_size=64, steps=60, warmup=15, num_workers=8)
    cpu = dict(backbone="resnet18", input_size=(64, 32), batch_size=32, steps=20, warmup=2, num_workers=2)
    setting = gpu if args.gpu else cpu
    for key in setting:
        if getattr(args, key) is not None:
            setting[key] = tuple(getattr(args, key)) if key == "input_size" else getattr(args, key)

    device = get_device(args.device)
    torch.backends.cudnn.benchmark = True  # every loop (the tiny baseline sets it too)
    cfg = Config.smoke(backbone=setting["backbone"], input_size=setting["input_size"], batch_size=setting["batch_size"],
                       num_workers=setting["num_workers"], synthetic_preset=args.synthetic_preset, device=str(device),
                       padding=10 if setting["input_size"][0] >= 256 else 3, channels_last=args.channels_last)
    seed_everything(0)
    dataset = load_dataset(cfg, verbose=False)
    num_classes = dataset.num_train_pids
    plain_loader = DataLoader(ImageDataset(dataset.train, train_transforms(cfg)), num_workers=cfg.num_workers,
                              batch_sampler=RandomIdentitySampler([r.pid for r in dataset.train], cfg.batch_size,
                                                                  cfg.num_instances, seed=0))
    model = Baseline.from_config(cfg, num_classes)
    loss_fn = make_loss(cfg, num_classes, model.in_planes)
    plain_model, plain_loss = model.to(device), loss_fn.to(device)

    print(f"device: {describe_device(device)}; torch {torch.__version__}")
    print(f"{cfg.backbone}, last stride 1, {cfg.input_size[0]}x{cfg.input_size[1]}, batch {cfg.batch_size}, "
          f"{setting['steps']} timed steps after {setting['warmup']}, {cfg.num_workers} loader workers, "
          f"{args.rounds} rounds")
    rates = {"plain": [], "loader": [], "device": [], **({"compiled": []} if args.compile else {})}
    for round_ in range(1, args.rounds + 1):  # alternate, so that drift in the machine's speed hits every loop
        rates["plain"].append(plain_loop(cfg, copy.deepcopy(plain_model), copy.deepcopy(plain_loss), plain_loader,
                                         device, setting["steps"], setting["warmup"]))
        for path, changes in (("loader", {"train_data": "loader"}), ("device", {"train_data": "device"}),
                              ("compiled", {"train_data": "device", "compile": True})):
            if path in rates:
                rates[path].append(measure_throughput(dataclasses.replace(cfg, **changes), setting["steps"],
                                                      setting["warmup"], dataset))
        print(f"round {round_}: " + " | ".join(f"{name} {values[-1]:8.1f}" for name, values in rates.items())
              + " images/s", flush=True)
    med = {k: statistics.median(v) for k, v in rates.items()}
    print("median images/s: " + ", ".join(f"{k} {v:.1f}" for k, v in med.items())
          + f"; device / loader {med['device'] / med['loader']:.2f}x, device / plain {med['device'] / med['plain']:.2f}x"
          + (f", compiled / plain {med['compiled'] / med['plain']:.2f}x" if "compiled" in med else "")
          + f" on {describe_device(device)}")


if __name__ == "__main__":
    main()
