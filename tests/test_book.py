"""The book: a chapter runs under papermill with non-default parameters; the built site has every page."""
from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest
from book_toc import toc_pages

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"
#: the cache the chapters use (read before the per-test isolated cache is set): the papermill test shares it
CHAPTER_CACHE = os.environ.get("FSRLIB_CACHE")


def test_every_toc_entry_exists_and_chapters_are_well_formed():
    for entry in toc_pages():
        path = ROOT / entry
        assert path.with_suffix(".ipynb").is_file() or path.with_suffix(".md").is_file(), entry
    for nb_path in BOOK.glob("*.ipynb"):
        nb = nbformat.read(nb_path, as_version=4)
        tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
        assert len(tagged) == 1, f"{nb_path.name} needs exactly one cell tagged 'parameters'"
        for name in ("dataset", "data_dir", "backbone", "ratios", "device", "seed", "profile"):
            assert f"{name} =" in tagged[0].source, f"{nb_path.name}: parameters cell lacks {name}"
        text = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
        assert "## Summary" in text and "## Exercises" in text, nb_path.name
        assert not any(o.get("output_type") == "error" for c in nb.cells for o in c.get("outputs", []))
        code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
        assert "def " not in code and "class " not in code, f"{nb_path.name} defines library code"


@pytest.mark.slow
def test_first_chapter_runs_under_papermill_with_other_parameters(tmp_path, monkeypatch):
    import papermill

    # The chapters' cache, not this test's isolated one: the Fig. 1 cell's VDSR (seed 0, the chapter's default
    # budget) is then trained once for this test and nbval's run of the chapter (one 5-minute training less in CI).
    if CHAPTER_CACHE:
        monkeypatch.setenv("FSRLIB_CACHE", CHAPTER_CACHE)
    else:
        monkeypatch.delenv("FSRLIB_CACHE", raising=False)

    out = tmp_path / "why_features.ipynb"
    papermill.execute_notebook(
        str(BOOK / "why_features.ipynb"), str(out), cwd=str(BOOK), kernel_name="python3", progress_bar=False,
        # seed 0 and the default profile, so the VDSR is the chapter's own; what changes is the table's methods
        # and ratios and the demo picture's ratio.
        parameters={"ratios": [1 / 16], "methods": ["raw", "ridge"], "demo_ratio": 1 / 4},
    )
    nb = nbformat.read(out, as_version=4)
    injected = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert injected and "ridge" in injected[0].source and "demo_ratio = 0.25" in injected[0].source
    table = next(c for c in nb.cells if c.cell_type == "code" and "summary.round(3)" in c.source)
    html = table.outputs[-1]["data"]["text/html"]
    assert "ridge" in html and "1/16" in html and "fsrgan" not in html and "1/64" not in html


def test_repository_address_has_one_home():
    """Install cells, README and references name the address of _config.yml (scripts/set_repository.py syncs)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("set_repository", ROOT / "scripts" / "set_repository.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    url = module.repository_url()
    seen = {}
    for path in module.files():
        seen[path.name] = module.our_addresses(path.read_text())
    assert all(found <= {url} for found in seen.values()), {k: v for k, v in seen.items() if not v <= {url}}
    install = [name for name, found in seen.items() if name.endswith(".ipynb") and found == {url}]
    assert len(install) == len(list(BOOK.glob("*.ipynb"))), "a chapter's install cell does not name the repository"
    assert module.our_addresses("pip install git+https://github.com/a/b\n") == {"https://github.com/a/b"}
    assert module.our_addresses("FSRLIB = 'x @ git+https://github.com/a/b@v0.1.0'") == {"https://github.com/a/b"}


def test_nbval_leaves_every_glued_value_in_the_chapters_out_of_its_comparison():
    """The chapters' checked cells hand full-precision numbers to the prose with ``glue``; ``book/conftest.py`` must
    list every MIME type those records use, under myst-nb's own prefix, or nbval compares machine-dependent digits."""
    import importlib.util

    from myst_nb.ext.glue import GLUE_PREFIX

    spec = importlib.util.spec_from_file_location("book_conftest", BOOK / "conftest.py")
    book_conftest = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(book_conftest)
    assert all(key.startswith(GLUE_PREFIX) for key in book_conftest.GLUE_RECORDS)
    used = {key for nb_path in BOOK.glob("*.ipynb") for cell in nbformat.read(nb_path, as_version=4).cells
            for out in cell.get("outputs", []) for key in out.get("data", {}) if key.startswith(GLUE_PREFIX)}
    assert used, "no glued values found: the chapters are expected to glue their numbers"
    assert used <= set(book_conftest.GLUE_RECORDS), sorted(used - set(book_conftest.GLUE_RECORDS))
