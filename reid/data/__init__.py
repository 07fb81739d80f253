"""Data: Market-1501 records, the synthetic Market-1501, PK sampling, transforms, loaders."""

from .download import DownloadError, download_market1501, fetch, safe_extract, unpack_market1501
from .loaders import (ImageDataset, dataset_root, load_dataset, make_dataloaders, make_validation_loader, read_image,
                      seed_worker, shutdown_workers, training_records)
from .market1501 import (
    MARKET1501_FOLDER,
    MARKET1501_STATS,
    Market1501,
    MarketName,
    Record,
    carve_validation,
    parse_market_name,
    read_split,
)
from .sampler import RandomIdentitySampler, pk_batches
from .synthetic import PRESETS as SYNTHETIC_PRESETS
from .synthetic import SyntheticSpec, make_synthetic_market
from .transforms import augmentation_steps, denormalize, test_transforms, train_transforms

__all__ = [
    "DownloadError", "ImageDataset", "MARKET1501_FOLDER", "MARKET1501_STATS", "Market1501", "MarketName", "RandomIdentitySampler", "Record",
    "SYNTHETIC_PRESETS", "SyntheticSpec", "augmentation_steps", "carve_validation", "dataset_root", "denormalize",
    "download_market1501", "fetch", "load_dataset", "make_dataloaders", "make_validation_loader", "make_synthetic_market", "parse_market_name", "pk_batches",
    "read_image", "read_split", "safe_extract", "seed_worker", "shutdown_workers", "training_records", "test_transforms", "train_transforms",
    "unpack_market1501",
]
