"""Datasets and data loaders: records -> image tensors, PK batches for training."""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import DataLoader, Dataset

from ..config import Config
from .download import download_market1501
from .market1501 import MARKET1501_FOLDER, Market1501, Record, carve_validation
from .sampler import RandomIdentitySampler
from .synthetic import make_synthetic_market
from .transforms import test_transforms, train_transforms


def read_image(path: str) -> Image.Image:
    """Open an image as RGB, or raise an error that names the file and the fix."""
    try:
        with Image.open(path) as img:
            return img.convert("RGB")
    except FileNotFoundError:
        raise FileNotFoundError(f"image {path} is missing: the dataset folder changed after it was read; "
                                "reload the dataset") from None
    except (UnidentifiedImageError, OSError, SyntaxError) as err:
        raise OSError(f"cannot read image {path} ({err}); the file is corrupt or truncated: "
                      "delete it, or re-extract / regenerate the dataset") from None


class ImageDataset(Dataset):
    """Records as (image tensor, pid, camid, path) tuples.

    An index may be an (index, seed) pair (from `RandomIdentitySampler(item_seeds=True)`):
    the random transforms then draw from torch's generator seeded with `seed`, forked so
    that the caller's random state is left as it was.
    """

    def __init__(self, records: Sequence[Record], transform: Callable | None = None):
        self.records = list(records)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int | tuple[int, int]):
        seed = None
        if isinstance(index, (tuple, list)):
            index, seed = index
        path, pid, camid = self.records[index]
        img = read_image(path)
        if self.transform is not None:
            if seed is None:
                img = self.transform(img)
            else:
                with torch.random.fork_rng(devices=[]):
                    torch.default_generator.manual_seed(seed)  # the CPU generator only: cheap, per image
                    img = self.transform(img)
        return img, pid, camid, path


def dataset_root(cfg: Config, verbose: bool = False) -> Path:
    """The folder of the configured dataset; the synthetic one is generated if needed."""
    if cfg.dataset == "synthetic":
        return make_synthetic_market(cfg.data_root, cfg.synthetic_preset, cfg.synthetic_seed, verbose=verbose)
    root = Path(cfg.data_root).expanduser() / cfg.market_dir
    archives, allow = os.environ.get("REID_ARCHIVES"), os.environ.get("REID_ALLOW_DOWNLOAD") == "1"
    if not root.is_dir() and cfg.market_dir == MARKET1501_FOLDER and (archives or allow):
        # as reid.setup() arranges on Colab: the zip kept in REID_ARCHIVES (Drive), unpacked to the local disk
        return download_market1501(cfg.data_root, allow_download=allow, archive_dir=archives)
    if not root.is_dir():
        raise FileNotFoundError(
            f"Market-1501 is not at {root} (cfg.data_root={cfg.data_root!r}, cfg.market_dir={cfg.market_dir!r}). "
            f"Unzip {MARKET1501_FOLDER}.zip there, point cfg.data_root at its parent folder, put the zip in a "
            f"folder named by REID_ARCHIVES, or download it with reid.data.download_market1501({cfg.data_root!r}, "
            f"allow_download=True); on Colab, reid.setup() (the first cell of every chapter) downloads it on first use"
        )
    return root


def load_dataset(cfg: Config, verbose: bool = True) -> Market1501:
    """The records of the configured dataset (synthetic by default, or the real Market-1501)."""
    return Market1501(dataset_root(cfg, verbose=verbose), verbose=verbose)


def seed_worker(worker_id: int) -> None:
    """Seed Python and NumPy in a loader worker from its torch seed (set by the loader's generator)."""
    seed = torch.initial_seed() % 2**32
    random.seed(seed)
    np.random.seed(seed)


def _loader_kwargs(cfg: Config, seed: int, persistent: bool = False) -> dict:
    """Loader settings. Only the training loader keeps its workers between epochs (`persistent`);
    a test loader's workers stop at the end of each pass, so none outlive the loop that used them."""
    workers = cfg.num_workers
    return {
        "num_workers": workers,
        "pin_memory": torch.cuda.is_available() and cfg.device != "cpu",
        "persistent_workers": persistent and workers > 0,
        "worker_init_fn": seed_worker,
        "generator": torch.Generator().manual_seed(seed),
    }


def make_dataloaders(cfg: Config, dataset: Market1501 | None = None, rank: int = 0, world_size: int = 1):
    """Return (PK train loader, query+gallery test loader, number of queries, number of classes).

    The train loader's augmentations are seeded per image (see `RandomIdentitySampler`), so
    they do not depend on the number of workers. With several processes, `rank` and
    `world_size` give each its own identities in every step. The test loader yields the
    queries first, then the gallery, in file-name order; the first `num_query` rows of the
    extracted features are the queries.
    """
    cfg.validate()
    dataset = dataset if dataset is not None else load_dataset(cfg, verbose=False)
    train = training_records(cfg, dataset)
    sampler = RandomIdentitySampler([r.pid for r in train], cfg.batch_size, cfg.num_instances, seed=cfg.seed,
                                    rank=rank, world_size=world_size, item_seeds=True)
    train_loader = DataLoader(ImageDataset(train, train_transforms(cfg)), batch_sampler=sampler,
                              **_loader_kwargs(cfg, cfg.seed, persistent=True))
    test_loader = DataLoader(ImageDataset(dataset.query + dataset.gallery, test_transforms(cfg)),
                             batch_size=cfg.test_batch_size, shuffle=False, **_loader_kwargs(cfg, cfg.seed + 1))
    return train_loader, test_loader, len(dataset.query), len({r.pid for r in train})


def shutdown_workers(loader: DataLoader) -> None:
    """Stop a loader's persistent worker processes now.

    Left to the garbage collector, a pool can still exist when a later loader forks its own
    workers; they inherit it and fail tearing it down ("AssertionError: can only test a child
    process", printed by Jupyter). `reid.engine.train` calls this when training ends.
    """
    iterator = getattr(loader, "_iterator", None)
    if iterator is not None:
        iterator._shutdown_workers()
        loader._iterator = None


def training_records(cfg: Config, dataset: Market1501) -> list:
    """The records to train on: all of ``dataset.train``, minus the validation identities if
    ``cfg.val_identities`` > 0 (relabelled 0..C-1)."""
    if cfg.val_identities == 0:
        return dataset.train
    return carve_validation(dataset.train, cfg.val_identities, seed=cfg.seed)[0]


def make_validation_loader(cfg: Config, dataset: Market1501 | None = None):
    """(loader over the validation query + gallery, number of validation queries).

    The split holds out ``cfg.val_identities`` training identities (at least 1 is needed);
    with ``val_identities=0`` there is none: set it before training, so that the model
    never sees the identities it is tuned on.
    """
    if cfg.val_identities == 0:
        raise ValueError("cfg.val_identities=0: there is no validation split; set it (e.g. 30) before training, so "
                         "that the held-out identities stay unseen by the model")
    dataset = dataset if dataset is not None else load_dataset(cfg, verbose=False)
    _, query, gallery = carve_validation(dataset.train, cfg.val_identities, seed=cfg.seed)
    loader = DataLoader(ImageDataset(query + gallery, test_transforms(cfg)), batch_size=cfg.test_batch_size,
                        shuffle=False, **_loader_kwargs(cfg, cfg.seed + 2))
    return loader, len(query)
