"""Point every place that names the repository at ``repository.url`` of ``_config.yml`` (its one home).

    .venv/bin/python scripts/set_repository.py

Rewrites the chapters' install cells, the README and the references page where they name another
``https://github.com/OWNER/NAME`` address; prints what it changed. ``tests/test_book.py`` checks they agree.
"""
from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
# An address ends at "/", "@" (a pinned release: git+...@v0.1.0), a quote, a bracket, ".git" or the line's end.
ADDRESS = re.compile(r"https://github\.com/[\w.-]+/[\w.-]+?(?=[/@\s\\\"'`)\]]|\.git|$)")


def repository_url() -> str:
    return yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]["url"].rstrip("/")


def files() -> list[Path]:
    return [*sorted((ROOT / "book").glob("*.ipynb")), ROOT / "README.md", ROOT / "book" / "references.md"]


def our_addresses(text: str) -> set[str]:
    """The repository addresses in ``text`` (install lines and links into the repository, not cited works)."""
    found = set()
    for line in text.splitlines():
        if "git+https://github.com/" in line or "/blob/" in line or "/tree/" in line:
            found.update(ADDRESS.findall(line))
    return found


def main() -> None:
    url = repository_url()
    for path in files():
        text = path.read_text()
        stale = our_addresses(text) - {url}
        for old in stale:
            text = text.replace(old, url)
        if stale:
            path.write_text(text)
            print(f"{path.relative_to(ROOT)}: {', '.join(sorted(stale))} -> {url}")


if __name__ == "__main__":
    main()
