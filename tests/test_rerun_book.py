"""Issue 25: one command reruns the chapters with papermill parameters into a folder of its own (make rerun)."""
from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "rerun_book.py"


def rerun(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=1200)


def digests() -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in (ROOT / "book").glob("*.ipynb")}


def test_refuses_a_parameter_no_chapter_declares_and_an_unknown_chapter(tmp_path):
    done = rerun("--out", str(tmp_path / "out"), "-p", "devise", "cuda", "--chapters", "evaluation")
    assert done.returncode == 2 and "no chosen chapter declares devise" in done.stderr
    assert not (tmp_path / "out").exists()  # refused before anything ran
    done = rerun("--out", str(tmp_path / "out"), "--chapters", "evaluations")
    assert done.returncode != 0 and "no chapter named evaluations" in done.stderr
    done = rerun("--out", str(ROOT / "book"), "--chapters", "evaluation")
    assert done.returncode == 2 and "would overwrite the committed chapters" in done.stderr


@pytest.mark.slow
def test_reruns_a_chapter_on_mini_with_parameters_and_leaves_the_committed_ones_alone(tmp_path):
    before = digests()
    done = rerun("--out", str(tmp_path / "runs"), "--chapters", "evaluation", "-p", "seed", "1",
                 "-p", "n_random", "20", "-p", "profile", "cpu")
    assert done.returncode == 0, done.stderr[-3000:]
    assert digests() == before
    copy = json.loads((tmp_path / "runs" / "evaluation.ipynb").read_text())
    injected = [c for c in copy["cells"] if "injected-parameters" in c["metadata"].get("tags", [])]
    assert len(injected) == 1 and "seed = 1" in "".join(injected[0]["source"])
    assert "n_random = 20" in "".join(injected[0]["source"])
    outputs = [o for c in copy["cells"] if c["cell_type"] == "code" for o in c.get("outputs", [])]
    assert outputs and not any(o.get("output_type") == "error" for o in outputs)
