"""The training augmentations on a whole batch at once, on the device that trains.

The same augmentations as `reid.data.transforms.train_transforms`, in the same order and
with the same laws per image (person-reid-tiny-baseline's): resize to the input size, a
horizontal flip with probability `flip_prob`, zero padding by `padding` pixels and a
random crop back, normalisation, then random erasing (`RandomErasing`'s law: area and
aspect ratio uniform, up to 100 attempts at a box strictly inside the image). Every image
of the batch draws its own parameters, from a generator the caller owns, so the same seed
gives the same batch; the draws (a few hundred numbers an image) are made on the CPU, so
a seed gives the same augmentation on any device. Two steps, each checked on its own:

    params = draw_params(len(images), cfg, generator)   # the random part, on the CPU
    batch = apply_params(images, params, cfg)            # tensor work on the images' device

The input is a batch of uint8 images (B, 3, h, w) already on the device (see
`reid.data.decoded`), so no loader worker decodes or augments anything.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch
import torch.nn.functional as F

from ..config import Config

ATTEMPTS = 100  # boxes tried per image before random erasing gives up (the published code's number)


@dataclass
class AugmentParams:
    """Per-image parameters of one batch, each a (B,) tensor (drawn on the CPU; `apply_params` moves them)."""

    flip: torch.Tensor  # bool: mirror the image
    top: torch.Tensor  # int64: first row of the crop in the padded image, 0 .. 2 x padding
    left: torch.Tensor  # int64: first column of the crop, 0 .. 2 x padding
    erase: torch.Tensor  # bool: erase a box
    box_top: torch.Tensor  # int64: the erased box's first row (meaningless where not erase)
    box_left: torch.Tensor  # int64: its first column
    box_h: torch.Tensor  # int64: its height in pixels
    box_w: torch.Tensor  # int64: its width

    def to(self, device: torch.device | str) -> "AugmentParams":
        return AugmentParams(*(getattr(self, f.name).to(device, non_blocking=True) for f in fields(self)))


def erasing_boxes(u: torch.Tensor, height: int, width: int, scale: tuple[float, float],
                  ratio: tuple[float, float]) -> tuple[torch.Tensor, ...]:
    """Random erasing's boxes from uniform draws `u` (B, 2 x ATTEMPTS + 2), float64.

    Attempt k draws an area uniform in scale x height x width (u[:, 2k]) and an aspect
    ratio h / w uniform in `ratio` (u[:, 2k + 1]); h = round(sqrt(area r)), w = round(sqrt(area / r))
    (half to even, as Python's round). The first attempt with h < height and w < width wins
    and is placed uniformly (the last two columns of u). Returns (found, top, left, h, w), each (B,).
    """
    area_u, ratio_u = u[:, 0:2 * ATTEMPTS:2], u[:, 1:2 * ATTEMPTS:2]  # (B, ATTEMPTS)
    area = height * width * (scale[0] + (scale[1] - scale[0]) * area_u)
    r = ratio[0] + (ratio[1] - ratio[0]) * ratio_u
    h, w = torch.round(torch.sqrt(area * r)), torch.round(torch.sqrt(area / r))
    fits = (h < height) & (w < width)
    first = fits.to(torch.uint8).argmax(1, keepdim=True)  # the first fitting attempt (0 where none fits)
    found = fits.any(1)
    h, w = h.gather(1, first).squeeze(1).long(), w.gather(1, first).squeeze(1).long()
    top = torch.floor(u[:, -2] * (height - h + 1)).long()  # uniform over 0 .. height - h
    left = torch.floor(u[:, -1] * (width - w + 1)).long()
    return found, top, left, h, w


def draw_params(n: int, cfg: Config, generator: torch.Generator) -> AugmentParams:
    """Draw the augmentation of `n` images from `generator`, on its device (the CPU's, in training).

    One row of uniform draws per image: flip, crop row, crop column, whether to erase, then
    random erasing's attempts and the box's position (`erasing_boxes`).
    """
    height, width = cfg.input_size
    u = torch.rand(n, 4 + 2 * ATTEMPTS + 2, dtype=torch.float64, generator=generator, device=generator.device)
    span = 2 * cfg.padding + 1  # crop offsets 0 .. 2 x padding, as RandomCrop on the padded image
    found, box_top, box_left, box_h, box_w = erasing_boxes(u[:, 4:], height, width, tuple(cfg.erasing_scale),
                                                            tuple(cfg.erasing_ratio))
    return AugmentParams(
        flip=u[:, 0] < cfg.flip_prob,
        top=torch.floor(u[:, 1] * span).long(),
        left=torch.floor(u[:, 2] * span).long(),
        erase=(u[:, 3] < cfg.erasing_prob) & found,
        box_top=box_top, box_left=box_left, box_h=box_h, box_w=box_w,
    )


def resize(images: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """uint8 or float (B, 3, h, w) -> float32 (B, 3, H, W) in [0, 1], bilinear with antialiasing."""
    x = images.float().div_(255) if images.dtype == torch.uint8 else images.float()
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=tuple(size), mode="bilinear", antialias=True, align_corners=False)


def apply_params(images: torch.Tensor, params: AugmentParams, cfg: Config) -> torch.Tensor:
    """uint8 images (B, 3, h, w) -> normalised float32 (B, 3, H, W), augmented as `params` says."""
    params = params.to(images.device)
    x = resize(images, cfg.input_size)  # (B, 3, H, W) in [0, 1]
    b, _, height, width = x.shape
    x = torch.where(params.flip[:, None, None, None], x.flip(-1), x)
    p = cfg.padding
    if p > 0:  # zero padding (black, before normalising), then each image's own crop of the padded map
        x = F.pad(x, (p, p, p, p))
        rows = params.top[:, None] + torch.arange(height, device=x.device)  # (B, H)
        cols = params.left[:, None] + torch.arange(width, device=x.device)  # (B, W)
        x = x[torch.arange(b, device=x.device)[:, None, None], :, rows[:, :, None], cols[:, None, :]]  # (B, H, W, 3)
        x = x.permute(0, 3, 1, 2)
    mean = torch.tensor(cfg.pixel_mean, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(cfg.pixel_std, device=x.device).view(1, 3, 1, 1)
    x = (x - mean) / std
    r = torch.arange(height, device=x.device)[None, :, None]  # (1, H, 1)
    c = torch.arange(width, device=x.device)[None, None, :]  # (1, 1, W)
    inside = ((r >= params.box_top[:, None, None]) & (r < (params.box_top + params.box_h)[:, None, None])
              & (c >= params.box_left[:, None, None]) & (c < (params.box_left + params.box_w)[:, None, None]))
    mask = (inside & params.erase[:, None, None])[:, None]  # (B, 1, H, W)
    value = torch.tensor(cfg.erasing_value, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    return torch.where(mask, value, x).contiguous()


def augment_batch(images: torch.Tensor, cfg: Config, generator: torch.Generator) -> torch.Tensor:
    """`apply_params(images, draw_params(...))`: the training batch, augmented on the images' device."""
    return apply_params(images, draw_params(len(images), cfg, generator), cfg)
