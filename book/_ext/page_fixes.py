"""Small fixes to the rendered pages, each found by the browser test (tests/test_book.py).

* Inline configuration scripts (sphinx-thebe's `const THEBE_JS_URL = ...`, sphinx-togglebutton's
  selector) reached every page twice, once registered with the file name None and once with "",
  so Sphinx did not see them as equal; the second `const` is a SyntaxError in the reader's
  console. Each page now gets each script once, in its first position.
"""

from __future__ import annotations


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


def setup(app):
    app.connect("html-page-context", unique_scripts, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
