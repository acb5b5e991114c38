"""Issue 25: the student handout strips every worked solution (executed cells and markdown dropdowns), keeps the
exercises and hints, and never touches the committed chapters."""
from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def text(path: Path) -> str:
    return "\n".join("".join(c["source"]) for c in json.loads(path.read_text())["cells"])


def test_handout_has_exercises_and_hints_but_no_solution(tmp_path):
    book = sorted((ROOT / "book").glob("*.ipynb"))
    before = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in book}
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "student_handout.py"), "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in book} == before
    stripped = 0
    for chapter in book:
        copy = tmp_path / chapter.name
        original, handout = text(chapter), text(copy)
        solutions = len(re.findall(r"\{dropdown\} Solution", original))
        tagged = sum("solution" in c["metadata"].get("tags", []) for c in json.loads(chapter.read_text())["cells"])
        stripped += solutions + tagged
        assert "{dropdown} Solution" not in handout, chapter.name
        assert not any("solution" in c["metadata"].get("tags", []) for c in json.loads(copy.read_text())["cells"])
        assert handout.count("{dropdown} Hints") == original.count("{dropdown} Hints"), chapter.name
        assert handout.count("## Exercises") == original.count("## Exercises"), chapter.name
    assert stripped > 30  # every chapter has exercises with worked solutions
    refused = subprocess.run([sys.executable, str(ROOT / "scripts" / "student_handout.py"), "--out",
                              str(ROOT / "book")], capture_output=True, text=True, timeout=120)
    assert refused.returncode == 2 and "would overwrite" in refused.stderr


def test_every_worked_solution_with_code_is_an_executed_cell():
    """Issue 25: no solution is a code fence that nothing runs. A solution's code is a cell tagged ``solution`` that
    the build executed (it has an execution count); a markdown solution holds prose only."""
    fence = re.compile(r":::\{dropdown\} Solution.*?^:::", re.S | re.M)
    executed = 0
    for chapter in sorted((ROOT / "book").glob("*.ipynb")):
        for cell in json.loads(chapter.read_text())["cells"]:
            source = "".join(cell["source"])
            if cell["cell_type"] == "markdown":
                for block in fence.findall(source):
                    assert "```" not in block, f"{chapter.name}: a solution's code is a fence, not a cell"
            elif "solution" in cell["metadata"].get("tags", []):
                assert cell["execution_count"] is not None, f"{chapter.name}: a solution cell was never executed"
                assert "hide-cell" in cell["metadata"]["tags"], f"{chapter.name}: a solution cell is shown"
                executed += 1
    assert executed >= 40
