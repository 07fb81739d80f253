"""Train and test transforms of the baseline, from torchvision.transforms.v2.

Training: resize, random horizontal flip, zero-pad and randomly crop back (a small random
translation), convert and normalise with the ImageNet statistics, then random erasing
(Zhong et al., 2020). Testing: resize and normalise only.
"""

from __future__ import annotations

import torch
from torchvision.transforms import InterpolationMode, v2

from ..config import Config


def _resize(cfg: Config) -> v2.Resize:
    return v2.Resize(list(cfg.input_size), interpolation=InterpolationMode.BILINEAR, antialias=True)


def _to_tensor(cfg: Config) -> list:
    return [v2.ToImage(), v2.ToDtype(torch.float32, scale=True), v2.Normalize(list(cfg.pixel_mean), list(cfg.pixel_std))]


def random_erasing(cfg: Config) -> v2.RandomErasing:
    """Random erasing as the seed configures it: area 2-40 %, aspect 0.3-3.33.

    The seed applies it after normalisation and fills the box with (0.4914, 0.4822, 0.4465)
    in *normalised* units, i.e. a light grey, not the dataset's mean colour; we keep that to
    reproduce its numbers (`cfg.erasing_value`).
    """
    return v2.RandomErasing(p=cfg.erasing_prob, scale=tuple(cfg.erasing_scale), ratio=tuple(cfg.erasing_ratio),
                            value=list(cfg.erasing_value))


def train_transforms(cfg: Config) -> v2.Compose:
    """PIL image -> normalised (3, H, W) float tensor with the training augmentations."""
    return v2.Compose(
        [
            _resize(cfg),
            v2.RandomHorizontalFlip(p=cfg.flip_prob),
            v2.Pad(cfg.padding),
            v2.RandomCrop(list(cfg.input_size)),
            *_to_tensor(cfg),
            random_erasing(cfg),
        ]
    )


def test_transforms(cfg: Config) -> v2.Compose:
    """PIL image -> normalised (3, H, W) float tensor, no randomness."""
    return v2.Compose([_resize(cfg), *_to_tensor(cfg)])


def augmentation_steps(cfg: Config) -> dict[str, v2.Transform]:
    """Each training augmentation alone (forced to happen), for the augmentation viewer."""
    erase = random_erasing(cfg)
    erase.p = 1.0
    return {
        "resize": v2.Compose([_resize(cfg), *_to_tensor(cfg)]),
        "flip": v2.Compose([_resize(cfg), v2.RandomHorizontalFlip(p=1.0), *_to_tensor(cfg)]),
        "pad + crop": v2.Compose([_resize(cfg), v2.Pad(cfg.padding), v2.RandomCrop(list(cfg.input_size)),
                                  *_to_tensor(cfg)]),
        "erasing": v2.Compose([_resize(cfg), *_to_tensor(cfg), erase]),
        "all (train)": train_transforms(cfg),
    }


def denormalize(x: torch.Tensor, cfg: Config) -> torch.Tensor:
    """Undo `Normalize` for display: (3, H, W) or (N, 3, H, W) -> values in [0, 1]."""
    mean = torch.tensor(cfg.pixel_mean).view(-1, 1, 1)
    std = torch.tensor(cfg.pixel_std).view(-1, 1, 1)
    return (x * std + mean).clamp(0, 1)


test_transforms.__test__ = False  # a transform, not a test: keeps pytest from collecting it where imported
