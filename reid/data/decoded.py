"""The training split decoded once, held on the training device, and served as augmented PK batches.

A DataLoader decodes every JPEG and augments it one image at a time in worker processes,
every epoch. On a GPU the network then waits for the workers; on a small CPU the workers
take cores from the network. Market-1501's training split is 12,936 images of 128x64,
318 MB as uint8: it fits in any GPU's memory. So:

* `decode_split` decodes the split once into one uint8 tensor (N, 3, h, w), and caches it
  on disk (`decoded_cache`) under a key made of the files (names, sizes, modification
  times) and the storage size, so the next run loads it in seconds;
* `DeviceBatches` keeps that tensor on the training device and, for each PK batch of the
  sampler, gathers the images there and augments them as one batch
  (`reid.data.batch_augment`), with a generator seeded from (seed, epoch, position): the
  same batches on every run, and after a resume.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from ..config import Config
from ..utils import atomic_write
from .batch_augment import augment_batch
from .loaders import read_image
from .market1501 import Record
from .sampler import RandomIdentitySampler

CACHE_VERSION = 1  # bump when the decoding changes: old cache files are then not reused


def storage_size(paths: Sequence[str]) -> tuple[int, int]:
    """(height, width) the decoded split is stored at: the most common image size among `paths`.

    Market-1501's boxes are all 128x64, so they are stored as they are and resized to the
    input size on the device, batch by batch. A split whose images differ in size is
    resized once, when decoded, to the size most of them have (bilinear, antialiased).
    """
    sizes = Counter()
    for path in paths:
        with Image.open(path) as img:
            sizes[(img.height, img.width)] += 1
    return sizes.most_common(1)[0][0]


class _Decode(Dataset):
    def __init__(self, paths: Sequence[str], size: tuple[int, int]):
        self.paths, self.size = list(paths), size

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> torch.Tensor:
        img = read_image(self.paths[i])
        if (img.height, img.width) != self.size:
            img = img.resize((self.size[1], self.size[0]), Image.BILINEAR)
        return torch.from_numpy(np.asarray(img).copy()).permute(2, 0, 1)  # (3, h, w) uint8


def cache_key(paths: Sequence[str], size: tuple[int, int]) -> str:
    """A digest of the files (names, sizes, modification times) and of how they are decoded."""
    h = hashlib.sha256(json.dumps({"version": CACHE_VERSION, "size": list(size)}).encode())
    for path in paths:
        st = os.stat(path)
        h.update(f"{Path(path).name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


def decode_split(paths: Sequence[str], size: tuple[int, int] | None = None, num_workers: int = 0,
                 progress: bool = False) -> torch.Tensor:
    """Every image of `paths` decoded, in order: (N, 3, h, w) uint8 at `size` (default: `storage_size`)."""
    size = tuple(size) if size is not None else storage_size(paths)
    out = torch.empty(len(paths), 3, *size, dtype=torch.uint8)
    # its own generator: a loader without one seeds its workers from torch's global random state, and
    # whether the split was decoded now or loaded from the cache must not change a run's initial weights
    loader = DataLoader(_Decode(paths, size), batch_size=256, num_workers=num_workers,
                        generator=torch.Generator().manual_seed(0))
    done = 0
    for batch in tqdm(iter(loader), total=len(loader), desc="decoding", leave=False, disable=not progress):
        out[done:done + len(batch)] = batch
        done += len(batch)
    return out


def decoded_cache(paths: Sequence[str], cache_dir: str | os.PathLike, num_workers: int = 0,
                  progress: bool = False, size: tuple[int, int] | None = None) -> torch.Tensor:
    """`decode_split(paths, size)`, loaded from `cache_dir` when it was decoded before, else decoded and saved there.

    The file is written atomically and read with `weights_only=True`; a damaged file is
    decoded again.
    """
    size = tuple(size) if size is not None else storage_size(paths)
    path = Path(cache_dir) / f"decoded-{len(paths)}x{size[0]}x{size[1]}-{cache_key(paths, size)}.pt"
    if path.exists():
        try:
            images = torch.load(path, map_location="cpu", weights_only=True)
            if isinstance(images, torch.Tensor) and images.shape == (len(paths), 3, *size):
                return images
        except Exception:  # a damaged or foreign file: decode again and replace it
            pass
    images = decode_split(paths, size, num_workers, progress)
    atomic_write(path, lambda tmp: torch.save(images, tmp))
    return images


def fits_on_device(num_images: int, size: tuple[int, int], cfg: Config) -> bool:
    """Whether a split of `num_images` uint8 images of `size` stays within `cfg.device_data_max_gb`."""
    return num_images * 3 * size[0] * size[1] <= cfg.device_data_max_gb * 1e9


class DeviceBatches:
    """The PK batches of an epoch, gathered from the decoded split on `device` and augmented there.

    Iterating gives (images (B, 3, H, W) float32 on `device`, pids (B,), camids (B,), None),
    as the training loader does, so `reid.engine.train_one_epoch` takes either. The sampler
    is the loader path's (`batch_sampler`, its epoch set by the engine); each batch's
    augmentation is drawn from a generator seeded with the first augmentation seed the
    sampler assigns to the batch, so it depends only on (seed, epoch, position).
    """

    def __init__(self, images: torch.Tensor, records: Sequence[Record], sampler: RandomIdentitySampler, cfg: Config,
                 device: torch.device | str):
        if not sampler.item_seeds:
            raise ValueError("DeviceBatches needs a RandomIdentitySampler with item_seeds=True (the batches' seeds)")
        self.device = torch.device(device)
        self.images = images.to(self.device)  # (N, 3, h, w) uint8
        self.pids = torch.tensor([r.pid for r in records])
        self.camids = torch.tensor([r.camid for r in records])
        self.batch_sampler, self.cfg = sampler, cfg
        self.generator = torch.Generator()  # the draws are made on the CPU: the same batches on any device

    def __len__(self) -> int:
        return len(self.batch_sampler)

    def __iter__(self):
        for batch in self.batch_sampler:  # one epoch: (index, seed) pairs
            index = torch.tensor([i for i, _ in batch])
            self.generator.manual_seed(batch[0][1])
            images = augment_batch(self.images[index.to(self.device)], self.cfg, self.generator)
            yield images, self.pids[index], self.camids[index], None


def training_batches(cfg: Config, loader: DataLoader, device: torch.device | str, progress: bool = False):
    """What the engine trains on: `DeviceBatches` over `loader`'s records and sampler when `cfg.train_data`
    is "device", or "auto" and the decoded split fits `cfg.device_data_max_gb`; else `loader` itself."""
    if cfg.train_data == "loader":
        return loader
    records = loader.dataset.records
    paths = [r.path for r in records]
    size = storage_size(paths)
    if not fits_on_device(len(paths), size, cfg):
        if cfg.train_data == "device":
            raise ValueError(
                f"train_data='device': the decoded training split ({len(paths)} images of {size[0]}x{size[1]}, "
                f"{len(paths) * 3 * size[0] * size[1] / 1e9:.1f} GB) exceeds device_data_max_gb="
                f"{cfg.device_data_max_gb}; raise device_data_max_gb if the device has the memory, or use "
                "train_data='loader'")
        return loader
    cache = Path(cfg.data_root).expanduser() / "decoded"
    images = decoded_cache(paths, cache, cfg.num_workers, progress, size)
    return DeviceBatches(images, records, loader.batch_sampler, cfg, device)
