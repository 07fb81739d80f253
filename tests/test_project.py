"""The project's own files agree with each other."""

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _pyproject():
    if sys.version_info < (3, 11):
        pytest.skip("tomllib needs Python 3.11")
    import tomllib

    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_environment_yml_names_the_same_set_as_pyproject():
    project = _pyproject()["project"]
    wanted = set(project["dependencies"]) | set(project["optional-dependencies"]["book"])
    lines = [line.strip() for line in (ROOT / "environment.yml").read_text().splitlines()]
    listed = {line[2:] for line in lines if line.startswith("- ") and not line.startswith("- -e")}
    listed -= {"conda-forge", "python=3.11", "pip", "pip:"}
    assert listed == wanted


def test_torch_is_pinned():
    deps = _pyproject()["project"]["dependencies"]
    assert "torch==2.14.1" in deps and "torchvision==0.29.1" in deps


def test_toc_lists_every_notebook():
    toc = (ROOT / "_toc.yml").read_text()
    for nb in sorted((ROOT / "notebooks").glob("*.ipynb")):
        assert f"notebooks/{nb.stem}" in toc, nb.name
