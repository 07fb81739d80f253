"""Optimizers and the learning-rate schedule of the baseline.

The network's weights use Adam (lr 3.5e-4, weight decay 5e-4); the center-loss centers have
their own plain SGD (lr 0.5). The learning rate follows the "warmup multistep" schedule of
person-reid-tiny-baseline and the paper's code, one value per epoch::

    lr(e) = base_lr * w(e) * gamma ** (number of steps <= e)
    w(e)  = warmup_factor * (1 - e / warmup_epochs) + e / warmup_epochs   while e < warmup_epochs, else 1

Both projects call the scheduler's ``step()`` first thing in every epoch, so epoch e
(1, 2, ...) trains at lr(e): epoch 1 at 3.5e-4 x (0.01 x 0.9 + 0.1) = 3.815e-5, epochs 10
to 39 at 3.5e-4, and the rate drops 10x at epochs 40 and 70 (and 130 in the tiny
baseline's 200 epochs). We build it from torch's own schedulers, `LinearLR` (or
`ConstantLR`) times `MultiStepLR`, chained, and step it at the start of each epoch too.
"""

from __future__ import annotations

from bisect import bisect_right

import re
import warnings

import torch
from torch import nn
from torch.optim.lr_scheduler import ChainedScheduler, ConstantLR, LinearLR, LRScheduler, MultiStepLR

from .config import Config
from .losses import BaselineLoss


def parameter_groups(cfg: Config, model: nn.Module) -> list[dict]:
    """Two groups: weights (base_lr, weight_decay) and biases (base_lr x bias_lr_factor, weight_decay_bias).

    The seed gives every tensor its own group with these values; two groups are the same
    optimisation with far fewer optimizer launches. Frozen tensors (the BNNeck bias) are left out.
    """
    weights, biases = [], []
    for name, param in model.named_parameters():
        if param.requires_grad:
            (biases if name.endswith("bias") else weights).append(param)
    groups = [{"params": weights, "lr": cfg.base_lr, "weight_decay": cfg.weight_decay}]
    if biases:
        groups.append({"params": biases, "lr": cfg.base_lr * cfg.bias_lr_factor, "weight_decay": cfg.weight_decay_bias})
    return groups


def make_optimizers(cfg: Config, model: nn.Module, loss: BaselineLoss | None = None,
                    fused: bool = False) -> tuple[torch.optim.Optimizer, torch.optim.Optimizer | None]:
    """(optimizer of the network, SGD of the center-loss centers or None).

    `fused=True` asks for torch's fused Adam/AdamW kernel (on CUDA or the CPU: one pass over all the tensors).
    """
    groups = parameter_groups(cfg, model)
    if cfg.optimizer == "SGD":
        optimizer = torch.optim.SGD(groups, lr=cfg.base_lr, momentum=cfg.momentum)
    elif cfg.optimizer in ("Adam", "AdamW"):
        optimizer = getattr(torch.optim, cfg.optimizer)(groups, lr=cfg.base_lr, fused=fused or None)
    else:
        raise ValueError(f"optimizer={cfg.optimizer!r} is unknown; choose 'Adam', 'AdamW' or 'SGD'")
    center_optimizer = None
    if loss is not None and loss.center is not None:
        center_optimizer = torch.optim.SGD(loss.center.parameters(), lr=cfg.center_lr)
    return optimizer, center_optimizer


def make_scheduler(cfg: Config, optimizer: torch.optim.Optimizer) -> LRScheduler:
    """The warmup multistep schedule from torch's schedulers; call `step_schedule` at the start of each epoch."""
    decay = MultiStepLR(optimizer, milestones=list(cfg.steps), gamma=cfg.gamma)
    if cfg.warmup_epochs == 0:
        return ChainedScheduler([decay], optimizer=optimizer)
    if cfg.warmup_method == "linear":
        warmup = LinearLR(optimizer, start_factor=cfg.warmup_factor, end_factor=1.0, total_iters=cfg.warmup_epochs)
    else:
        warmup = ConstantLR(optimizer, factor=cfg.warmup_factor, total_iters=cfg.warmup_epochs)
    return ChainedScheduler([warmup, decay], optimizer=optimizer)


def step_schedule(scheduler: LRScheduler) -> None:
    """Advance the schedule by one epoch; called first thing in each epoch, as the tiny baseline does.

    torch warns when a schedule steps before the optimizer has: usually a bug, here the
    order the recipe uses (epoch 1 trains at lr(1), not lr(0)).
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=re.escape("Detected call of `lr_scheduler.step()` before"))
        scheduler.step()


def warmup_multistep_lr(cfg: Config, epoch: int) -> float:
    """lr(e) in closed form, as WarmupMultiStepLR.get_lr of the tiny baseline writes it: epoch `epoch` trains at it."""
    factor = 1.0
    if epoch < cfg.warmup_epochs:
        if cfg.warmup_method == "constant":
            factor = cfg.warmup_factor
        else:
            alpha = epoch / cfg.warmup_epochs
            factor = cfg.warmup_factor * (1 - alpha) + alpha
    return cfg.base_lr * factor * cfg.gamma ** bisect_right(list(cfg.steps), epoch)


def lr_per_epoch(cfg: Config, step_first: bool = True) -> list[float]:
    """The learning rate each epoch 1..max_epochs trains at, from the torch schedulers (for figures).

    `step_first=True`: the schedule steps first thing in each epoch, as the package and the
    published loops do. False: torch's usual order, a step after each epoch, under which epoch e
    trains at lr(e - 1), every change one epoch late."""
    optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=cfg.base_lr)
    scheduler = make_scheduler(cfg, optimizer)
    rates = []
    for _ in range(cfg.max_epochs):
        if step_first:
            step_schedule(scheduler)
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        if not step_first:
            scheduler.step()
    return rates
