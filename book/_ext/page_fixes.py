"""Small fixes to the rendered pages, each found by the browser test (tests/test_book.py).

* Inline configuration scripts (sphinx-thebe's `const THEBE_JS_URL = ...`, sphinx-togglebutton's
  selector) reached every page twice, once registered with the file name None and once with "",
  so Sphinx did not see them as equal; the second `const` is a SyntaxError in the reader's
  console. Each page now gets each script once, in its first position.
* `index.html`, the page a reader lands on first, only redirected to the introduction: it named
  no icon, so the browser asked the server for /favicon.ico (a 404 in its console, whenever the
  request beat the redirect). The extension writes that page itself, with the book's icon;
  Jupyter Book keeps an index.html it finds.
"""

from __future__ import annotations

from pathlib import Path


def _key(script) -> tuple:
    attributes = getattr(script, "attributes", {}) or {}
    filename = getattr(script, "filename", script) or ""  # an inline script's is None or "", depending on its path
    return (str(filename), tuple(sorted((k, str(v)) for k, v in attributes.items())))


def unique_scripts(app, pagename, templatename, context, doctree) -> None:
    scripts = context.get("script_files")
    if not scripts:
        return
    seen, unique = set(), []
    for script in scripts:
        key = _key(script)
        if key not in seen:
            seen.add(key)
            unique.append(script)
    context["script_files"] = unique


def redirect_page(app, exception) -> None:
    if exception is not None or app.builder.name != "html":
        return
    icon = Path(app.config.html_favicon or "").name
    link = f'<link rel="icon" href="_static/{icon}" />\n' if icon else ""
    first = f"{app.config.root_doc}.html"
    page = f'<!DOCTYPE html>\n<meta charset="utf-8" />\n{link}<meta http-equiv="Refresh" content="0; url={first}" />\n'
    (Path(app.outdir) / "index.html").write_text(page)


def setup(app):
    app.connect("html-page-context", unique_scripts, priority=900)
    app.connect("build-finished", redirect_page)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
