"""Sphinx extension: drop repeated <script> entries from each page.

jupyter-book 1.0.4 with sphinx-thebe 0.3.1 emits the inline ``const THEBE_JS_URL = ...`` script twice, which the
browser rejects ("Identifier 'THEBE_JS_URL' has already been declared"); tests/test_site.py caught it.
"""
from __future__ import annotations


def _dedupe(app, pagename, templatename, context, doctree) -> None:
    seen, unique = set(), []
    for script in context.get("script_files", []):
        filename = getattr(script, "filename", script) or ""  # inline scripts come as None or ''
        key = (str(filename), repr(sorted(getattr(script, "attributes", {}).items())))
        if key not in seen:
            seen.add(key)
            unique.append(script)
    context["script_files"] = unique


def setup(app):
    app.connect("html-page-context", _dedupe, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
