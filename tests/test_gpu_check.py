"""benchmarks/gpu_check.sh, issue 14's prepared GPU measurement: what it says when called wrongly or unpacked.

The measurement itself needs a GPU machine; its CPU dry run (DEVICE=cpu IMAGES=6 REPEAT=1 BATCH=8) takes minutes
and is recorded in benchmarks/RESULTS.md rather than repeated here.
"""
import subprocess
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.sh"


def call(*args, env=None):
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, env=env, timeout=60)


def test_usage_without_a_verb():
    result = call()
    assert result.returncode == 2 and "usage: bash benchmarks/gpu_check.sh pack|run" in result.stdout


def test_run_without_the_kit_says_how_to_pack_it(tmp_path):
    import os

    env = {**os.environ, "KIT": str(tmp_path / "absent"), "OUT": str(tmp_path / "out")}
    result = call("run", env=env)
    assert result.returncode == 1
    assert "gpu_check.sh pack" in result.stdout and "carry" in result.stdout


def test_pack_without_the_shared_data_refuses(tmp_path):
    import os

    env = {**os.environ, "KIT": str(tmp_path / "kit"), "SHARED_DATA": str(tmp_path / "nothing")}
    result = call("pack", env=env)
    assert result.returncode == 1 and "no Paris subset" in result.stdout
    assert not (tmp_path / "kit").exists()  # nothing half-made


def test_the_script_parses():
    assert subprocess.run(["bash", "-n", str(SCRIPT)]).returncode == 0


def test_pack_never_replaces_a_folder_it_did_not_make(tmp_path):
    import os

    mine = tmp_path / "notes"
    mine.mkdir()
    (mine / "keep.txt").write_text("mine")
    env = {**os.environ, "KIT": str(mine)}
    result = call("pack", env=env)
    if "no Paris subset" in result.stdout:  # checked first when ../shared/data is absent: still nothing removed
        assert result.returncode == 1
    else:
        assert result.returncode == 1 and "not replacing it" in result.stdout
    assert (mine / "keep.txt").read_text() == "mine"
