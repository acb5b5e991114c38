"""Shared fixtures: a throw-away cache, a tiny on-disk dataset, and the shared Paris subset."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fsrlib.data.datasets import SHOWN_NOTES, RetrievalDataset

PARIS_SUBSET = Path(__file__).resolve().parents[2] / "shared" / "data" / "paris6k-subset"


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path_factory, monkeypatch):
    """Every test gets its own cache and data folders, so no test reads another's results."""
    monkeypatch.setenv("FSRLIB_CACHE", str(tmp_path_factory.mktemp("cache")))
    monkeypatch.setenv("FSRLIB_DATA", str(tmp_path_factory.mktemp("data")))
    SHOWN_NOTES.clear()  # every test sees the data notes its loads raise (a process shows each one once)


@pytest.fixture(scope="session")
def mini_dataset(tmp_path_factory):
    from fsrlib.data.datasets import load_dataset

    return load_dataset("mini", tmp_path_factory.mktemp("mini") / "mini")


@pytest.fixture
def tiny_dataset(tmp_path) -> RetrievalDataset:
    """Five small real-photo crops on disk: 2 queries, 3 database images, 5 training images."""
    import skimage.data

    photo = skimage.data.astronaut()
    names = []
    for i in range(5):
        rel = f"img{i}.png"
        Image.fromarray(np.ascontiguousarray(photo[i * 60:i * 60 + 200, i * 50:i * 50 + 260])).save(tmp_path / rel)
        names.append(rel)
    return RetrievalDataset(name="tiny", root=tmp_path, images=tuple(names[:3]), queries=tuple(names[3:]),
                            gnd=({"ok": [0], "junk": []}, {"ok": [1, 2], "junk": [0]}), train=tuple(names))


@pytest.fixture
def paris_root() -> Path:
    if not (PARIS_SUBSET / "paris_120310").is_dir():
        pytest.skip(f"Paris6k subset not found at {PARIS_SUBSET} (shared data is not beside this checkout)")
    return PARIS_SUBSET
