"""Shared fixtures: a tiny synthetic Market-1501 generated once per test session."""

from __future__ import annotations

from pathlib import Path

import pytest

from reid.data import make_synthetic_market

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(scope="session")
def tiny_root(tmp_path_factory) -> Path:
    """The folder of the 'tiny' synthetic set (a few hundred images)."""
    return make_synthetic_market(tmp_path_factory.mktemp("synthetic"), "tiny", seed=0, verbose=False)


@pytest.fixture(scope="session")
def cuhk01_root() -> Path:
    """The real CUHK01 images in Market layout, when the shared folder is present."""
    root = SHARED_DATA / "cuhk01"
    if not (root / "bounding_box_train").is_dir():
        pytest.skip(f"real images not present at {root}")
    return root
