"""The cache plumbing every cache shares (fsrlib.paths)."""
from __future__ import annotations

import pytest

from fsrlib.paths import atomic_path, cache_dir_or_default


def test_cache_dir_or_default(tmp_path, monkeypatch):
    monkeypatch.setenv("FSRLIB_CACHE", str(tmp_path / "env"))
    assert cache_dir_or_default(None, "isr", "a.pt") == tmp_path / "env" / "isr" / "a.pt"
    assert cache_dir_or_default(tmp_path / "mine", "models") == tmp_path / "mine" / "models"


def test_atomic_path_renames_on_success(tmp_path):
    target = tmp_path / "sub" / "entry.npz"
    with atomic_path(target) as tmp:
        assert tmp.parent == target.parent and tmp != target
        tmp.write_bytes(b"new")
        assert not target.exists()  # a reader never sees a half-written file
    assert target.read_bytes() == b"new"
    assert list(target.parent.iterdir()) == [target]


def test_atomic_path_keeps_the_old_file_and_no_debris_when_interrupted(tmp_path):
    target = tmp_path / "entry.npz"
    target.write_bytes(b"old")
    with pytest.raises(KeyboardInterrupt):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"half")
            raise KeyboardInterrupt
    assert target.read_bytes() == b"old"
    assert list(tmp_path.iterdir()) == [target]
