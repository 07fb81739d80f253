"""What person-reid-tiny-baseline (v0.1.2, github.com/lulujianjie/person-reid-tiny-baseline) does, restated
for the tests to compare the package against: its learning-rate schedule as its training loop steps it,
its re-ranking search grid, and its settings. Written from reading that code, in its order of operations;
not used by the package.
"""

from __future__ import annotations

import math
import random
import warnings
from bisect import bisect_right

import torch

# config/default.py (DefaultConfig) with configs.py's changes, the values that train and test a model.
SETTINGS = {
    "MAX_EPOCHS": 200, "BATCH_SIZE": 64, "NUM_IMG_PER_ID": 4, "INPUT_SIZE": [256, 128], "MODEL_NAME": "resnet50",
    "LAST_STRIDE": 1, "LOSS_TYPE": "triplet+softmax+center", "OPTIMIZER": "Adam", "BASE_LR": 0.00035,
    "CE_LOSS_WEIGHT": 1.0, "TRIPLET_LOSS_WEIGHT": 1.0, "CENTER_LOSS_WEIGHT": 0.0005, "WEIGHT_DECAY": 0.0005,
    "BIAS_LR_FACTOR": 1.0, "WEIGHT_DECAY_BIAS": 0.0005, "MOMENTUM": 0.9, "CENTER_LR": 0.5, "MARGIN": 0.3,
    "STEPS": [40, 70, 130], "GAMMA": 0.1, "WARMUP_FACTOR": 0.01, "WARMUP_EPOCHS": 10, "WARMUP_METHOD": "linear",
    "TEST_IMS_PER_BATCH": 128, "FEAT_NORM": "yes", "TEST_METHOD": "cosine", "CHECKPOINT_PERIOD": 5,
    "EVAL_PERIOD": 5,
    # utils/metrics.py, R1_mAP.compute: the re-ranking call that is not commented out
    "RERANKING_K1": 30, "RERANKING_K2": 10, "RERANKING_LAMBDA": 0.2,
    # datasets/make_dataloader.py and datasets/preprocessing.py
    "FLIP_PROB": 0.5, "PADDING": 10, "ERASING_PROB": 0.5, "ERASING_SL": 0.02, "ERASING_SH": 0.4, "ERASING_R1": 0.3,
    "ERASING_MEAN": (0.4914, 0.4822, 0.4465), "PIXEL_MEAN": [0.485, 0.456, 0.406], "PIXEL_STD": [0.229, 0.224, 0.225],
}


class WarmupMultiStepLR(torch.optim.lr_scheduler.LRScheduler):
    """solver/lr_scheduler.py: the rate as a function of the scheduler's own epoch counter."""

    def __init__(self, optimizer, milestones, gamma=0.1, warmup_factor=1.0 / 3, warmup_iters=500,
                 warmup_method="linear", last_epoch=-1):
        self.milestones, self.gamma = list(milestones), gamma
        self.warmup_factor, self.warmup_iters, self.warmup_method = warmup_factor, warmup_iters, warmup_method
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        warmup_factor = 1
        if self.last_epoch < self.warmup_iters:
            if self.warmup_method == "constant":
                warmup_factor = self.warmup_factor
            elif self.warmup_method == "linear":
                alpha = self.last_epoch / self.warmup_iters
                warmup_factor = self.warmup_factor * (1 - alpha) + alpha
        return [base_lr * warmup_factor * self.gamma ** bisect_right(self.milestones, self.last_epoch)
                for base_lr in self.base_lrs]


def training_lrs(steps, max_epochs, base_lr=0.00035, gamma=0.1, warmup_factor=0.01, warmup_epochs=10,
                 warmup_method="linear") -> list[float]:
    """processor/processor.py, do_train: `scheduler.step()` first in every epoch, then the epoch's batches.

    Returns the rate each epoch 1..max_epochs trains at.
    """
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=base_lr)
    scheduler = WarmupMultiStepLR(optimizer, steps, gamma, warmup_factor, warmup_epochs, warmup_method)
    rates = []
    for _epoch in range(1, max_epochs + 1):
        with warnings.catch_warnings():  # torch warns about stepping the schedule before the optimizer
            warnings.simplefilter("ignore")
            scheduler.step()
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()  # the epoch's iterations
    return rates


def training_lrs_for(cfg) -> list[float]:
    """`training_lrs` with the schedule settings of a `reid.Config`."""
    return training_lrs(cfg.steps, cfg.max_epochs, cfg.base_lr, cfg.gamma, cfg.warmup_factor, cfg.warmup_epochs,
                        cfg.warmup_method)


def reranking_search_points() -> list[tuple[int, int, float]]:
    """tools/search_reranking_params.py: the (k1, k2, lambda) its three loops visit, in their order."""
    k1_list = [i for i in range(2, 10)] + [i for i in range(10, 20, 2)] + [i for i in range(20, 40, 10)] + \
              [i for i in range(40, 61, 20)]
    k2_list = [i for i in range(2, 10)] + [i for i in range(10, 20, 2)] + [i for i in range(20, 40, 10)]
    lambda_list = [0.1, 0.2, 0.3, 0.4]
    points = []
    for k1 in k1_list:
        for k2 in k2_list:
            if k2 > 0.7 * k1:
                break
            for lam in lambda_list:
                points.append((k1, k2, lam))
    return points


def erasing_box(rng: random.Random, height: int, width: int, sl=0.02, sh=0.4, r1=0.3):
    """datasets/preprocessing.py, RandomErasing.__call__ once it has decided to erase: (x1, y1, h, w) or None.

    x1 is the first row and y1 the first column of the box, as that code names them.
    """
    for _attempt in range(100):
        area = height * width
        target_area = rng.uniform(sl, sh) * area
        aspect_ratio = rng.uniform(r1, 1 / r1)
        h = int(round(math.sqrt(target_area * aspect_ratio)))
        w = int(round(math.sqrt(target_area / aspect_ratio)))
        if w < width and h < height:
            x1 = rng.randint(0, height - h)
            y1 = rng.randint(0, width - w)
            return x1, y1, h, w
    return None
