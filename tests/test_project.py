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


def test_every_chapter_installs_the_package_from_the_repository_the_book_names():
    """The Colab set-up cell and the launch buttons come from one setting: `repository.url`."""
    import json

    import yaml

    url = yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]["url"]
    cell = f'!pip install -q "reid @ git+{url}"'
    for nb in sorted((ROOT / "notebooks").glob("*.ipynb")):
        code = ["".join(c["source"]) for c in json.loads(nb.read_text())["cells"] if c["cell_type"] == "code"]
        assert 'if "google.colab" in sys.modules:' in code[0] and cell in code[0], f"{nb.name}: set-up cell"
    assert cell in (ROOT / "book" / "colab.md").read_text()


def test_the_readme_shows_the_table_chapter_8_computed():
    import json

    nb = json.loads((ROOT / "notebooks" / "08_results.ipynb").read_text())
    tables = ["".join(o["data"]["text/markdown"]) for c in nb["cells"] if c["cell_type"] == "code"
              for o in c.get("outputs", []) if "text/markdown" in o.get("data", {})]
    assert len(tables) == 1 and tables[0].count("\n") == 8, "chapter 8 should show one 7-row table"
    assert tables[0] in (ROOT / "README.md").read_text(), "README.md's results table differs from chapter 8's output"


def test_no_test_markers_in_what_readers_see():
    """nbval reads the `nbval-ignore-output` cell tag, which the rendered book hides; a marker comment would show."""
    import json

    for nb in sorted((ROOT / "notebooks").glob("*.ipynb")):
        for i, cell in enumerate(json.loads(nb.read_text())["cells"]):
            source = "".join(cell["source"])
            assert "NBVAL_" not in source, f"{nb.name}, cell {i}: use the nbval-ignore-output tag, not a comment"
            tags = cell.get("metadata", {}).get("tags", [])
            assert cell["cell_type"] == "code" or not tags, f"{nb.name}, cell {i}: a tag on a {cell['cell_type']} cell"
