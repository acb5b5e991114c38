import numpy as np
import pytest

from fsrlib.evaluation.retrieval import (
    average_precision,
    check_ranking,
    compute_map,
    compute_map_revisited,
    l2_normalize,
    positive_positions,
    precision_at_k,
    random_ranking_maps,
    rank_database,
)


def oxford_compute_ap(ranked, pos, junk):
    """Literal port of the loop in Oxford's compute_ap.cpp (the reference implementation)."""
    old_recall, old_precision, ap, intersect, j = 0.0, 1.0, 0.0, 0, 0
    for i in ranked:
        if i in junk:
            continue
        if i in pos:
            intersect += 1
        recall = intersect / len(pos)
        precision = intersect / (j + 1.0)
        ap += (recall - old_recall) * ((old_precision + precision) / 2.0)
        old_recall, old_precision = recall, precision
        j += 1
    return ap


def ap_of(ranking, ok, junk=()):
    return average_precision(positive_positions(np.array(ranking), ok, junk), len(ok))


def test_perfect_ranking_is_one():
    assert ap_of([3, 1, 0, 2], ok=[3, 1]) == pytest.approx(1.0)


def test_hand_worked_two_positives():
    # positives at ranks 0 and 2 of 2: (1 + 1)/2 * 1/2 + (1/2 + 2/3)/2 * 1/2 = 0.5 + 0.291666...
    assert ap_of([5, 7, 6, 8], ok=[5, 6]) == pytest.approx(0.5 + (0.5 + 2 / 3) / 4)


def test_junk_at_rank_zero_takes_no_rank():
    # junk 9 first: removing it leaves the perfect ranking [5, 6, 7]
    assert ap_of([9, 5, 6, 7], ok=[5, 6], junk=[9]) == pytest.approx(1.0)
    # the same ranking without junk declared is worse
    assert ap_of([9, 5, 6, 7], ok=[5, 6]) < 1.0


def test_first_positive_last():
    # one positive at rank 3 (0-based): (1/3 ... ) -> (0/3 + 1/4)/2 = 0.125
    assert ap_of([1, 2, 3, 0], ok=[0]) == pytest.approx(0.125)


def test_missing_positive_counts_as_not_found():
    assert ap_of([0, 1], ok=[0, 99]) == pytest.approx(0.5)


def test_agrees_with_oxford_reference_on_random_rankings():
    rng = np.random.default_rng(0)
    for _ in range(200):
        n = int(rng.integers(5, 40))
        ranking = rng.permutation(n)
        ids = rng.permutation(n)
        ok = list(ids[: rng.integers(1, n // 2 + 1)])
        junk = list(ids[len(ok): len(ok) + rng.integers(0, n // 4 + 1)])
        assert ap_of(ranking, ok, junk) == pytest.approx(oxford_compute_ap(ranking, set(ok), set(junk)), abs=1e-12)


def test_precision_at_k_revisitop_definition():
    pos = np.array([0, 2])  # positives at 1-based ranks 1 and 3
    assert precision_at_k(pos, 1) == 1.0
    assert precision_at_k(pos, 3) == pytest.approx(2 / 3)
    assert precision_at_k(pos, 10) == pytest.approx(2 / 3)  # kq capped at the last positive
    with pytest.raises(ValueError):
        precision_at_k(pos, 0)


def test_compute_map_skips_queries_without_positives():
    ranks = np.array([[0, 1, 0], [1, 0, 1], [2, 2, 2]])  # (n_db=3, n_q=3)
    gnd = [{"ok": [0]}, {"ok": [0], "junk": [1]}, {"ok": []}]
    m, aps, _, mpr = compute_map(ranks, gnd, kappas=(1,))
    assert aps[0] == pytest.approx(1.0) and aps[1] == pytest.approx(1.0) and np.isnan(aps[2])
    assert m == pytest.approx(1.0) and mpr[1] == pytest.approx(1.0)


def test_compute_map_errors():
    with pytest.raises(ValueError, match="ranks must be"):
        compute_map(np.zeros((3, 2), dtype=int), [{"ok": [0]}])
    with pytest.raises(ValueError, match="no query"):
        compute_map(np.arange(3)[:, None], [{"ok": []}])


def test_duplicate_index_in_a_ranking_is_refused():
    # [[0], [0], [1]] lists image 0 twice: the trapezoids would add up to AP 1.5 for ok = [0, 1]
    with pytest.raises(ValueError, match=r"queries 0 list a database index more than once"):
        compute_map(np.array([[0], [0], [1]]), [{"ok": [0, 1]}])
    # only the bad column is named, and a truncated ranking is checked the same way
    ranks = np.array([[0, 1, 2], [1, 1, 0], [2, 0, 1]])
    with pytest.raises(ValueError, match=r"queries 1 list"):
        compute_map(ranks, [{"ok": [0]}] * 3)
    with pytest.raises(ValueError, match=r"queries 0 list"):
        compute_map(np.array([[5], [5]]), [{"ok": [5]}], n_db=100)


def test_out_of_range_index_is_refused():
    with pytest.raises(ValueError, match=r"outside the database \[0, 3\).*queries 1"):
        compute_map(np.array([[0, 0], [1, 3], [2, 1]]), [{"ok": [0]}] * 2)
    with pytest.raises(ValueError, match="outside the database"):
        compute_map(np.array([[0], [-1], [2]]), [{"ok": [0]}])
    with pytest.raises(ValueError, match="rows but the database holds 2"):
        compute_map(np.array([[0], [1], [0]]), [{"ok": [0]}], n_db=2)


def test_truncated_ranking_with_n_db():
    # the top 2 of a database of 10: positive 7 first, positive 3 not retrieved -> AP 1/2
    assert compute_map(np.array([[7], [1]]), [{"ok": [7, 3]}], n_db=10)[0] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="pass n_db="):
        compute_map(np.array([[7], [1]]), [{"ok": [7, 3]}])


@pytest.mark.parametrize("ranks", [np.array([[0.0], [1.0]]), np.array([[0.0], [np.nan]]), np.array([[0.5], [1.5]])])
def test_non_integer_ranks_are_refused(ranks):
    with pytest.raises(ValueError, match="integer database indices"):
        compute_map(ranks, [{"ok": [0]}])


def test_ranking_shape_must_match_the_queries():
    with pytest.raises(ValueError, match=r"looks transposed: pass ranks.T"):
        compute_map(np.array([[0, 1, 2]]), [{"ok": [0]}])  # (n_queries, n_db) instead of (n_db, n_queries)
    with pytest.raises(ValueError, match="ranks must be"):
        compute_map(np.arange(3), [{"ok": [0]}])
    with pytest.raises(ValueError, match="ranks must be"):
        compute_map_revisited(np.arange(6).reshape(3, 2), [{"easy": [0], "hard": [], "junk": []}])


def test_check_ranking_on_blocks_of_columns():
    # a small budget forces several column blocks: the bad columns are still the ones named
    rng = np.random.default_rng(3)
    ranks = np.stack([rng.permutation(50) for _ in range(9)], axis=1)
    ranks[10, 4], ranks[20, 7] = ranks[11, 4], ranks[0, 7]
    with pytest.raises(ValueError, match=r"queries 4, 7 list"):
        check_ranking(ranks, 9, budget=100)
    good = np.stack([rng.permutation(50) for _ in range(9)], axis=1)
    np.testing.assert_array_equal(check_ranking(good, 9, budget=100), good)  # a valid ranking passes unchanged


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_rank_database_names_non_finite_queries(bad):
    db = np.eye(3)
    queries = np.ones((4, 3))
    queries[2, 1] = bad
    with pytest.raises(ValueError, match=r"1 query feature row\(s\) hold NaN or inf values \(rows 2\)"):
        rank_database(queries, db)


def test_rank_database_names_non_finite_database_rows():
    db = np.eye(3, dtype=np.float16)
    db[1, 0] = np.nan
    with pytest.raises(ValueError, match=r"database feature row\(s\).*\(rows 1\)"):
        rank_database(np.ones((1, 3)), db)
    # before the check, a NaN query ranked the database in index order and scored AP 1 for ok = [0]
    with pytest.raises(ValueError, match="query"):
        compute_map(rank_database(np.full((1, 3), np.nan), np.eye(3)), [{"ok": [0]}])


def test_rank_database_cosine_and_stable_ties():
    db = np.array([[1.0, 0.0], [0.0, 1.0], [2.0, 0.0], [1.0, 1.0]])
    ranks = rank_database(np.array([[3.0, 0.0]]), db)
    # db 0 and 2 tie at cosine 1 (normalisation removes the scale): stable order keeps 0 before 2
    assert ranks[:, 0].tolist() == [0, 2, 3, 1]


def test_shapes_are_checked():
    with pytest.raises(ValueError, match="dim"):
        rank_database(np.ones((1, 3)), np.ones((4, 2)))
    with pytest.raises(ValueError, match=r"\(N, D\)"):
        l2_normalize(np.ones(3))


def test_retrieval_module_does_not_import_torch():
    import subprocess
    import sys

    code = "import sys, fsrlib.evaluation.retrieval; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


# issue 28: impossible input is refused, with a message that names the query or value


def test_impossible_positions_are_refused():
    # the examples of the issue: AP 1.25 and P@5 = 3.0 before
    with pytest.raises(ValueError, match=r"strictly increasing.*got \[0, 0\]"):
        average_precision(np.array([0, 0]), 2)
    with pytest.raises(ValueError, match="strictly increasing"):
        precision_at_k(np.array([0, 0, 0]), 5)
    with pytest.raises(ValueError, match="3 positions for n_positives=2"):
        average_precision(np.array([0, 1, 2]), 2)
    with pytest.raises(ValueError, match="strictly increasing"):
        average_precision(np.array([-1, 1]), 2)
    with pytest.raises(ValueError, match="strictly increasing"):
        average_precision(np.array([3, 1]), 2)  # unsorted: each position is a rank, listed in order
    with pytest.raises(ValueError, match="integer 0-based ranks"):
        average_precision(np.array([0.0, 1.0]), 2)
    with pytest.raises(ValueError, match="1-d"):
        average_precision(np.array([[0, 1]]), 2)
    with pytest.raises(ValueError, match="n_positives must be an integer"):
        average_precision(np.array([0]), 2.0)
    with pytest.raises(ValueError, match="no positives"):
        average_precision(np.array([], dtype=int), 0)
    with pytest.raises(ValueError, match="k must be an integer"):
        precision_at_k(np.array([0]), 2.5)
    assert average_precision([], 3) == 0.0 and precision_at_k([], 3) == 0.0  # nothing found: 0, not an error


@pytest.mark.parametrize("ok, problem", [([0, 0], "lists indices 0 more than once"),
                                         ([0, 9], r"outside the database \[0, 4\): 9"),
                                         ([0, -1], r"outside the database \[0, 4\): -1"),
                                         ([0.0, 1.0], "integer database indices"),
                                         ("01", "must be a list of database indices"),
                                         (3, "must be a list of database indices"),
                                         ([[0, 1]], "flat list")])
def test_impossible_ground_truth_is_refused(ok, problem):
    # the examples gave mAP 0.5 where the true AP of the ranking [0, 1, 2, 3] is 1
    ranks = np.arange(4)[:, None].repeat(2, axis=1)
    with pytest.raises(ValueError, match=rf"the 'ok' list of query 1 .*{problem}"):
        compute_map(ranks, [{"ok": [0]}, {"ok": ok}])


def test_ground_truth_errors_name_the_query_id_the_key_and_the_fix():
    ranks = np.arange(4)[:, None]
    with pytest.raises(ValueError, match=r"'junk' list of query 0 \('all_souls_1'\) lists indices 2 more than once"):
        compute_map(ranks, [{"ok": [0], "junk": [2, 2], "id": "all_souls_1"}])
    with pytest.raises(ValueError, match="wrap a single query's dict in a list"):
        compute_map(ranks, {"ok": [0]})
    with pytest.raises(ValueError, match="ground truth of query 0 must be a dict"):
        compute_map(ranks, [[0]])
    with pytest.raises(ValueError, match="pass n_db= for a truncated ranking"):
        compute_map(ranks[:2], [{"ok": [3]}])
    assert compute_map(ranks[:2], [{"ok": [3]}], n_db=4)[0] == 0.0  # truncated: 3 not retrieved
    with pytest.raises(ValueError, match="n_db must be an integer"):
        compute_map(ranks, [{"ok": [0]}], n_db=4.5)
    with pytest.raises(ValueError, match="each of kappas must be an integer"):
        compute_map(ranks, [{"ok": [0]}], kappas=(1, 2.5))
    with pytest.raises(ValueError, match="kappas must be a list"):
        compute_map(ranks, [{"ok": [0]}], kappas=5)


def test_an_index_both_ok_and_junk_is_junk_as_in_oxford_compute_ap():
    # accepted (benchmark files decide), junk wins: 1 is removed but still counts among the 2 positives
    ap = compute_map(np.arange(4)[:, None], [{"ok": [0, 1], "junk": [1]}])[0]
    assert ap == pytest.approx(0.5) == pytest.approx(oxford_compute_ap([0, 1, 2, 3], {0, 1}, {1}))


def test_positive_positions_refuses_impossible_rankings_and_lists():
    with pytest.raises(ValueError, match="ranking lists indices 0 more than once"):
        positive_positions(np.array([0, 0, 1]), [0], [])
    with pytest.raises(ValueError, match="ranking holds negative indices"):
        positive_positions(np.array([-1, 0]), [0], [])
    with pytest.raises(ValueError, match="1-d array of integer"):
        positive_positions(np.array([[0, 1]]), [0], [])
    with pytest.raises(ValueError, match="the 'ok' list lists indices 1 more than once"):
        positive_positions(np.array([0, 1]), [1, 1], [])
    with pytest.raises(ValueError, match="the 'junk' list holds indices outside"):
        positive_positions(np.array([0, 1]), [1], [-2])


def test_revisited_lists_are_sets_but_must_be_in_range():
    ranks = np.arange(4)[:, None]
    res = compute_map_revisited(ranks, [{"easy": [0, 0], "hard": [1], "junk": [3, 3]}], kappas=(1,))
    assert res["medium"]["mAP"] == pytest.approx(1.0)  # repeats read as sets, as revisited_ground_truth does
    with pytest.raises(ValueError, match=r"the 'hard' list of query 0 holds indices outside the database \[0, 4\)"):
        compute_map_revisited(ranks, [{"easy": [0], "hard": [7], "junk": []}])


def test_random_ranking_maps_reproduce_the_inline_draws_and_refuse_no_draws():
    gnd = [{"ok": [0, 3], "junk": [1]}, {"ok": [2]}]
    rng = np.random.default_rng(5)
    inline = [compute_map(np.argsort(rng.random((6, 2)), axis=0), gnd)[0] for _ in range(7)]  # the book's old cell
    np.testing.assert_array_equal(random_ranking_maps(gnd, 6, 7, rng=np.random.default_rng(5)), inline)
    np.testing.assert_array_equal(random_ranking_maps(gnd, 6, 7, rng=5), inline)
    for bad in (0, -5):
        with pytest.raises(ValueError, match=f"n_draws must be >= 1, got {bad}"):
            random_ranking_maps(gnd, 6, bad)
    with pytest.raises(ValueError, match="n_draws must be an integer"):
        random_ranking_maps(gnd, 6, 2.5)
    with pytest.raises(ValueError, match=r"outside the database \[0, 3\)"):
        random_ranking_maps(gnd, 3, 1)


def test_l2_normalize_handles_extreme_norms_and_keeps_ordinary_bits():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 16))
    for scale in (1e-30, 1e30, 1e-300, 1e300):  # float32 squares underflow / overflow; float64 casts to inf
        np.testing.assert_allclose(np.linalg.norm(l2_normalize(scale * x), axis=1), 1.0, atol=1e-6)
    plain = x.astype(np.float32)  # scaling by a power of two is exact: the same bits as x / ||x||
    np.testing.assert_array_equal(l2_normalize(plain), plain / np.linalg.norm(plain, axis=1, keepdims=True))
    np.testing.assert_array_equal(l2_normalize(np.zeros((2, 3))), np.zeros((2, 3)))  # no direction: stays zero


def test_rank_database_refuses_a_chunk_that_is_no_count():
    with pytest.raises(ValueError, match="chunk must be >= 1"):
        rank_database(np.ones((1, 3)), np.eye(3), chunk=0)
