"""Point the book at another GitHub repository (a fork): one setting, every file that names it.

    python scripts/set_repository.py https://github.com/you/reid-book   # set it, and rewrite the files
    python scripts/set_repository.py                                    # make the files agree with _config.yml

The repository is `repository.url` in _config.yml; the launch buttons (Colab) and the source
links of the rendered book derive from it. Colab cannot read that file, so each notebook's
set-up cell (`pip install "reid[colab] @ git+<url>"`), the Colab page and the README name the
repository too: this script rewrites every place that installs from or opens the old one
(`git+https://github.com/<owner>/<name>`, `colab.research.google.com/github/<owner>/<name>/...`);
the README's citation keeps naming the original. Only cell sources change; stored outputs
stay as they are.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import nbformat
import yaml

ROOT = Path(__file__).resolve().parents[1]
SETUP = re.compile(r'reid(?:\[[\w,]+\])? @ git\+https://github\.com/([\w.-]+/[\w.-]+?)(?:\.git)?"')
PAGES = ("README.md", "book/colab.md", "book/intro.md")


def slug_of(url: str) -> str:
    m = re.fullmatch(r"https://github\.com/([\w.-]+/[\w.-]+?)(?:\.git)?/?", url.strip())
    if m is None:
        raise SystemExit(f"{url!r} is not a GitHub repository address like https://github.com/owner/name")
    return m.group(1)


def named_slugs(root: Path) -> set[str]:
    """The repositories the notebooks' set-up cells install from."""
    found = set()
    for path in sorted((root / "notebooks").glob("*.ipynb")):
        for cell in nbformat.read(path, as_version=4).cells:
            if cell.cell_type == "code":
                found.update(SETUP.findall(cell.source))
    return found


def rewrite(text: str, old: str, new: str) -> str:
    for prefix in ("git+https://github.com/", "colab.research.google.com/github/"):  # not citations of the original
        text = text.replace(prefix + old, prefix + new)
    return text


def set_repository(root: Path, url: str | None = None) -> list[Path]:
    """Set `repository.url` (if `url`) and rewrite every file that names another repository; return those changed."""
    config_path = root / "_config.yml"
    config_text = config_path.read_text()
    current = yaml.safe_load(config_text)["repository"]["url"]
    changed = []
    if url is not None and slug_of(url) != slug_of(current):
        config_text = config_text.replace(f"url: {current}", f"url: https://github.com/{slug_of(url)}", 1)
        config_path.write_text(config_text)
        changed.append(config_path)
        current = url
    new = slug_of(current)
    for old in sorted(named_slugs(root) - {new}):
        for path in sorted((root / "notebooks").glob("*.ipynb")):
            nb = nbformat.read(path, as_version=4)
            touched = False
            for cell in nb.cells:
                source = rewrite(cell.source, old, new)
                if source != cell.source:
                    cell.source, touched = source, True
            if touched:
                nbformat.write(nb, path)
                changed.append(path)
        for page in PAGES:
            path = root / page
            if path.exists():
                text = path.read_text()
                if rewrite(text, old, new) != text:
                    path.write_text(rewrite(text, old, new))
                    changed.append(path)
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("url", nargs="?", help="https://github.com/<owner>/<name>; default: keep _config.yml's")
    args = parser.parse_args(argv)
    changed = set_repository(ROOT, args.url)
    for path in dict.fromkeys(changed):
        print("rewrote", path.relative_to(ROOT))
    print("repository:", yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]["url"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
