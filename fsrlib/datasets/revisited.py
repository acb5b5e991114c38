"""Revisited Oxford and Paris (Radenović et al. 2018): new ground truth over the same images.

``gnd_roxford5k.pkl`` / ``gnd_rparis6k.pkl`` (revisitop) hold ``imlist`` (database
image names), ``qimlist`` (70 query names, not in the database) and per query
``bbx`` (x1, y1, x2, y2) and ``easy`` / ``hard`` / ``junk`` index lists. Each
query's ground truth keeps those lists and adds ``ok``/``junk`` for the Medium
setting, so the generic evaluation reports Medium; ``compute_map_revisited``
gives all three settings.

The ``.pkl`` is unpickled: load only the file the fetch script verified.
"""
from __future__ import annotations

import pickle
import warnings
from pathlib import Path

from ..retrieval import revisited_ground_truth
from .base import RetrievalDataset
from .base import DatasetNotFoundError
from .oxford_paris import LAYOUTS, images_on_disk

REVISITED = {"roxford5k": "oxford5k", "rparis6k": "paris6k"}


def load_revisited(name: str, root: str | Path) -> RetrievalDataset:
    """Load ``"roxford5k"`` or ``"rparis6k"`` from the original benchmark's folder plus ``gnd_<name>.pkl``."""
    root = Path(root)
    base = LAYOUTS[REVISITED[name]]
    gnd_file, image_dir = root / f"gnd_{name}.pkl", root / base["images"]
    if not gnd_file.is_file() or not image_dir.is_dir():
        raise DatasetNotFoundError(
            f"{name} needs {gnd_file.name} and the {REVISITED[name]} images ({base['images']}/) under {root}. Run "
            f"`python data_scripts/fetch.py {name} --data-dir {root.parent}`.")
    with gnd_file.open("rb") as fh:
        cfg = pickle.load(fh)
    missing_keys = {"imlist", "qimlist", "gnd"} - set(cfg)
    if missing_keys:
        raise ValueError(f"{gnd_file} is not a revisitop ground-truth file (missing {sorted(missing_keys)})")
    on_disk = images_on_disk(root, image_dir)
    kept = [n for n in cfg["imlist"] if n in on_disk]
    new_index = {n: i for i, n in enumerate(kept)}
    remap = {old: new_index[n] for old, n in enumerate(cfg["imlist"]) if n in new_index}
    queries, gnd = [], []
    for qname, g in zip(cfg["qimlist"], cfg["gnd"]):
        if qname not in on_disk:
            continue
        entry = {k: sorted(remap[i] for i in g.get(k, []) if i in remap) for k in ("easy", "hard", "junk")}
        entry.update(revisited_ground_truth([entry], "medium")[0])
        entry.update(bbx=tuple(float(v) for v in g["bbx"]) if g.get("bbx") is not None else None, id=qname)
        queries.append(on_disk[qname])
        gnd.append(entry)
    notes = []
    if len(kept) < len(cfg["imlist"]) or len(queries) < len(cfg["qimlist"]):
        notes.append(f"{name} is partly present: {len(kept)} of {len(cfg['imlist'])} database images, "
                     f"{len(queries)} of {len(cfg['qimlist'])} queries; ground truth restricted to the images found.")
        warnings.warn(notes[-1], stacklevel=4)  # the caller of load_dataset
    if not queries:
        raise DatasetNotFoundError(f"no query image of {name} is present under {image_dir}")
    images = tuple(on_disk[n] for n in kept)
    query_set = set(queries)
    return RetrievalDataset(name=name, root=root, images=images, queries=tuple(queries), gnd=tuple(gnd),
                            train=tuple(p for p in images if p not in query_set), notes=tuple(notes),
                            protocol="revisited")
