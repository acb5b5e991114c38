"""Each benchmark's scoring (RetrievalDataset.scoring), checked against hand-worked rankings and against reference
implementations written here from the benchmarks' own definitions (comments say which)."""
import numpy as np
import pytest

from fsrlib.data.ground_truth import revisited_ground_truth
from fsrlib.evaluation.retrieval import compute_map, compute_map_revisited, rank_database


def holidays_reference_map(results: dict[str, list[str]], groups: dict[str, set[str]]) -> float:
    """INRIA's holidays_map.py definition: the query's own name is skipped in its result list (later ranks
    shift up by one), the j-th true positive at rank r adds the trapezoid (j/r + (j+1)/(r+1))/2 * 1/n_pos
    (j/r read as 1 at r = 0), n_pos = the group's other images."""
    aps = []
    for query, returned in results.items():
        positives = groups[query] - {query}
        tp_ranks, shift = [], 0
        for rank, name in enumerate(returned):
            if name == query:
                shift = -1
            elif name in positives:
                tp_ranks.append(rank + shift)
        ap = 0.0
        for j, r in enumerate(tp_ranks):
            before = 1.0 if r == 0 else j / r
            ap += (before + (j + 1) / (r + 1)) / 2 / len(positives)
        aps.append(ap)
    return float(np.mean(aps))


def revisitop_reference_ap(ranking: list[int], ok: set[int], junk: set[int]) -> float:
    """revisitop compute_map's per-query computation: positions of positives and junk in the ranking, each
    positive's position lowered by the number of junk images ranked before it, then trapezoidal AP."""
    pos = [i for i, x in enumerate(ranking) if x in ok]
    junk_pos = [i for i, x in enumerate(ranking) if x in junk]
    shifted = [p - sum(1 for j in junk_pos if j < p) for p in pos]
    ap = 0.0
    for j, r in enumerate(shifted):
        before = 1.0 if r == 0 else j / r
        ap += (before + (j + 1) / (r + 1)) / 2 / len(ok)
    return ap


def test_revisited_settings_from_easy_hard_junk():
    gnd = [{"easy": [0, 1], "hard": [2], "junk": [3]}]
    assert revisited_ground_truth(gnd, "easy") == [{"ok": [0, 1], "junk": [2, 3]}]
    assert revisited_ground_truth(gnd, "medium") == [{"ok": [0, 1, 2], "junk": [3]}]
    assert revisited_ground_truth(gnd, "hard") == [{"ok": [2], "junk": [0, 1, 3]}]
    with pytest.raises(KeyError, match="unknown revisited setting"):
        revisited_ground_truth(gnd, "extreme")


def test_revisited_hand_worked():
    # database 0..5; query 0: easy {0}, hard {3}, junk {1}; ranking 1 0 2 3 4 5
    ranks = np.array([[1, 0, 2, 3, 4, 5]]).T
    gnd = [{"easy": [0], "hard": [3], "junk": [1]}]
    res = compute_map_revisited(ranks, gnd, kappas=(1,))
    # Easy: junk {1, 3} removed -> 0 at rank 0: AP 1
    assert res["easy"]["mAP"] == pytest.approx(1.0)
    # Medium: junk {1} removed -> 0 2 3 4 5: positives at 0 and 2: (1+1)/2/2 + (1/2 + 2/3)/2/2
    assert res["medium"]["mAP"] == pytest.approx(0.5 + (0.5 + 2 / 3) / 4)
    # Hard: junk {0, 1} removed -> 2 3 4 5: positive 3 at rank 1: (0/1 + 1/2)/2 = 0.25
    assert res["hard"]["mAP"] == pytest.approx(0.25)
    assert res["hard"]["mP@1"] == pytest.approx(0.0)


def test_revisited_query_without_hard_positives_is_excluded_from_hard_only():
    ranks = np.array([[0, 1, 2], [0, 2, 1]]).T
    gnd = [{"easy": [0], "hard": [], "junk": []}, {"easy": [1], "hard": [2], "junk": []}]
    res = compute_map_revisited(ranks, gnd, kappas=(1,))
    # Hard: query 0 has no hard positive and is left out (counting it as 0 would give 0.125); query 1 after
    # removing its easy image 1: [0, 2], positive at rank 1 -> (0/1 + 1/2)/2 = 0.25
    assert res["hard"]["mAP"] == pytest.approx(0.25)
    # Easy: query 0 perfect; query 1 after removing hard image 2: [0, 1] -> 0.25
    assert res["easy"]["mAP"] == pytest.approx((1.0 + 0.25) / 2)


def test_revisited_agrees_with_reference_on_random_rankings():
    rng = np.random.default_rng(1)
    for _ in range(100):
        n = int(rng.integers(6, 50))
        ids = rng.permutation(n)
        n_easy, n_hard, n_junk = (int(v) for v in rng.integers(0, n // 4 + 1, size=3))
        g = {"easy": list(ids[:n_easy]), "hard": list(ids[n_easy:n_easy + n_hard]),
             "junk": list(ids[n_easy + n_hard:n_easy + n_hard + n_junk])}
        ranking = rng.permutation(n)
        for setting in ("easy", "medium", "hard"):
            (truth,) = revisited_ground_truth([g], setting)
            if not truth["ok"]:
                continue
            ours = compute_map(ranking[:, None], [truth])[0]
            ref = revisitop_reference_ap(list(ranking), set(truth["ok"]), set(truth["junk"]))
            assert abs(ours - ref) < 1e-6


def test_holidays_protocol_matches_inria_definition():
    rng = np.random.default_rng(2)
    # 6 groups of 2-5 images, named like Holidays: the query is the image numbered group*100
    names, groups = [], {}
    for grp in range(6):
        members = [f"{1000 + grp}{k:02d}" for k in range(int(rng.integers(2, 6)))]
        names += members
        for m in members:
            groups[m] = set(members)
    queries = [n for n in names if n.endswith("00")]
    feats = rng.normal(size=(len(names), 8))
    qfeats = feats[[names.index(q) for q in queries]] + 0.8 * rng.normal(size=(len(queries), 8))
    ranks = rank_database(qfeats, feats)
    # our form: the database holds every image, the query itself is junk
    gnd = [{"ok": [names.index(m) for m in groups[q] if m != q], "junk": [names.index(q)]} for q in queries]
    ours = compute_map(ranks, gnd)[0]
    results = {q: [names[i] for i in ranks[:, k]] for k, q in enumerate(queries)}
    assert abs(ours - holidays_reference_map(results, groups)) < 1e-6
    # the query ranked first and not excluded would inflate the score
    naive = compute_map(ranks, [{"ok": g["ok"] + g["junk"]} for g in gnd])[0]
    assert naive != pytest.approx(ours)


def test_ties_are_broken_by_database_index():
    db = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    ranks = rank_database(np.array([[1.0, 0.0]]), db)
    assert ranks[:, 0].tolist() == [0, 1, 2]
    # identical scores: the positive listed second gets rank 1, so AP = (0/1 + 1/2)/2 = 0.25, not 1
    assert compute_map(ranks, [{"ok": [1]}])[0] == pytest.approx(0.25)
