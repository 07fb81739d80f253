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


# `make test` runs these tests beside the chapters, at the lowest CPU priority (see the Makefile), and
# names in REID_CHAPTERS_DONE a file it creates when the chapters end. Until then the tests take one
# thread (torch's and numba's; the processes they start, torch's and MKL's); from then on, the threads
# torch and numba would take.
_CHAPTERS_DONE = os.environ.pop("REID_CHAPTERS_DONE", None)
_DEFAULT_THREADS = torch.get_num_threads()
_THREAD_VARIABLES = {name: os.environ.get(name) for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}


def _numba():
    try:
        import numba
    except ImportError:
        return None
    return numba


def pytest_configure(config):
    if _CHAPTERS_DONE and not os.path.exists(_CHAPTERS_DONE):
        torch.set_num_threads(1)
        os.environ.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")  # for the processes the tests start
        if (numba := _numba()) is not None:  # in this process only: numba refuses NUMBA_NUM_THREADS changed after its start
            numba.set_num_threads(1)


@pytest.fixture(autouse=True)
def every_core_once_the_chapters_are_done():
    global _CHAPTERS_DONE
    if _CHAPTERS_DONE and os.path.exists(_CHAPTERS_DONE):
        _CHAPTERS_DONE = None
        for name, value in _THREAD_VARIABLES.items():  # as they were
            os.environ.pop(name, None) if value is None else os.environ.__setitem__(name, value)
        torch.set_num_threads(_DEFAULT_THREADS)
        if (numba := _numba()) is not None:
            numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
    yield
