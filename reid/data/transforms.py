"""Train and test transforms of the baseline, from torchvision.transforms.v2 and one of our own.

Training: resize, random horizontal flip, zero-pad and randomly crop back (a small random
translation), convert and normalise with the ImageNet statistics, then random erasing
(Zhong et al., 2020) with the law of person-reid-tiny-baseline and of the paper's code
(`RandomErasing`, below). Testing: resize and normalise only.
"""

from __future__ import annotations

import math

import torch
from torchvision.transforms import InterpolationMode, v2

from ..config import Config


def _resize(cfg: Config) -> v2.Resize:
    return v2.Resize(list(cfg.input_size), interpolation=InterpolationMode.BILINEAR, antialias=True)


def _to_tensor(cfg: Config) -> list:
    return [v2.ToImage(), v2.ToDtype(torch.float32, scale=True), v2.Normalize(list(cfg.pixel_mean), list(cfg.pixel_std))]


class RandomErasing(torch.nn.Module):
    """Random erasing with the law of person-reid-tiny-baseline (datasets/preprocessing.py) and the paper's code.

    With probability `p`, up to 100 attempts each draw an area uniform in `scale` x H x W and an
    aspect ratio r uniform in `ratio`, and take h = round(sqrt(area r)) rows and w = round(sqrt(area / r))
    columns; the first box strictly smaller than the image (h < H, w < W) goes to a uniform
    position and is filled with `value`, after normalisation: (0.4914, 0.4822, 0.4465) are CIFAR-10's
    channel means (0..1 pixel units), kept from the original random-erasing code; in ImageNet-normalised
    units they are a warm light grey, not the mean colour (which is 0 there). The paper's code fills with
    ImageNet's mean in 0..1 units instead (`Config.market1501()`), a grey of the same kind. torchvision's
    `RandomErasing` draws log(r) uniformly and makes 10 attempts, which gives squarer boxes (median h / w
    about 1.2 instead of 1.9 here). Draws come from torch's default generator, which the loader seeds per image.
    """

    def __init__(self, p: float = 0.5, scale: tuple[float, float] = (0.02, 0.4),
                 ratio: tuple[float, float] = (0.3, 1 / 0.3), value=(0.4914, 0.4822, 0.4465), attempts: int = 100):
        super().__init__()
        self.p, self.scale, self.ratio, self.value, self.attempts = p, tuple(scale), tuple(ratio), tuple(value), attempts

    def get_params(self, height: int, width: int) -> tuple[int, int, int, int] | None:
        """(top, left, h, w) of the box to erase, or None when erasing is skipped or no attempt fits."""
        if torch.rand(()).item() >= self.p:
            return None
        for _ in range(self.attempts):
            area = height * width * (self.scale[0] + (self.scale[1] - self.scale[0]) * torch.rand(()).item())
            r = self.ratio[0] + (self.ratio[1] - self.ratio[0]) * torch.rand(()).item()
            h, w = int(round(math.sqrt(area * r))), int(round(math.sqrt(area / r)))
            if h < height and w < width:
                top = int(torch.randint(0, height - h + 1, ()).item())
                left = int(torch.randint(0, width - w + 1, ()).item())
                return top, left, h, w
        return None

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        """(C, H, W) normalised image -> the same image, a box possibly erased (in place on a copy)."""
        box = self.get_params(img.shape[-2], img.shape[-1])
        return img if box is None else erase(img, *box, self.value)


def erase(img: torch.Tensor, top: int, left: int, h: int, w: int, value) -> torch.Tensor:
    """A copy of `img` (C, H, W) with rows top..top+h-1 and columns left..left+w-1 set to `value` per channel."""
    out = img.clone()
    out[:, top:top + h, left:left + w] = torch.as_tensor(value, dtype=img.dtype).view(-1, 1, 1)
    return out


def random_erasing(cfg: Config) -> RandomErasing:
    """Random erasing with the settings of `cfg` (probability, area, aspect ratio, fill value)."""
    return RandomErasing(cfg.erasing_prob, cfg.erasing_scale, cfg.erasing_ratio, cfg.erasing_value)


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
