"""The project's own files agree with each other."""

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_toc_lists_every_notebook():
    toc = (ROOT / "_toc.yml").read_text()
    for nb in sorted((ROOT / "notebooks").glob("*.ipynb")):
        assert f"notebooks/{nb.stem}" in toc, nb.name


def test_every_chapter_installs_the_package_from_the_repository_the_book_names():
    """The Colab set-up cell and the launch buttons come from one setting: `repository.url`. The set-up cell is
    the first code cell of every notebook, the same everywhere, and shown on the Colab page as it is
    (tests/test_colab.py runs it on a stand-in for Colab)."""
    import json

    import yaml

    url = yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]["url"]
    install = f'!pip install -q "reid[colab] @ git+{url}"'
    page = (ROOT / "book" / "colab.md").read_text()
    for nb in sorted((ROOT / "notebooks").glob("*.ipynb")):
        code = ["".join(c["source"]) for c in json.loads(nb.read_text())["cells"] if c["cell_type"] == "code"]
        assert 'if "google.colab" in sys.modules' in code[0] and install in code[0], f"{nb.name}: set-up cell"
        assert "reid.setup()" in code[0], f"{nb.name}: the set-up cell places runs and data (reid.setup)"
        shown = "\n".join(line for line in code[0].splitlines() if not line.startswith("#"))
        assert shown.strip() in page, f"{nb.name}: book/colab.md shows another set-up cell"
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert extras["colab"] == ["reid[export,search,fast]"]  # what every chapter needs beyond Colab's PyTorch


def test_the_readme_shows_the_table_chapter_8_computed():
    import json

    nb = json.loads((ROOT / "notebooks" / "08_results.ipynb").read_text())
    tables = ["".join(o["data"]["text/markdown"]) for c in nb["cells"] if c["cell_type"] == "code"
              for o in c.get("outputs", []) if "text/markdown" in o.get("data", {})]
    tables = [t for t in tables if t.startswith("| row | mAP | Rank-1 | mINP | published mAP |")]  # not the noise tables
    assert len(tables) == 1 and tables[0].count("\n") == 8, "chapter 8 should show one 7-row results table"
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


def test_every_chapter_opens_sums_up_asks_exercises_cites_and_links():
    """Each numbered chapter: an opening that says what it teaches and links what it builds on, a summary of at
    least three points, at least three exercises each with a solution behind a toggle, a citation from
    book/references.bib, and a link to another chapter. The exercises come last; the code an exercise runs (its
    solution, or what it asks the reader to try) is a code cell after it, hidden behind a toggle (`hide-cell`)
    and labelled `# Exercise N`, so that nbval executes it after the chapter's cells and fails when it raises;
    the exercises' Markdown holds no Python block that nothing would run."""
    import json
    import re

    keys = set(re.findall(r"^@\w+\{([^,]+),", (ROOT / "book" / "references.bib").read_text(), flags=re.M))
    chapters = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    assert len(chapters) >= 9
    for nb in chapters:
        all_cells = json.loads(nb.read_text())["cells"]
        cells = ["".join(c["source"]) for c in all_cells if c["cell_type"] == "markdown"]
        opening, text = cells[0], "\n".join(cells)
        assert opening.startswith(f"# {int(nb.name[:2])}. "), f"{nb.name}: the first cell is the chapter's title"
        assert re.search(r"this chapter|you will", opening, flags=re.I), f"{nb.name}: the opening says what it teaches"
        links = set(re.findall(r"\]\((\d\d_[a-z_]+\.ipynb)\)", text))
        assert re.search(r"\]\(\d\d_[a-z_]+\.ipynb\)", opening), f"{nb.name}: the opening links other chapters"
        assert links - {nb.name} and all((ROOT / "notebooks" / link).exists() for link in links), (nb.name, links)
        summary = [c for c in cells if c.startswith("## Summary")]
        assert len(summary) == 1 and len(re.findall(r"^\* ", summary[0], flags=re.M)) >= 3, f"{nb.name}: summary"
        heading = [i for i, c in enumerate(all_cells) if c["cell_type"] == "markdown"
                   and "".join(c["source"]).startswith("## Exercises")]
        assert len(heading) == 1, f"{nb.name}: one '## Exercises' section"
        section = all_cells[heading[0]:]
        prose = "\n".join("".join(c["source"]) for c in section if c["cell_type"] == "markdown")
        assert "\n## " not in prose.split("\n", 1)[1], f"{nb.name}: the exercises are the last section"
        asked = re.findall(r"^\*\*Exercise (\d+)\.\*\*", prose, flags=re.M)
        solved = re.findall(r"^`{3,4}\{admonition\} Solution\n:class: dropdown\n\n\S", prose, flags=re.M)
        assert len(asked) >= 3 and asked == [str(i) for i in range(1, len(asked) + 1)], f"{nb.name}: {asked}"
        assert len(solved) == len(asked), f"{nb.name}: {len(asked)} exercises, {len(solved)} solutions in a dropdown"
        assert not re.search(r"^`{3,4}(python|ipython)", prose, flags=re.M), \
            f"{nb.name}: code in an exercise's text would never run; put it in a hide-cell code cell after it"
        for cell in (c for c in section if c["cell_type"] == "code"):
            source = "".join(cell["source"])
            label = re.match(r"# Exercise (\d+)\b", source)
            assert label and label.group(1) in asked, f"{nb.name}: a code cell among the exercises says which it runs"
            assert "hide-cell" in cell.get("metadata", {}).get("tags", []), f"{nb.name}: {label.group(0)} is hidden"
        cited = {k.strip() for group in re.findall(r"\{cite(?::\w+)?\}`([^`]+)`", text) for k in group.split(",")}
        assert cited and cited <= keys, f"{nb.name}: citations {cited - keys or 'missing'}"
