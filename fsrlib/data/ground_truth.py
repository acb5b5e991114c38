"""Ground truth in the revisited Oxford/Paris form: a query's ``easy``, ``hard`` and ``junk`` lists read as the
``{"ok", "junk"}`` lists of one setting. Pure Python: the loaders (:mod:`fsrlib.data.datasets.revisited`) and the
scoring (:func:`fsrlib.evaluation.retrieval.compute_map_revisited`) both read it."""
from __future__ import annotations

from collections.abc import Mapping, Sequence

#: The revisited Oxford/Paris settings (Radenović et al. 2018) as (positives, extra junk) built from a
#: query's ``easy`` / ``hard`` lists: Easy ignores the hard images, Hard ignores the easy ones.
REVISITED_SETTINGS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "easy": (("easy",), ("junk", "hard")),
    "medium": (("easy", "hard"), ("junk",)),
    "hard": (("hard",), ("junk", "easy")),
}


def revisited_ground_truth(gnd: Sequence[Mapping[str, Sequence[int]]], setting: str) -> list[dict[str, list[int]]]:
    """``{"ok", "junk"}`` per query for a revisited ``setting`` from ``{"easy", "hard", "junk"}`` lists."""
    try:
        positive_keys, junk_keys = REVISITED_SETTINGS[setting]
    except KeyError:
        raise KeyError(f"unknown revisited setting {setting!r}; choose one of {list(REVISITED_SETTINGS)}") from None
    return [{"ok": sorted({i for k in positive_keys for i in g.get(k, [])}),
             "junk": sorted({i for k in junk_keys for i in g.get(k, [])})} for g in gnd]
