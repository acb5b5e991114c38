"""The README's "Extending fsrlib" example runs as written: a method, a dataset and a backbone, one registration
each, and the experiment picks the method up."""
from __future__ import annotations

import re
from pathlib import Path

from fsrlib import backbones, datasets, methods

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
        assert "lite0_copy" in backbones.BACKBONES and "holidays_again" in datasets.LOADERS
    finally:  # the registrations are undone for the other tests
        for table, key in ((methods.METHODS, "shrink"), (datasets.LOADERS, "holidays_again"),
                           (backbones.BACKBONES, "lite0_copy")):
            table.pop(key, None)
