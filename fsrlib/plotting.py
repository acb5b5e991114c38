"""Figures shared by the chapters: one colour per method, kept across the whole book."""
from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

#: Fixed colour of each method in every figure of the book.
METHOD_COLORS: dict[str, str] = {
    "hr": "#222222", "raw": "#8c8c8c", "bicubic": "#8c8c8c", "ridge": "#1f77b4", "mlp": "#17becf",
    "cnn_baseline": "#9467bd", "fsrgan": "#d62728", "fsrgan_residual": "#ff7f0e", "srcnn": "#2ca02c",
    "vdsr": "#bcbd22",
}
METHOD_LABELS: dict[str, str] = {"hr": "full-resolution query", "raw": "raw LR feature (bicubic)"}


def method_colors(methods) -> dict[str, str]:
    """Colours for ``methods``: the fixed ones, then seaborn's palette for any other name."""
    extra = [m for m in methods if m not in METHOD_COLORS]
    palette = dict(zip(extra, sns.color_palette("Set2", len(extra)).as_hex()))
    return {m: METHOD_COLORS.get(m, palette.get(m)) for m in methods}


def plot_metric_vs_ratio(table: pd.DataFrame, metric: str, ax: plt.Axes | None = None) -> plt.Axes:
    """Line plot of ``metric`` against the area ratio (largest first), one line per method."""
    ax = ax or plt.gca()
    sub = table[table["metric"] == metric]
    order = sorted(sub["ratio"].unique(), reverse=True)
    labels = sub.drop_duplicates("ratio").set_index("ratio")["ratio_label"]
    colors = method_colors(list(dict.fromkeys(sub["method"])))
    for method, rows in sub.groupby("method", sort=False):
        rows = rows.groupby("ratio")["value"].mean().reindex(order)
        style = "--" if method == "hr" else "-o"
        ax.plot(range(len(order)), rows.values, style, color=colors[method], label=METHOD_LABELS.get(method, method))
    ax.set_xticks(range(len(order)), [labels[r] for r in order])
    ax.set_xlabel("query area down-scaling ratio")
    ax.set_ylabel(metric)
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    return ax
