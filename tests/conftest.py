"""Shared fixtures: a tiny synthetic Market-1501 generated once per test session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

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


@pytest.fixture(autouse=True)
def every_core_once_the_chapters_are_done():
    """`make test` runs these tests on one thread beside the chapters (see the Makefile) and creates the
    file named by REID_CHAPTERS_DONE when the chapters end: from then on, tests and the processes
    they start use every core."""
    done = os.environ.get("REID_CHAPTERS_DONE")
    if done and os.path.exists(done):
        del os.environ["REID_CHAPTERS_DONE"]
        for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ.pop(name, None)
        torch.set_num_threads(os.cpu_count() or 1)  # numba keeps one: NUMBA_NUM_THREADS is read at its import
    yield
