"""The cache plumbing every cache shares (fsrlib.paths)."""
from __future__ import annotations

from pathlib import Path

import pytest

from fsrlib.paths import atomic_path, cache_dir_or_default, canonical_json, json_digest


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


def test_cache_names_do_not_change_with_the_code_that_makes_them():
    # every cache entry (features, students, generators, ISR networks) is named by json_digest of its key: a
    # refactor that respelled the key's JSON would orphan every reader's cache, so the names are pinned here
    import numpy as np

    from fsrlib.features.cache import key_digest
    from fsrlib.methods import student, train

    key = {"kind": "features", "n_images": 3, "ratio": 0.25, "backbone": "efficientnet_lite0"}
    assert key_digest(key) == "954cd571d27b7ed0a639"
    assert student.student_digest(key) == "954cd571d27b7ed0a6394430"
    assert json_digest(key, None).startswith("954cd571d27b7ed0a6394430") and len(json_digest(key, None)) == 64
    features = {0.25: np.arange(6, dtype=np.float32).reshape(2, 3)}
    assert train.training_key(features, train.TrainConfig()) == "942791eed89ff280913a"
    # the key order never matters; a value JSON cannot write is spelled as its str, not refused
    assert json_digest({"b": 1, "a": 2}) == json_digest({"a": 2, "b": 1})
    assert canonical_json({"p": Path("x")}) == '{"p": "x"}'
