"""nbval over the chapters: which chapters ``make test`` re-executes.

Every chapter is executed by ``make book`` and committed with its outputs. ``make test`` re-executes them all under
nbval from a cold cache, except the chapters named in ``EXPENSIVE``, whose cold run would push CI past its budget
(90 minutes on 2 cores); they are reported as skipped with the reason. ``make test-all`` (``FSRLIB_TEST_ALL=1``)
re-executes them too. The static checks of ``tests/test_book.py`` cover every chapter either way.

In a cell tagged ``nbval-check-output`` nbval compares what the cell prints, and nothing else: the values a cell
hands to the prose with ``myst_nb.glue`` (``application/papermill.record/*`` outputs) are full-precision numbers
that differ from machine to machine, so they are left out of the comparison like images are; the printed tolerance
checks are what must hold everywhere.
"""
from __future__ import annotations

import os

import pytest

#: chapter file -> why its re-execution is left to ``make book`` / ``make test-all``
EXPENSIVE = {
    "isr.ipynb": "its worked solutions train seven more ISR networks (SRCNN and VDSR on anti-aliased images, VDSR "
                 "for 1,500 steps, an x8 SRCNN, an augmented SRCNN) and run VDSR over every query twice, about 35 "
                 "CPU-minutes from a cold cache",
    "ablation.ipynb": "twelve generators (4 losses x 3 seeds, 7 ratios) and eleven more in its worked solutions "
                      "(two more seeds, the residual variant), about 25 CPU-minutes from a cold cache",
}


#: output types ``myst_nb.glue`` records (one per MIME type of the glued value)
GLUE_RECORDS = tuple(f"application/papermill.record/{mime}" for mime in
                     ("text/plain", "text/html", "text/markdown", "text/latex", "image/png", "image/jpeg",
                      "image/svg+xml", "application/json"))


def pytest_collection_modifyitems(config, items):
    for notebook in {item.parent for item in items if item.path.suffix == ".ipynb"}:
        skip = getattr(notebook, "skip_compare", None)
        if skip is not None:
            notebook.skip_compare = tuple(skip) + GLUE_RECORDS
    if os.environ.get("FSRLIB_TEST_ALL"):
        # `make test-all` runs the expensive chapters too, by hand and on any machine: a long training cell on a
        # slow one must make a slow run, not a failed one, so chapter cells drop the suite's 1,800 s hang guard
        for item in items:
            if item.path.suffix == ".ipynb":
                item.add_marker(pytest.mark.timeout(0))
        return
    for item in items:
        reason = EXPENSIVE.get(item.path.name)
        if reason is not None and item.path.suffix == ".ipynb":
            item.add_marker(pytest.mark.skip(reason=f"not re-executed by `make test` ({reason}); `make test-all` "
                                                    "does, `make book` executes it"))
