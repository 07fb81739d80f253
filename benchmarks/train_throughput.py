"""Training throughput: our loop (reid.engine) against a plain fp32 loop in the seed's style.

Both loops train the same model (same initial weights), with the same loss, optimizer
settings and synthetic data, one after the other in the same process; each is timed over
the same number of steps after a few warm-up steps. The plain loop is what the seed's
`do_train` does: fp32, contiguous tensors, one optimizer group per tensor, `loss.item()`
every step, a loader without pinned memory or persistent workers (cuDNN autotuning on, as
the seed sets it). Ours is `reid.engine.train_one_epoch`: AMP (bf16/fp16) and channels-last
on CUDA, channels-last on the CPU, two optimizer groups (fused Adam on CUDA), pinned memory,
persistent workers, non-blocking copies, one host sync per `log_period` steps.

    python benchmarks/train_throughput.py                 # CPU: ResNet18, 64x32, well under a minute
    python benchmarks/train_throughput.py --gpu           # GPU: ResNet50, 256x128, batch 64 (the paper's)

Prints images/s of each loop, the ratio, and the device.
"""

from __future__ import annotations

import argparse
import copy
import itertools
import statistics
import time

import torch
from torch.utils.data import DataLoader

from reid import Config, describe_device, get_device, seed_everything
from reid.data import ImageDataset, RandomIdentitySampler, load_dataset, make_dataloaders, train_transforms
from reid.engine import train_one_epoch
from reid.evaluation import autocast_dtype
from reid.losses import make_loss, rescale_center_grads
from reid.model import Baseline
from reid.solver import make_optimizers


class Steps:
    """The next `n` batches of a running loader iterator, with a length (train_one_epoch asks for it)."""

    def __init__(self, iterator, n: int):
        self.iterator, self.n = iterator, n

    def __iter__(self):
        return itertools.islice(self.iterator, self.n)

    def __len__(self) -> int:
        return self.n


def plain_loop(cfg, model, loss_fn, loader, device, steps: int, warmup: int) -> float:
    """The seed's loop: fp32, one group per tensor, loss.item() each step. Returns images/s."""
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
        loss.item()  # the seed's loss meter: a host sync every step
        seen += len(img)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return seen / (time.perf_counter() - start)


def our_loop(cfg, model, loss_fn, loader, device, steps: int, warmup: int) -> float:
    """reid.engine.train_one_epoch over `steps` batches after `warmup` untimed ones. Returns images/s."""
    fmt = torch.channels_last if cfg.channels_last else torch.contiguous_format
    model.to(memory_format=fmt)
    optimizer, center_optimizer = make_optimizers(cfg, model, loss_fn, fused=device.type == "cuda")
    dtype = autocast_dtype(device, cfg.amp)
    scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)
    batches = iter(loader)  # one iterator: the timed steps start with the loader's queue full, as in plain_loop
    record = None
    for epoch, n in enumerate((warmup, steps)):  # the first pass is the untimed warm-up
        record = train_one_epoch(cfg, epoch, model, loss_fn, Steps(batches, n), optimizer, center_optimizer, scaler,
                                 device, dtype, progress=False)
    return record["images_per_s"]


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
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds of both loops")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=True,
                        help="our loop with channels-last tensors (the default)")
    args = parser.parse_args()
    gpu = dict(backbone="resnet50", input_size=(256, 128), batch_size=64, steps=60, warmup=15, num_workers=8)
    cpu = dict(backbone="resnet18", input_size=(64, 32), batch_size=32, steps=20, warmup=2, num_workers=2)
    setting = gpu if args.gpu else cpu
    for key in setting:
        if getattr(args, key) is not None:
            setting[key] = tuple(getattr(args, key)) if key == "input_size" else getattr(args, key)

    device = get_device(args.device)
    torch.backends.cudnn.benchmark = True  # both loops (the seed sets it too)
    cfg = Config.smoke(backbone=setting["backbone"], input_size=setting["input_size"], batch_size=setting["batch_size"],
                       num_workers=setting["num_workers"], synthetic_preset=args.synthetic_preset, device=str(device),
                       padding=10 if setting["input_size"][0] >= 256 else 5, channels_last=args.channels_last)
    seed_everything(0)
    dataset = load_dataset(cfg, verbose=False)
    num_classes = dataset.num_train_pids
    ours_loader = make_dataloaders(cfg, dataset)[0]
    plain_loader = DataLoader(ImageDataset(dataset.train, train_transforms(cfg)), num_workers=cfg.num_workers,
                              batch_sampler=RandomIdentitySampler([r.pid for r in dataset.train], cfg.batch_size,
                                                                  cfg.num_instances, seed=0))
    model = Baseline.from_config(cfg, num_classes)
    loss_fn = make_loss(cfg, num_classes, model.in_planes)
    plain_model, plain_loss = copy.deepcopy(model).to(device), copy.deepcopy(loss_fn).to(device)

    print(f"device: {describe_device(device)}; torch {torch.__version__}")
    print(f"{cfg.backbone}, last stride 1, {cfg.input_size[0]}x{cfg.input_size[1]}, batch {cfg.batch_size}, "
          f"{setting['steps']} timed steps after {setting['warmup']}, {cfg.num_workers} loader workers, "
          f"{args.rounds} rounds")
    precision = autocast_dtype(device, cfg.amp)
    ours_name = (f"reid.engine loop ({str(precision).replace('torch.', '') if precision else 'fp32'}"
                 f"{', channels_last' if cfg.channels_last else ''})")
    model, loss_fn = model.to(device), loss_fn.to(device)
    plain_rates, our_rates = [], []
    for round_ in range(1, args.rounds + 1):  # alternate, so that drift in the machine's speed hits both
        plain_rates.append(plain_loop(cfg, plain_model, plain_loss, plain_loader, device, setting["steps"],
                                      setting["warmup"]))
        our_rates.append(our_loop(cfg, model, loss_fn, ours_loader, device, setting["steps"], setting["warmup"]))
        print(f"round {round_}: plain fp32 loop (seed style) {plain_rates[-1]:8.1f} images/s | "
              f"{ours_name} {our_rates[-1]:8.1f} images/s", flush=True)
    plain, ours = statistics.median(plain_rates), statistics.median(our_rates)
    print(f"median: plain {plain:.1f}, ours {ours:.1f} images/s; ratio {ours / plain:.2f}x on {describe_device(device)}")

if __name__ == "__main__":
    main()
