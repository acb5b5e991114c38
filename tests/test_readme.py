"""The README's "Extending fsrlib" example runs as written: a method, a dataset and a backbone, one registration
each, and the experiment picks the method up."""
from __future__ import annotations

import re
from pathlib import Path

from fsrlib.data import datasets
from fsrlib.features import backbones
from fsrlib.methods import registry

README = Path(__file__).resolve().parents[1] / "README.md"


def test_extending_example_registers_and_runs():
    section = README.read_text().split("## Extending fsrlib", 1)[1].split("\n## ", 1)[0]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    namespace: dict = {}
    try:
        exec(compile(code, str(README), "exec"), namespace)
        table = namespace["table"]
        maps = table[(table["metric"] == "mAP")].set_index("method")["value"]
        assert {"raw", "shrink"} <= set(maps.index) and maps["shrink"] > 0
        assert registry.get_method("shrink").trained and registry.get_method("shrink").input == "features"
        assert "lite0_copy" in backbones.BACKBONES and "holidays_again" in datasets.LOADERS
    finally:  # the registrations are undone for the other tests
        for table, key in ((registry.METHODS, "shrink"), (datasets.LOADERS, "holidays_again"),
                           (backbones.BACKBONES, "lite0_copy")):
            table.pop(key, None)


def test_search_fast_path_example_runs_and_finds_the_neighbours():
    import numpy as np

    section = README.read_text().split("## Speed and scale", 1)[1].split("\n## ", 1)[0]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    rng = np.random.default_rng(0)
    database = rng.normal(size=(5000, 320)).astype(np.float32)
    namespace: dict = {"database": database, "queries": database[:10] + 0.01}
    exec(compile(code, str(README), "exec"), namespace)
    assert namespace["ids"].shape == (10, 100)
    assert (namespace["ids"][:, 0] == np.arange(10)).all()  # each query's own row comes first


def test_every_test_the_reliability_section_names_exists():
    section = README.read_text().split("## Reliability: what is guaranteed", 1)[1].split("\n## ", 1)[0]
    named, current = [], None
    for path, name in re.findall(r"`(tests/[\w/]+\.py)?(?:::(\w+))?`", section):
        current = path or current
        if name:
            named.append((current, name))
    assert len(named) >= 15
    repo = README.parent
    missing = [f"{path}::{name}" for path, name in named
               if not re.search(rf"^def {name}\(", (repo / path).read_text(), re.M)]
    assert not missing, f"README's reliability section names tests that do not exist: {missing}"
