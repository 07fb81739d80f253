"""The project's own files agree with each other."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


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


def test_set_repository_points_every_link_at_a_fork(tmp_path):
    """scripts/set_repository.py on a copy of the book: the setting and every place that installs from or opens it."""
    import importlib.util
    import json
    import shutil

    import yaml

    for part in ("notebooks", "book"):
        shutil.copytree(ROOT / part, tmp_path / part, ignore=shutil.ignore_patterns("_ext", "images"))
    for name in ("_config.yml", "README.md"):
        shutil.copy(ROOT / name, tmp_path / name)
    spec = importlib.util.spec_from_file_location("set_repository", ROOT / "scripts" / "set_repository.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    old = yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]["url"].removeprefix("https://github.com/")
    before = {p: json.loads(p.read_text()) for p in (tmp_path / "notebooks").glob("*.ipynb")}

    changed = module.set_repository(tmp_path, "https://github.com/someone/my-reid-book")
    assert yaml.safe_load((tmp_path / "_config.yml").read_text())["repository"]["url"] == \
        "https://github.com/someone/my-reid-book"
    assert module.named_slugs(tmp_path) == {"someone/my-reid-book"}
    assert len({p for p in changed if p.suffix == ".ipynb"}) == len(before)
    for path, nb in before.items():  # only the set-up cell's source changed: outputs are as stored
        after = json.loads(path.read_text())
        assert [c.get("outputs") for c in after["cells"]] == [c.get("outputs") for c in nb["cells"]]
    for page in ("book/colab.md", "README.md"):
        text = (tmp_path / page).read_text()
        assert f"git+https://github.com/{old}" not in text and f"colab.research.google.com/github/{old}" not in text
    assert "colab.research.google.com/github/someone/my-reid-book/blob/main/notebooks/" in (tmp_path / "README.md").read_text()
    assert module.set_repository(tmp_path) == []  # agreeing files are left alone
