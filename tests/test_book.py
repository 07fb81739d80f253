"""The book builds offline with warnings as errors, and each chapter shows its figures."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_book_builds_and_chapters_show_their_figures(tmp_path):
    exe = Path(sys.executable).with_name("jupyter-book")
    if not exe.exists():
        exe = shutil.which("jupyter-book")
        if exe is None:
            pytest.skip("jupyter-book is not installed (pip install -e '.[book]')")
    result = subprocess.run(
        [str(exe), "build", str(ROOT), "-W", "--keep-going", "--path-output", str(tmp_path)],
        capture_output=True, text=True, timeout=1800,
    )
    assert result.returncode == 0, (result.stdout[-4000:] + result.stderr[-4000:])
    html = tmp_path / "_build" / "html"
    assert (html / "book" / "intro.html").is_file()
    for nb in sorted((ROOT / "notebooks").glob("*.ipynb")):
        page = html / "notebooks" / f"{nb.stem}.html"
        text = page.read_text()
        images = re.findall(r'<img[^>]+src="([^"]+)"', text)
        figures = [src for src in images if src.endswith(".png")]
        assert figures, f"{page.name} shows no figure"
        for src in figures:
            target = (page.parent / src).resolve()
            assert target.is_file() and target.stat().st_size > 1000, f"{page.name}: broken image {src}"
