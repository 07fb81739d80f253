"""Every setting of the baseline in one dataclass, plus named presets.

The field names follow the book's words; the comment after each field says what it is
and its unit. A notebook picks a preset and changes a field by name::

    cfg = Config.smoke()
    cfg.max_epochs = 5
    cfg.validate()

Two presets reproduce published recipes on Market-1501: `Config.market1501()` is the paper's
(Luo et al. 2019, as its official code reid-strong-baseline trains it: 120 epochs), and
`Config.tiny_baseline()` is the person-reid-tiny-baseline project's, the one this book
reproduces (200 epochs, a third learning-rate step, its own ResNet stem). `Config.smoke()`
is the tiny baseline's recipe at a scale a CPU trains in minutes.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shlex
from dataclasses import dataclass, field
from pathlib import Path

LOSS_TYPES = ("softmax", "triplet+softmax", "softmax+center", "triplet+softmax+center")
DATASETS = ("synthetic", "market1501")
DISTANCES = ("cosine", "euclidean")
OPTIMIZERS = ("Adam", "SGD", "AdamW")
WARMUP_METHODS = ("linear", "constant")
BACKBONES = ("resnet18", "resnet34", "resnet50")
STEMS = ("tiny_baseline", "bot", "torchvision")
TRAIN_DATA = ("auto", "device", "loader")
PRETRAINED = ("imagenet", "none")  # or a path to a local .pth file


def default_data_root() -> str:
    """Where datasets live: `$REID_DATA` if set, else `~/.cache/reid-book`."""
    return os.environ.get("REID_DATA", str(Path("~/.cache/reid-book").expanduser()))


def book_checkout() -> Path | None:
    """The root of the book's repository when the package is imported from a checkout of it (`make`, an editable
    install), else None (an installed package)."""
    root = Path(__file__).resolve().parents[1]
    return root if (root / "_toc.yml").is_file() and (root / "notebooks").is_dir() else None


def default_output_dir() -> str:
    """Where runs are written: `$REID_RUNS` if set; else `runs/` at the root of the book's checkout, the same
    folder for a chapter run from notebooks/ and a command run from the repository root; else (an installed
    package) `runs/` under the working directory. On Colab `reid.setup()` sets REID_RUNS to Google Drive."""
    if "REID_RUNS" in os.environ:
        return os.environ["REID_RUNS"]
    root = book_checkout()
    return str(root / "runs") if root is not None else "runs"


@dataclass
class Config:
    """All settings of one run. Presets: `Config.smoke()`, `Config.market1501()`."""

    # --- run ---------------------------------------------------------------------------
    name: str = "baseline"  # run name; files go under `output_dir/name/`
    output_dir: str = field(default_factory=default_output_dir)  # folder holding one sub-folder per run
    seed: int = 0  # seeds Python, NumPy, torch and the loader workers
    device: str = "auto"  # "auto" (CUDA if present, else CPU), "cpu", "cuda", "cuda:1", ...

    # --- data --------------------------------------------------------------------------
    dataset: str = "synthetic"  # "synthetic" (generated, the default) or "market1501" (real)
    data_root: str = field(default_factory=default_data_root)  # folder holding the datasets
    market_dir: str = "Market-1501-v15.09.15"  # Market-1501 folder name inside data_root
    synthetic_preset: str = "small"  # size of the generated set: "tiny", "small" or "market"
    synthetic_seed: int = 0  # seed of the generated set (same seed, same bytes)
    num_workers: int = 2  # data-loader worker processes (0 = load in the main process)
    train_data: str = "auto"  # "device": decoded once, augmented on the device; "loader": JPEG workers; "auto": device if it fits
    device_data_max_gb: float = 4.0  # largest decoded split (uint8) "auto" puts on the device (Market-1501's: 0.32 GB)
    val_identities: int = 0  # training identities held out of training, as a validation query/gallery split

    # --- input and augmentation -------------------------------------------------------
    input_size: tuple[int, int] = (256, 128)  # (height, width) in pixels fed to the network
    flip_prob: float = 0.5  # probability of a horizontal flip in training
    padding: int = 10  # zero padding in pixels before the random crop back to input_size
    erasing_prob: float = 0.5  # probability of random erasing (Zhong et al. 2020)
    erasing_scale: tuple[float, float] = (0.02, 0.4)  # erased area, fraction of the image
    erasing_ratio: tuple[float, float] = (0.3, 1 / 0.3)  # range of the erased box's height / width, drawn uniformly
    erasing_value: tuple[float, float, float] = (0.4914, 0.4822, 0.4465)  # the erased box's fill, normalised units
    pixel_mean: tuple[float, float, float] = (0.485, 0.456, 0.406)  # ImageNet RGB mean, 0..1
    pixel_std: tuple[float, float, float] = (0.229, 0.224, 0.225)  # ImageNet RGB std, 0..1

    # --- sampler -----------------------------------------------------------------------
    batch_size: int = 64  # images per training batch, P identities x K images each
    num_instances: int = 4  # K: images per identity in a batch; P = batch_size / K
    test_batch_size: int = 128  # images per batch when extracting features

    # --- model -------------------------------------------------------------------------
    backbone: str = "resnet50"  # torchvision ResNet: "resnet50" (paper), "resnet34", "resnet18"
    last_stride: int = 1  # stride of the last ResNet stage: 1 keeps a 16x8 map at 256x128
    stem: str = "bot"  # "torchvision": conv, BN, ReLU, 3x3/2 pool; "bot": no ReLU; "tiny_baseline": no ReLU, 2x2/2 pool
    pretrained: str = "imagenet"  # "imagenet", "none", or a path to a local .pth state dict
    neck: str = "bnneck"  # "bnneck" (BatchNorm between feature and classifier) or "none"
    neck_feat: str = "after"  # feature used at test time: "after" or "before" the BNNeck
    cos_layer: bool = False  # True: ArcFace head instead of the linear classifier
    arcface_scale: float = 30.0  # ArcFace s (logit scale)
    arcface_margin: float = 0.5  # ArcFace m (additive angular margin, radians)

    # --- loss --------------------------------------------------------------------------
    loss_type: str = "triplet+softmax+center"  # one of LOSS_TYPES
    label_smoothing: float = 0.1  # epsilon of the label-smoothed ID loss (0 = plain CE)
    id_loss_weight: float = 1.0  # weight of the ID (softmax) loss
    triplet_loss_weight: float = 1.0  # weight of the triplet loss
    margin: float = 0.3  # triplet margin m; 0 = soft margin log(1 + exp(d_ap - d_an))
    hard_factor: float = 0.0  # HEM alpha: d_ap*(1+alpha), d_an*(1-alpha); 0 = batch hard
    center_loss_weight: float = 5e-4  # beta, weight of the center loss
    center_lr: float = 0.5  # SGD learning rate of the class centers

    # --- solver ------------------------------------------------------------------------
    optimizer: str = "Adam"  # one of OPTIMIZERS
    base_lr: float = 3.5e-4  # learning rate after warmup
    weight_decay: float = 5e-4  # L2 weight decay of the weights
    bias_lr_factor: float = 1.0  # bias learning rate = base_lr x this
    weight_decay_bias: float = 5e-4  # weight decay of the biases
    momentum: float = 0.9  # momentum, used by SGD only
    warmup_method: str = "linear"  # one of WARMUP_METHODS
    warmup_factor: float = 0.01  # lr multiplier at epoch 0 of the warmup
    warmup_epochs: int = 10  # epochs of warmup
    steps: tuple[int, ...] = (40, 70)  # epochs where the lr is multiplied by gamma
    gamma: float = 0.1  # lr decay factor at each step
    max_epochs: int = 120  # training epochs
    amp: bool = True  # mixed precision in training on CUDA: bfloat16 where native, else float16 (off on the CPU)
    channels_last: bool = True  # NHWC images and convolutions on CUDA (tensor cores); the CPU keeps NCHW, faster there
    compile: bool = False  # torch.compile the training model (compiles ~45 s; no gain measured on an H200)

    # --- bookkeeping --------------------------------------------------------------------
    eval_period: int = 10  # evaluate every this many epochs (and at the end)
    checkpoint_period: int = 10  # save a checkpoint every this many epochs (and at the end)
    log_period: int = 50  # iterations between progress-bar refreshes of the loss parts

    # --- test ---------------------------------------------------------------------------
    eval_amp: bool = False  # test features in mixed precision on CUDA (faster; the published recipes use float32)
    feat_norm: bool = True  # L2-normalise features before the distance
    distance: str = "cosine"  # "cosine" or "euclidean" (squared Euclidean)
    flip_feats: bool = False  # add the feature of the mirrored image to the image's
    max_rank: int = 50  # length of the CMC curve
    reranking: bool = False  # k-reciprocal re-ranking (Zhong et al. 2017)
    rerank_k1: int = 20  # k1: size of the k-reciprocal neighbourhood
    rerank_k2: int = 6  # k2: neighbours for local query expansion
    rerank_lambda: float = 0.3  # lambda: weight of the original distance in the mix

    # --- presets ------------------------------------------------------------------------
    @classmethod
    def market1501(cls, **changes) -> "Config":
        """The paper's recipe as its official code (reid-strong-baseline) trains it on Market-1501.

        ResNet50 from ImageNet, last stride 1, a stem without the ReLU after its first
        BatchNorm ("bot"), 256x128, P=16 x K=4, Adam 3.5e-4 with a 10-epoch linear warmup,
        divided by 10 at epochs 40 and 70, 120 epochs; test on the feature after the BNNeck.
        Random erasing fills its box with ImageNet's mean in 0..1 units, (0.485, 0.456, 0.406),
        written after normalisation as that code does (its INPUT.PIXEL_MEAN), where the tiny
        baseline writes CIFAR-10's mean.
        """
        base = cls(dataset="market1501", name="market1501", erasing_value=(0.485, 0.456, 0.406))
        return dataclasses.replace(base, **changes)

    @classmethod
    def tiny_baseline(cls, **changes) -> "Config":
        """person-reid-tiny-baseline exactly (config/default.py and configs.py, v0.1.2): the recipe the book reproduces.

        As the paper's, except: 200 epochs with a third learning-rate step at epoch 130, its
        ResNet stem (no ReLU after the first BatchNorm, and a 2x2 max-pool of stride 2),
        a checkpoint and an evaluation every 5 epochs, and test-time re-ranking with
        (k1, k2, lambda) = (30, 10, 0.2), the setting its code ships (the paper's (20, 6,
        0.3) is commented out there). Its README's table reports, for each row, the best of
        the checkpoints evaluated on the test set (epoch 175 for B1, 185 for HEM); the book
        reports the last epoch, chosen without looking at the test set.
        """
        base = cls(dataset="market1501", name="tiny-baseline", stem="tiny_baseline", max_epochs=200,
                   steps=(40, 70, 130), eval_period=5, checkpoint_period=5, rerank_k1=30, rerank_k2=10,
                   rerank_lambda=0.2)
        return dataclasses.replace(base, **changes)

    @classmethod
    def smoke(cls, **changes) -> "Config":
        """The synthetic set at 64x32 on a ResNet18 from scratch, 8 epochs: minutes on a CPU, for CI and laptops.

        Everything that is not about scale (the stem, losses, margins, augmentation, the shape
        of the schedule) follows `Config.tiny_baseline()`, so the chapters teach its recipe.
        """
        base = cls(
            name="smoke",
            stem="tiny_baseline",
            dataset="synthetic",
            synthetic_preset="small",
            input_size=(64, 32),
            padding=3,
            batch_size=32,
            num_instances=4,
            backbone="resnet18",
            pretrained="none",
            max_epochs=8,
            warmup_epochs=2,
            steps=(6, 8),
            eval_period=4,
            checkpoint_period=4,
            test_batch_size=128,
        )
        return dataclasses.replace(base, **changes)

    @classmethod
    def book(cls, profile: str = "smoke", **changes) -> "Config":
        """The settings the chapters share, by profile: the notebooks' one switch.

        "smoke": `Config.smoke()`, the synthetic set on a CPU in minutes. "market1501": the
        tiny baseline's recipe (`Config.tiny_baseline()`) on the real dataset, in runs named
        "market1501-book". Both train on every training identity, as the tiny baseline
        does; chapters 7 and 8 tune re-ranking on a separate model that holds some out
        (`reid.results.tuning_config`).
        """
        if profile == "smoke":
            return cls.smoke(**changes)
        if profile == "market1501":
            return cls.tiny_baseline(**{"name": "market1501-book", **changes})
        raise ValueError(f"unknown profile {profile!r}: use 'smoke' (synthetic, CPU) or 'market1501' (real, GPU)")

    # --- derived values -----------------------------------------------------------------
    @property
    def num_identities(self) -> int:
        """P, identities per training batch (batch_size / K)."""
        return self.batch_size // self.num_instances

    @property
    def run_dir(self) -> Path:
        """Folder holding this run's checkpoints, metrics and figures."""
        return Path(self.output_dir) / self.name

    def to_dict(self) -> dict:
        """A plain dict of every field, for JSON files and checkpoints."""
        return dataclasses.asdict(self)

    def validate(self) -> "Config":
        """Raise `ValueError` naming the setting and the fix if any setting cannot work."""
        errors = []

        def check(ok: bool, message: str) -> None:
            if not ok:
                errors.append(message)

        def one_of(name: str, allowed) -> None:
            value = getattr(self, name)
            check(value in allowed, f"{name}={value!r} is unknown; choose one of {', '.join(map(repr, allowed))}")

        one_of("dataset", DATASETS)
        one_of("loss_type", LOSS_TYPES)
        one_of("distance", DISTANCES)
        one_of("optimizer", OPTIMIZERS)
        one_of("warmup_method", WARMUP_METHODS)
        one_of("backbone", BACKBONES)
        one_of("stem", STEMS)
        one_of("neck", ("bnneck", "none"))
        one_of("neck_feat", ("after", "before"))
        check(self.last_stride in (1, 2), f"last_stride={self.last_stride} must be 1 (the baseline) or 2 (torchvision's)")
        check(
            self.pretrained in PRETRAINED or self.pretrained.endswith((".pth", ".pt")),
            f"pretrained={self.pretrained!r} must be 'imagenet', 'none' or a path to a .pth file",
        )
        h, w = self.input_size
        check(h >= 32 and w >= 16, f"input_size={self.input_size} is too small for a ResNet; use at least (32, 16)")
        check(self.num_instances >= 2, f"num_instances={self.num_instances}: the triplet loss needs K >= 2 images per identity")
        check(
            self.batch_size % max(self.num_instances, 1) == 0,
            f"batch_size={self.batch_size} is not divisible by num_instances={self.num_instances}: a PK batch holds "
            f"P identities x K images; use a multiple of {self.num_instances}, e.g. "
            f"{max(2, self.batch_size // max(self.num_instances, 1)) * self.num_instances}",
        )
        check(
            self.batch_size // max(self.num_instances, 1) >= 2,
            f"batch_size={self.batch_size} with num_instances={self.num_instances} gives P < 2 identities; "
            "the triplet loss needs a negative in every batch: raise batch_size",
        )
        for name in ("flip_prob", "erasing_prob"):
            check(0.0 <= getattr(self, name) <= 1.0, f"{name}={getattr(self, name)} is a probability; use a value in [0, 1]")
        lo, hi = self.erasing_scale
        check(0 < lo <= hi < 1, f"erasing_scale={self.erasing_scale} must satisfy 0 < low <= high < 1")
        check(0.0 <= self.label_smoothing < 1.0, f"label_smoothing={self.label_smoothing} must be in [0, 1)")
        check(0.0 <= self.hard_factor < 1.0, f"hard_factor={self.hard_factor} must be in [0, 1): (1 - alpha) scales d_an")
        check(self.margin >= 0, f"margin={self.margin} must be >= 0 (0 selects the soft margin)")
        check(self.base_lr > 0, f"base_lr={self.base_lr} must be > 0")
        check(self.max_epochs >= 1, f"max_epochs={self.max_epochs} must be >= 1")
        check(
            list(self.steps) == sorted(self.steps) and all(0 < s for s in self.steps),
            f"steps={self.steps} must be increasing positive epochs",
        )
        check(0 <= self.warmup_epochs < self.max_epochs, f"warmup_epochs={self.warmup_epochs} must be in [0, max_epochs)")
        check(0 < self.warmup_factor <= 1, f"warmup_factor={self.warmup_factor} must be in (0, 1]")
        check(self.eval_period >= 1 and self.checkpoint_period >= 1, "eval_period and checkpoint_period must be >= 1")
        check(self.num_workers >= 0, f"num_workers={self.num_workers} must be >= 0")
        one_of("train_data", TRAIN_DATA)
        check(self.device_data_max_gb > 0, f"device_data_max_gb={self.device_data_max_gb} must be > 0 (GB)")
        check(self.val_identities >= 0, f"val_identities={self.val_identities} must be >= 0 (0: no validation split)")
        check(self.test_batch_size >= 1, f"test_batch_size={self.test_batch_size} must be >= 1")
        check(self.max_rank >= 1, f"max_rank={self.max_rank} must be >= 1")
        check(self.rerank_k1 >= 1 and self.rerank_k2 >= 1, "rerank_k1 and rerank_k2 must be >= 1")
        check(0.0 <= self.rerank_lambda <= 1.0, f"rerank_lambda={self.rerank_lambda} must be in [0, 1]")
        if errors:
            raise ValueError("Invalid Config:\n  - " + "\n  - ".join(errors))
        return self



# The presets `python -m reid train --preset NAME` starts from.
PRESETS = {"default": Config, "smoke": Config.smoke, "market1501": Config.market1501,
           "tiny_baseline": Config.tiny_baseline}


def train_command(cfg: Config) -> str:
    """The shell command that trains (or resumes) the run of `cfg`: the nearest preset and the fields that differ.

    `output_dir` and `data_root` are left to the environment (REID_RUNS, REID_DATA), as a
    chapter leaves them."""
    env = {"output_dir", "data_root"}
    mine = cfg.to_dict()

    def differing(preset: str) -> list[str]:
        base = PRESETS[preset]().to_dict()
        return [k for k in mine if k not in env and json.dumps(mine[k]) != json.dumps(base[k])]

    preset = min(PRESETS, key=lambda name: len(differing(name)))
    options = []
    for key in differing(preset):
        flag, value = "--" + key.replace("_", "-"), mine[key]
        if isinstance(value, bool):
            options.append(flag if value else "--no-" + key.replace("_", "-"))
        elif isinstance(value, (list, tuple)):
            options.append(" ".join([flag, *map(str, value)]))
        else:
            options.append(f"{flag} {shlex.quote(str(value))}")
    return " ".join(["python -m reid train --preset", preset, *options, "--resume"])
