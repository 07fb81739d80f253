"""The book builds offline with warnings as errors, and a reader's browser finds nothing wrong in it.

The module builds the book once, from the chapters' stored outputs (nbval, in the same
`make test`, executes every chapter and checks those outputs; executing them twice would cost
CI minutes); `REID_BOOK_EXECUTE=1` executes them as `make book` does. The browser test opens every page in headless Chromium (Debian's
`chromium`, which `.ci/run` installs): no console errors, every image loads, every chapter shows
its figures and its Colab button, no internal link or anchor is broken; on every chapter the first
exercise's solution is hidden until clicked and then shown, and chapter 8's results table is a table. Screenshots of the
introduction and of chapter 8's results figure are saved under `_build/screenshots/`
(or `$REID_SCREENSHOTS`).
"""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
import yaml

from browser import Chromium, StaticServer, find_chromium

ROOT = Path(__file__).resolve().parents[1]
# page -> (screenshot file, CSS selector of what to scroll to first, or None for the top of the page)
SCREENSHOTS = {"book/intro.html": ("intro.png", None), "notebooks/08_results.html": ("08_results.png", "article img")}
# Scripts a page may load from elsewhere (failed on purpose in the test, as offline): MathJax for the
# formulas; require.js and the widget manager for the progress-bar widgets stored in chapter outputs.
EXTERNAL_OK = ("https://cdn.jsdelivr.net/npm/mathjax@3/", "https://cdn.jsdelivr.net/npm/@jupyter-widgets/",
               "https://cdnjs.cloudflare.com/ajax/libs/require.js/")


@pytest.fixture(scope="module")
def html(tmp_path_factory) -> Path:
    exe = Path(sys.executable).with_name("jupyter-book")
    if not exe.exists():
        exe = shutil.which("jupyter-book")
        if exe is None:
            pytest.skip("jupyter-book is not installed (pip install -e '.[book]')")
    out = tmp_path_factory.mktemp("book")
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    if not os.environ.get("REID_BOOK_EXECUTE"):
        config["execute"]["execute_notebooks"] = "off"
    # The settings file moves to a temporary folder: its relative paths become absolute.
    config["sphinx"]["local_extensions"] = {k: str(ROOT / v) for k, v in config["sphinx"]["local_extensions"].items()}
    (out / "_config.yml").write_text(yaml.safe_dump(config))
    result = subprocess.run([str(exe), "build", str(ROOT), "-W", "--keep-going", "--config", str(out / "_config.yml"),
                             "--path-output", str(out)], capture_output=True, text=True, timeout=1800)
    assert result.returncode == 0, (result.stdout[-4000:] + result.stderr[-4000:])
    return out / "_build" / "html"


def chapters() -> list[str]:
    return [nb.stem for nb in sorted((ROOT / "notebooks").glob("*.ipynb"))]


def test_book_builds_and_chapters_show_their_figures(html):
    assert (html / "book" / "intro.html").is_file()
    # The landing page names its icon: otherwise the browser may ask for /favicon.ico (a 404) before it redirects.
    icon = re.search(r'<link rel="icon" href="([^"]+)"', (html / "index.html").read_text())
    assert icon and (html / icon.group(1)).is_file()
    for stem in chapters():
        page = html / "notebooks" / f"{stem}.html"
        text = page.read_text()
        images = re.findall(r'<img[^>]+src="([^"]+)"', text)
        figures = [src for src in images if src.endswith(".png") and "_static" not in src]
        assert figures, f"{page.name} shows no figure"
        for src in figures:
            target = (page.parent / src).resolve()
            assert target.is_file() and target.stat().st_size > 1000, f"{page.name}: broken image {src}"


# What a reader does on a chapter page: count the tables of the article (with their header cells), and open the
# first exercise's solution (a dropdown of sphinx-togglebutton), measuring its text before and after the click.
READER = """(async () => {
  const tables = Array.from(document.querySelectorAll('article table')).map(
      t => Array.from(t.querySelectorAll('th')).map(th => th.textContent.trim()));
  const box = document.querySelector('article div.admonition.dropdown');
  if (!box) return {tables, solution: null};
  const text = box.querySelector(':scope > :not(.admonition-title)');
  const before = text.getBoundingClientRect().height;
  (box.querySelector('button.toggle-button') || box.querySelector('.admonition-title')).click();
  await new Promise(done => setTimeout(done, 300));
  return {tables, solution: {before, after: text.getBoundingClientRect().height, words: text.innerText.length}};
})()"""


def anchors(page: Path) -> set[str]:
    return set(re.findall(r'\b(?:id|name)="([^"]+)"', page.read_text(errors="replace")))


def test_every_page_as_a_reader_sees_it(html):
    exe = find_chromium()
    if exe is None:
        if os.environ.get("REID_REQUIRE_BROWSER"):
            pytest.fail("REID_REQUIRE_BROWSER is set but no chromium is on PATH: apt-get install chromium")
        pytest.skip("no chromium on PATH (apt-get install chromium); .ci/run installs it")
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    repo = config["repository"]["url"].removeprefix("https://github.com/")
    colab = f"{config['launch_buttons']['colab_url']}/github/{repo}/blob/{config['repository']['branch']}/notebooks/"
    shots = Path(os.environ.get("REID_SCREENSHOTS", ROOT / "_build" / "screenshots"))
    pages = sorted(p.relative_to(html).as_posix() for p in html.rglob("*.html")
                   if not p.relative_to(html).parts[0].startswith("_"))
    assert {f"notebooks/{c}.html" for c in chapters()} | {"book/intro.html", "index.html"} <= set(pages)
    problems, anchor_cache = [], {}
    with StaticServer(html) as server, Chromium(exe) as browser:
        for page in pages:
            name, scroll_to = SCREENSHOTS.get(page, (None, None))
            chapter = page.startswith("notebooks/") and page.removeprefix("notebooks/")[:1].isdigit()
            report = browser.visit(server.base + page, screenshot=shots / name if name else None, scroll_to=scroll_to,
                                   probe=READER if chapter else None)
            where = page
            if not report.title or report.title.startswith("Error response"):
                problems.append(f"{where}: did not load ({report.title!r})")
            problems += [f"{where}: {e}" for e in report.console_errors]
            problems += [f"{where}: loads {u} from elsewhere" for u in report.external if not u.startswith(EXTERNAL_OK)]
            for img in report.images:
                if not (img["complete"] and img["naturalWidth"] > 0):
                    problems.append(f"{where}: image did not load: {img['src']}")
            if page.startswith("notebooks/"):
                figures = [i for i in report.images if i["inArticle"]]
                if not figures:
                    problems.append(f"{where}: shows no figure")
                problems += [f"{where}: figure drawn at zero size: {i['src']}" for i in figures
                             if not (i["width"] > 0 and i["height"] > 0)]
                if chapter:
                    solution = report.probe["solution"]
                    if not solution:
                        problems.append(f"{where}: no exercise solution to open")
                    elif not (solution["before"] == 0 and solution["after"] > 0 and solution["words"] > 20):
                        problems.append(f"{where}: a solution is not hidden until clicked, then shown: {solution}")
                if page == "notebooks/08_results.html" and not any(
                        {"mAP", "Rank-1", "mINP", "published mAP"} <= set(t) for t in report.probe["tables"]):
                    problems.append(f"{where}: the results table is not rendered as a table: {report.probe['tables']}")
                expected = colab + page.removeprefix("notebooks/").replace(".html", ".ipynb")
                if expected not in report.links:
                    problems.append(f"{where}: no Colab button to {expected}")
            for link in report.links:
                url = urlsplit(link)
                if not link.startswith(server.base) or url.path.endswith("/_sources/"):
                    continue
                target = html / unquote(url.path).lstrip("/")
                if target.is_dir():
                    target = target / "index.html"
                if not target.is_file():
                    problems.append(f"{where}: broken link {link}")
                elif url.fragment and target.suffix == ".html":
                    ids = anchor_cache.setdefault(target, anchors(target))
                    if unquote(url.fragment) not in ids:
                        problems.append(f"{where}: link to a missing anchor {link}")
        landing = browser.visit(server.base + "index.html").final_url
    assert landing == server.base + "book/intro.html", f"index.html should open the introduction, opened {landing}"
    assert not problems, "\n".join(problems)
    for name, _ in SCREENSHOTS.values():
        assert (shots / name).stat().st_size > 10_000, f"screenshot {shots / name} is empty"
    print("screenshots:", ", ".join(str(shots / n) for n, _ in SCREENSHOTS.values()))
