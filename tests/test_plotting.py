"""fsrlib.plotting helpers whose drawing encodes a number: the drawn area must be that number."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from fsrlib.evaluation.retrieval import average_precision  # noqa: E402
from fsrlib.plotting import plot_precision_recall  # noqa: E402


def polygon_area(vertices: np.ndarray) -> float:
    x, y = vertices[:, 0], vertices[:, 1]
    return float(abs(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1))) / 2)


@pytest.mark.parametrize("positions, n_positives", [([0, 2, 4, 7], 4), ([1, 3], 2), ([0, 1, 2], 5), ([5], 1)])
def test_shaded_area_is_the_oxford_ap_and_labels_give_both_aps(positions, n_positives):
    fig, ax = plt.subplots()
    plot_precision_recall(np.array(positions), n_positives, ax=ax)
    fill = ax.collections[0].get_paths()[0].vertices
    assert polygon_area(fill) == pytest.approx(average_precision(np.array(positions), n_positives), abs=1e-9)
    pos = np.array(positions)
    # step-wise AP by hand: mean over all positives of the precision at each one found (missing ones add 0)
    stepwise = sum((j + 1) / (p + 1) for j, p in enumerate(pos)) / n_positives
    labels = [line.get_label() for line in ax.get_lines()]
    assert any(f"{stepwise:.3f}" in label for label in labels), labels
    plt.close(fig)


def test_scikit_learn_agrees_with_the_dashed_step_curve():
    from sklearn.metrics import average_precision_score

    # ranking of 9 junk-free items, positives at 0-based ranks 0, 2, 4, 7 (the evaluation chapter's example)
    y_true = np.isin(np.arange(9), [0, 2, 4, 7])
    sk = average_precision_score(y_true, -np.arange(9))
    fig, ax = plt.subplots()
    plot_precision_recall(np.array([0, 2, 4, 7]), 4, ax=ax)
    assert any(f"{sk:.3f}" in line.get_label() for line in ax.get_lines())
    plt.close(fig)


def test_method_retrievals_draw_one_labelled_row_per_method_with_its_own_ranking(tiny_dataset):
    from matplotlib.colors import to_hex

    from fsrlib.plotting import plot_method_retrievals

    database = np.eye(3, 4, dtype=np.float32)
    near = {0.25: np.array([[1, 0, 0, 0], [0, 0, 1, 0]], dtype=np.float32)}   # query 1 nearest to image 2 (ok)
    far = {0.25: np.array([[1, 0, 0, 0], [1, 0, 0, 0]], dtype=np.float32)}    # query 1 nearest to image 0 (junk)
    fig = plot_method_retrievals(tiny_dataset, {"raw": far, "vdsr": near}, database, query=1, ratio=0.25, k=2)
    axes = np.array(fig.axes).reshape(2, 3)
    assert [row[0].get_ylabel().split("\n")[0] for row in axes] == ["raw LR feature (bicubic)", "vdsr"]
    first = [to_hex(row[1].spines["left"].get_edgecolor()) for row in axes]
    assert first == ["#9e9e9e", "#2ca02c"]  # junk drawn grey, a positive green
    with pytest.raises(ValueError, match="no method"):
        plot_method_retrievals(tiny_dataset, {"raw": far}, database, query=1, ratio=1 / 16)
    plt.close(fig)


def test_legend_below_replaces_every_panel_legend_by_one_under_the_axes():
    from fsrlib.plotting import legend_below

    fig, axes = plt.subplots(1, 2)
    for ax in axes:
        ax.plot([0, 1], [0, 1], label="a")
        ax.plot([0, 1], [1, 0], label="b")
        ax.legend()
    legend_below(fig, axes[0], rename={"a": "method a"})
    assert all(ax.get_legend() is None for ax in axes)
    (legend,) = fig.legends
    assert [t.get_text() for t in legend.get_texts()] == ["method a", "b"]
    fig.canvas.draw()
    box = legend.get_window_extent()
    assert box.y1 <= min(ax.get_window_extent().y0 for ax in axes)  # below the panels, over no data
    plt.close(fig)


def test_learning_curve_draws_each_ratio_at_its_sizes_with_its_interval_and_raw():
    import pandas as pd

    from fsrlib.plotting import plot_learning_curve

    table = pd.DataFrame({"run": [400, 400, 2400, 2400], "ratio": [1 / 36, 1 / 64] * 2,
                          "ratio_label": ["1/36", "1/64"] * 2, "mAP": [0.58, 0.53, 0.60, 0.54],
                          "lo": [0.51, 0.47, 0.54, 0.47], "hi": [0.64, 0.60, 0.67, 0.60],
                          "seed_min": [0.57, 0.52, 0.59, 0.53], "seed_max": [0.59, 0.54, 0.61, 0.55]})
    fig, ax = plt.subplots()
    plot_learning_curve(table, {1 / 36: 0.527, 1 / 64: 0.384}, ax)
    curves = {c.get_label(): c for c in ax.containers}  # one errorbar container per ratio
    assert list(curves["student, 1/64"].lines[0].get_xdata()) == [400, 2400]
    assert list(curves["student, 1/64"].lines[0].get_ydata()) == pytest.approx([0.53, 0.54])
    segments = curves["student, 1/36"].lines[2][0].get_segments()  # the vertical bars: lo to hi at each size
    assert [tuple(seg[:, 1]) for seg in segments] == [pytest.approx((0.51, 0.64)), pytest.approx((0.54, 0.67))]
    raw = {line.get_label(): line for line in ax.get_lines()}["raw, 1/36"]
    assert list(raw.get_ydata()) == pytest.approx([0.527, 0.527])
    assert [t.get_text() for t in ax.get_xticklabels()] == ["400", "2,400"]
    plt.close(fig)
