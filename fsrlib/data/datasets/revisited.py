"""Revisited Oxford and Paris (Radenović et al. 2018): new ground truth over the same images.

``gnd_roxford5k.pkl`` / ``gnd_rparis6k.pkl`` (revisitop) hold ``imlist`` (database
image names), ``qimlist`` (70 query names, not in the database) and per query
``bbx`` (x1, y1, x2, y2) and ``easy`` / ``hard`` / ``junk`` index lists. Each
query's ground truth keeps those lists and adds ``ok``/``junk`` for the Medium
setting, so the generic evaluation reports Medium; ``compute_map_revisited``
gives all three settings.

The ``.pkl`` is unpickled: load only the file the fetch script verified. One
that cannot be unpickled (truncated, or another file under its name) or whose
content is not that form (missing keys, an index outside ``imlist``, a name
listed twice, a malformed box) is an error naming it and the command that
fetches a good copy; nothing of it is silently skipped.
"""
from __future__ import annotations

import math
import pickle
import warnings
from pathlib import Path
from typing import Any

from fsrlib.data.datasets.base import DatasetNotFoundError, RetrievalDataset
from fsrlib.data.datasets.oxford_paris import LAYOUTS, check_query_boxes, image_name, images_on_disk
from fsrlib.data.ground_truth import revisited_ground_truth

REVISITED = {"roxford5k": "oxford5k", "rparis6k": "paris6k"}
_QUERY_KEYS = ("easy", "hard", "junk")


class DamagedGroundTruthError(ValueError):
    """A revisitop ground-truth file cannot be read or does not hold what revisitop writes."""


def read_revisited_pickle(path: Path, name: str) -> dict[str, Any]:
    """The ``{"imlist", "qimlist", "gnd"}`` dict of ``gnd_<name>.pkl`` at ``path``, checked (see module docstring).

    Raises :class:`DamagedGroundTruthError` naming ``path``, what is wrong and how to fetch a good copy.
    """
    advice = (f"Delete it and run `fsrlib fetch {name} --data-dir {path.parent.parent}` to download "
              f"a good copy (if fsrlib-manifest.json beside it recorded this copy, delete its entry there too).")
    try:
        with path.open("rb") as fh:
            cfg = pickle.load(fh)
    except Exception as err:  # unpickling garbage can raise almost anything
        raise DamagedGroundTruthError(f"{path} cannot be read as revisitop ground truth ({type(err).__name__}: "
                                      f"{err}): it is truncated or not the right file. {advice}") from err
    problem = ground_truth_problem(cfg)
    if problem is not None:
        raise DamagedGroundTruthError(f"{path} is not a valid revisitop ground-truth file: {problem}. {advice}")
    return cfg


def ground_truth_problem(cfg: Any) -> str | None:
    """What is wrong with an unpickled revisitop ground truth, or ``None`` if it has the documented form."""
    if not isinstance(cfg, dict):
        return f"it holds a {type(cfg).__name__}, not a dict"
    missing = sorted({"imlist", "qimlist", "gnd"} - set(cfg))
    if missing:
        return f"it lacks {missing}"
    for key in ("imlist", "qimlist"):
        names = cfg[key]
        if not isinstance(names, (list, tuple)) or not all(isinstance(n, str) for n in names):
            return f"{key} is not a list of image names"
        if len({image_name(n) for n in names}) < len(names):
            return f"{key} names an image more than once"
    if not isinstance(cfg["gnd"], (list, tuple)) or len(cfg["gnd"]) != len(cfg["qimlist"]):
        return f"gnd is not a list of one entry per query ({len(cfg['qimlist'])} queries)"
    for query, g in zip(cfg["qimlist"], cfg["gnd"]):
        problem = query_problem(g, len(cfg["imlist"]))
        if problem is not None:
            return f"the entry of query {query} {problem}"
    return None


def query_problem(g: Any, n_images: int) -> str | None:
    """What is wrong with one query's ``{"bbx", "easy", "hard", "junk"}`` entry over ``n_images`` images."""
    if not isinstance(g, dict) or any(k not in g for k in _QUERY_KEYS):
        return f"is not a dict with keys {list(_QUERY_KEYS)}"
    for key in _QUERY_KEYS:
        if isinstance(g[key], (str, bytes)):
            return f"has {key} that is not a list of indices"
        try:
            indices = [int(i) for i in g[key]]
            whole = all(int(i) == i for i in g[key])
        except (TypeError, ValueError):
            return f"has {key} that is not a list of indices"
        if not whole or any(not 0 <= i < n_images for i in indices):
            return f"has {key} indices outside imlist's 0..{n_images - 1}"
    bbx = g.get("bbx")
    if bbx is not None:
        try:
            box_ok = len(bbx) == 4 and all(math.isfinite(float(v)) for v in bbx)
        except (TypeError, ValueError):
            box_ok = False
        if not box_ok:
            return f"has a bbx {bbx!r} that is not four numbers x1 y1 x2 y2"
    return None


def load_revisited(name: str, root: str | Path) -> RetrievalDataset:
    """Load ``"roxford5k"`` or ``"rparis6k"`` from the original benchmark's folder plus ``gnd_<name>.pkl``."""
    root = Path(root)
    base = LAYOUTS[REVISITED[name]]
    gnd_file, image_dir = root / f"gnd_{name}.pkl", root / base["images"]
    if not gnd_file.is_file() or not image_dir.is_dir():
        raise DatasetNotFoundError(
            f"{name} needs {gnd_file.name} and the {REVISITED[name]} images ({base['images']}/) under {root}. Run "
            f"`fsrlib fetch {name} --data-dir {root.parent}`.")
    cfg = read_revisited_pickle(gnd_file, name)
    on_disk = images_on_disk(root, image_dir)
    imlist = [image_name(n) for n in cfg["imlist"]]
    kept = [n for n in imlist if n in on_disk]
    new_index = {n: i for i, n in enumerate(kept)}
    remap = {old: new_index[n] for old, n in enumerate(imlist) if n in new_index}
    queries, gnd = [], []
    for qname, g in zip((image_name(n) for n in cfg["qimlist"]), cfg["gnd"]):
        if qname not in on_disk:
            continue
        entry = {k: sorted({remap[int(i)] for i in g[k] if int(i) in remap}) for k in _QUERY_KEYS}
        entry.update(revisited_ground_truth([entry], "medium")[0])
        entry.update(bbx=tuple(float(v) for v in g["bbx"]) if g.get("bbx") is not None else None, id=qname)
        queries.append(on_disk[qname])
        gnd.append(entry)
    notes = []
    if len(kept) < len(imlist) or len(queries) < len(cfg["qimlist"]):
        notes.append(f"{name} is partly present: {len(kept)} of {len(imlist)} database images, "
                     f"{len(queries)} of {len(cfg['qimlist'])} queries; ground truth restricted to the images found.")
        warnings.warn(notes[-1], stacklevel=4)  # the caller of load_dataset
    if not queries:
        raise DatasetNotFoundError(f"no query image of {name} is present under {image_dir}")
    check_query_boxes(name, root, queries, gnd)
    images = tuple(on_disk[n] for n in kept)
    query_set = set(queries)
    return RetrievalDataset(name=name, root=root, images=images, queries=tuple(queries), gnd=tuple(gnd),
                            train=tuple(p for p in images if p not in query_set), notes=tuple(notes),
                            scoring="revisited")
