"""fsrlib.plotting helpers whose drawing encodes a number: the drawn area must be that number."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from fsrlib.plotting import plot_precision_recall  # noqa: E402
from fsrlib.retrieval import average_precision  # noqa: E402


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
