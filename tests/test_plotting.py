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
