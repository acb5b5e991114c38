"""Figures shared by the chapters: one colour per method, kept across the whole book."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.patches import FancyArrowPatch

from fsrlib.methods.registry import METHODS

#: The full-size query's line, drawn beside the methods in most figures (not a method: nothing is enhanced).
HR_COLOR, HR_LABEL = "#222222", "full-resolution query"


def method_color(name: str) -> str | None:
    """The fixed colour of ``name`` in every figure: the registered method's (:mod:`fsrlib.methods.registry`), or none."""
    return HR_COLOR if name == "hr" else METHODS[name].color if name in METHODS else None


def method_label(name: str) -> str:
    """The legend label of ``name``: the registered method's, else the name itself."""
    return HR_LABEL if name == "hr" else METHODS[name].label if name in METHODS else name


def method_colors(methods) -> dict[str, str]:
    """Colours for ``methods``: the fixed ones, then seaborn's palette for any name without one."""
    extra = [m for m in methods if method_color(m) is None]
    palette = dict(zip(extra, sns.color_palette("Set2", len(extra)).as_hex()))
    return {m: method_color(m) or palette[m] for m in methods}


def legend_below(fig: plt.Figure, ax: plt.Axes | None = None, *, ncol: int = 4, rename: dict | None = None,
                 title: str | None = None) -> None:
    """One legend for the whole figure, under its axes, so that it never covers a line.

    Takes the handles of ``ax`` (default: the first axes), removes every per-axes legend, lays the figure out and
    puts the legend below it (inline figures are saved with a tight bounding box, which includes it).
    ``rename`` maps a label to what the legend should say.
    """
    ax = ax or fig.axes[0]
    handles, names = ax.get_legend_handles_labels()
    for each in fig.axes:
        if each.get_legend() is not None:
            each.get_legend().remove()
    fig.tight_layout()
    fig.legend(handles, [(rename or {}).get(n, n) for n in names], loc="upper center", bbox_to_anchor=(0.5, 0.0),
               ncol=ncol, fontsize="small", frameon=False, title=title)


def plot_metric_vs_ratio(table: pd.DataFrame, metric: str, ax: plt.Axes | None = None) -> plt.Axes:
    """Line plot of ``metric`` against the area ratio (largest first), one line per method (several panels:
    follow with :func:`legend_below` for one legend outside the data)."""
    ax = ax or plt.gca()
    sub = table[table["metric"] == metric]
    order = sorted(sub["ratio"].unique(), reverse=True)
    labels = sub.drop_duplicates("ratio").set_index("ratio")["ratio_label"]
    colors = method_colors(list(dict.fromkeys(sub["method"])))
    for method, rows in sub.groupby("method", sort=False):
        rows = rows.groupby("ratio")["value"].mean().reindex(order)
        style = "--" if method == "hr" else "-o"
        ax.plot(range(len(order)), rows.values, style, color=colors[method], label=method_label(method))
    ax.set_xticks(range(len(order)), [labels[r] for r in order])
    ax.set_xlabel("query area down-scaling ratio")
    ax.set_ylabel(metric)
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    return ax


def show_retrievals(ax_row, query_image, database_images, ranked: list[int], positives: set[int],
                    title: str = "query", junk: set[int] = frozenset()) -> None:
    """Draw a query and its top retrievals on a row of axes; green frame = positive, red = not, grey = ``junk``
    (ignored by the metric, e.g. the query's own photo in Holidays' database). ``title`` labels the row on its
    left, so stacked rows never overlap."""
    ax_row[0].imshow(query_image)
    ax_row[0].set_ylabel(title, fontsize="small")
    for ax, idx in zip(ax_row[1:], ranked):
        ax.imshow(database_images[idx])
        color = "#2ca02c" if idx in positives else "#9e9e9e" if idx in junk else "#d62728"
        if idx in junk:
            ax.set_title("junk (ignored)", fontsize="x-small")
        for spine in ax.spines.values():
            spine.set_edgecolor(color)
            spine.set_linewidth(4)
    for ax in ax_row:
        ax.set_xticks([])
        ax.set_yticks([])


def plot_method_retrievals(dataset, by_method: dict, database, query: int, ratio: float, k: int = 5, *,
                           degradation: str = "uniform", reference: str = "input") -> plt.Figure:
    """One row per method: query ``query`` at ``ratio`` and its top-``k`` database images ranked with that method's
    features. ``by_method`` is ``{method: {ratio: (Q, D) query features}}``; ``database`` the ``(N, D)``
    full-resolution features; the query is drawn with the given ``degradation``/``reference``."""
    from fsrlib.evaluation.analysis import top_k
    from fsrlib.features.degrade import ratio_label
    from fsrlib.features.inputs import item_input, query_item

    shown = item_input(dataset, query_item(dataset, query), ratio, degradation=degradation,
                       reference=reference).upsampled
    rows = [(name, feats) for name, feats in by_method.items() if ratio in feats]
    if not rows:
        raise ValueError(f"no method has features at ratio {ratio_label(ratio)}")
    fig, axes = plt.subplots(len(rows), k + 1, figsize=(2 * (k + 1), 2.1 * len(rows)), squeeze=False)
    images: dict[int, object] = {}  # a database image retrieved by several methods is read once
    for ax_row, (name, feats) in zip(axes, rows):
        ranked = list(top_k(feats[ratio][query:query + 1], database, k=k)[0])
        for i in ranked:
            if i not in images:
                images[i] = item_input(dataset, dataset.images[i], 1.0).upsampled
        show_retrievals(ax_row, shown, images, ranked, set(dataset.gnd[query]["ok"]),
                        title=f"{method_label(name)}\nquery {query} at {ratio_label(ratio)}",
                        junk=set(dataset.gnd[query].get("junk", ())))
    fig.tight_layout()
    return fig


def retrieval_explorer(dataset, queries: dict, database, k: int = 5, *, degradation: str = "uniform",
                       reference: str = "input"):
    """An ipywidgets view of :func:`plot_method_retrievals`: pick a query and a ratio, see the LR query and its
    top-k retrievals.

    ``queries`` is ``{ratio: (Q, D)}`` (or ``{method: {ratio: (Q, D)}}`` to compare raw, ISR and FSR features
    of the same queries: one row per method) and ``database`` the ``(N, D)`` full-resolution features. Needs a
    running kernel; chapters put a static figure made with :func:`plot_method_retrievals` beside it.
    """
    import ipywidgets as widgets

    from fsrlib.features.degrade import ratio_label

    by_method = queries if isinstance(next(iter(queries.values())), dict) else {"raw": queries}
    ratios = sorted({r for feats in by_method.values() for r in feats}, reverse=True)
    by_label = {ratio_label(r): r for r in ratios}

    def draw(query: int, ratio: str) -> None:
        plot_method_retrievals(dataset, by_method, database, query, by_label[ratio], k, degradation=degradation,
                               reference=reference)
        plt.show()

    return widgets.interactive(draw, query=widgets.IntSlider(0, 0, len(dataset.queries) - 1),
                               ratio=widgets.Dropdown(options=list(by_label), value=list(by_label)[-1]))


def history_frames(history: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Training history as two tidy frames: per step (losses) and per epoch (validation distance by ratio)."""
    from fsrlib.features.degrade import ratio_label

    steps = pd.DataFrame([{k: v for k, v in s.items() if k != "event"} for s in history["steps"]])
    epochs = pd.DataFrame([{"epoch": e["epoch"], "ratio": ratio_label(r), "val_distance": d}
                           for e in history["epochs"] for r, d in sorted(e["val_distance"].items(), reverse=True)])
    return steps, epochs


def plot_training_history(history: dict, axes, smooth: int = 5) -> None:
    """Three panels: generator loss terms, the critic's Wasserstein estimate, validation distance per ratio."""
    steps, epochs = history_frames(history)
    roll = steps.rolling(smooth, min_periods=1).mean()
    terms = [c for c in ("generator_loss", "adversarial", "distance_term") if c in steps]
    for col in terms:
        axes[0].plot(steps["step"], roll[col], label=col.replace("_", " "))
    axes[0].set_xlabel("generator step")
    axes[0].set_ylabel(f"loss (moving average of {smooth})")
    axes[0].legend(fontsize="small")
    if "wasserstein" in steps:
        axes[1].plot(steps["step"], roll["wasserstein"], color="#d62728")
    axes[1].set_xlabel("generator step")
    axes[1].set_ylabel("critic's Wasserstein estimate\n-(Eq. 7)")
    sns.lineplot(data=epochs, x="epoch", y="val_distance", hue="ratio", marker="o", ax=axes[2], palette="viridis")
    axes[2].set_ylabel("validation ||G(F_LR) - F_HR||")
    axes[2].legend(title="ratio", fontsize="small", loc="center left", bbox_to_anchor=(1.02, 0.5))  # beside the data
    for ax in axes:
        ax.grid(alpha=0.3)


def _feature_strip(ax, feature, title: str, cmap: str = "viridis") -> None:
    ax.imshow(feature[None, :64], aspect="auto", cmap=cmap)
    ax.set_title(title, fontsize="small")
    ax.set_xticks([])
    ax.set_yticks([])


def _arrow(fig, start_ax, end_ax, label: str = "") -> None:
    """A labelled arrow in figure coordinates from the right edge of one axes to the left edge of the next."""
    a, b = start_ax.get_position(), end_ax.get_position()
    y = (a.y0 + a.y1) / 2
    fig.add_artist(FancyArrowPatch((a.x1 + 0.005, y), (b.x0 - 0.005, y), transform=fig.transFigure,
                                   arrowstyle="-|>", mutation_scale=14, color="#444444"))
    if label:
        fig.text((a.x1 + b.x0) / 2, y - 0.03, label, ha="center", va="top", fontsize="small")


def plot_pipeline(small, bicubic, super_resolved, features: dict, title: str = "", isr_name: str = "ISR",
                  fsr_name: str = "G") -> plt.Figure:
    """The paper's Fig. 1 drawn with real data: (a) FSR enhances the LR *feature*; (b) ISR enhances the *pixels*.

    ``small``/``bicubic``/``super_resolved`` are PIL images of one query; ``features`` holds 1-D feature
    vectors ``"lr"``, ``"fsr"``, ``"isr"`` and ``"hr"`` (the first 64 entries are drawn as strips).
    """
    fig = plt.figure(figsize=(13, 5.2))
    width, gap = 0.13, 0.05
    rows = {"a": 0.56, "b": 0.08}
    panels: dict[str, list] = {}
    for row, y in rows.items():
        panels[row] = [fig.add_axes((0.03 + i * (width + gap), y, width, 0.32)) for i in range(5)]
    a, b = panels["a"], panels["b"]
    for ax, img, name in ((a[0], small, f"LR query {small.width}x{small.height}"),
                          (a[1], bicubic, "bicubic to 224x224"), (b[0], small, "LR query"),
                          (b[1], super_resolved, "super-resolved image (ISR)")):
        ax.imshow(img, interpolation="nearest")
        ax.set_title(name, fontsize="small")
        ax.axis("off")
    _feature_strip(a[2], features["lr"], "LR feature F_LR")
    _feature_strip(a[3], features["fsr"], f"{fsr_name}(F_LR): enhanced feature")
    _feature_strip(a[4], features["hr"], "HR feature F_HR (target)")
    _feature_strip(b[2], features["isr"], "feature of the ISR image")
    _feature_strip(b[3], features["hr"], "HR feature F_HR (target)")
    b[4].axis("off")
    for left, right, label in ((a[0], a[1], ""), (a[1], a[2], "CNN"), (a[2], a[3], fsr_name),
                               (b[0], b[1], isr_name), (b[1], b[2], "CNN")):
        _arrow(fig, left, right, label)
    a[4].set_xlabel(f"distance to F_HR: LR {np.linalg.norm(features['lr'] - features['hr']):.3f}, "
                    f"FSR {np.linalg.norm(features['fsr'] - features['hr']):.3f}", fontsize="small")
    b[3].set_xlabel(f"distance to F_HR: ISR {np.linalg.norm(features['isr'] - features['hr']):.3f}",
                    fontsize="small")
    fig.text(0.01, 0.95, "(a) feature super-resolution: enhance what the machine reads", fontweight="bold")
    fig.text(0.01, 0.47, "(b) image super-resolution: enhance what a person sees", fontweight="bold")
    if title:
        fig.suptitle(title, x=0.99, ha="right", fontsize="small")
    return fig


def plot_isr_histories(upscalers: dict, ax: plt.Axes, smooth: int = 20) -> plt.Axes:
    """Training loss (moving average) of every network of each ISR upscaler, in the method's colour."""
    for name, up in upscalers.items():
        styles = iter(["-", "--", ":", "-."])
        for label, history in up.histories.items():
            loss = pd.Series(history["loss"]).rolling(smooth, min_periods=1).mean()
            ax.plot(history["step"], loss, next(styles, "-"), color=method_color(name), label=f"{name} ({label})")
    ax.set_xlabel("training step")
    ax.set_ylabel(f"MSE on Y, [0, 1] scale (moving average of {smooth})")
    ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    return ax


def image_row(images: dict, axes, crop: tuple[int, int, int, int] | None = None) -> None:
    """Show ``{title: PIL image}`` on a row of axes, optionally cropped to ``(x1, y1, x2, y2)``."""
    for ax, (title, image) in zip(axes, images.items()):
        ax.imshow(image.crop(crop) if crop else image, interpolation="nearest")
        ax.set_title(title, fontsize="small")
        ax.axis("off")


def plot_precision_recall(positions: np.ndarray, n_positives: int, ax: plt.Axes | None = None,
                          color: str = "#1f77b4", label: str = "Oxford AP") -> plt.Axes:
    """One query's precision-recall curve with the area that is its AP (Oxford's trapezoids), and
    scikit-learn's step-wise rectangles dashed for comparison.

    ``positions`` are the 0-based, junk-free ranks of the positives found
    (:func:`fsrlib.evaluation.retrieval.positive_positions`); ``n_positives`` counts all of them, found or not.
    The labels carry both AP values; the caller places the legend (``ax.legend()``).
    """
    from fsrlib.evaluation.retrieval import average_precision

    ax = ax or plt.gca()
    pos = np.sort(np.asarray(positions, dtype=np.int64))
    ranks = np.arange(int(pos.max()) + 1 if pos.size else 0)
    hits = np.cumsum(np.isin(ranks, pos))
    recall = np.concatenate([[0.0], hits / n_positives])
    precision = np.concatenate([[1.0], hits / (ranks + 1)])
    ap = average_precision(pos, n_positives)
    ax.fill_between(recall, precision, color=color, alpha=0.25, lw=0, label=f"{label} = area = {ap:.3f}")
    ax.plot(recall, precision, "-o", color=color, ms=3, lw=1.2, label="precision and recall at each rank")
    step_r = np.arange(pos.size + 1) / n_positives
    step_p = (np.arange(pos.size) + 1) / (pos + 1)
    ax.step(step_r, np.concatenate([step_p[:1], step_p]), where="pre", color="#d62728", ls="--", lw=1.2,
            label=f"step-wise (scikit-learn) = {step_p.sum() / n_positives:.3f}")
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_xlim(0, 1.02)
    ax.set_ylim(0, 1.05)
    ax.grid(alpha=0.3)
    return ax


def plot_map_intervals(summary: pd.DataFrame, ax: plt.Axes | None = None, methods=None,
                       title: str = "") -> plt.Axes:
    """mAP against the area ratio (largest first) with its 95% bootstrap interval as a band, one line per method.

    ``summary`` is :func:`fsrlib.evaluation.analysis.summarize`'s table. The legend goes below the axes so it never
    covers data.
    """
    ax = ax or plt.gca()
    methods = list(methods) if methods is not None else list(dict.fromkeys(summary["method"]))
    colors = method_colors(methods)
    labels = sorted(summary["ratio"].unique(), reverse=True)
    position = {r: i for i, r in enumerate(labels)}
    for method in methods:
        sub = summary[summary["method"] == method].sort_values("ratio", ascending=False)
        if sub.empty:
            continue
        x = [position[r] for r in sub["ratio"]]
        style = "--" if method == "hr" else "-"
        ax.plot(x, sub["mAP"], style, marker="o", ms=3, color=colors[method],
                label=method_label(method))
        ax.fill_between(x, sub["lo"], sub["hi"], color=colors[method], alpha=0.15, lw=0)
    ax.set_xticks(range(len(labels)), [summary.loc[summary["ratio"] == r, "ratio_label"].iloc[0] for r in labels])
    ax.set_xlabel("query area down-scaling ratio")
    ax.set_ylabel("mAP (95% interval over queries)")
    ax.set_title(title, fontsize="medium")
    ax.grid(alpha=0.3)
    return ax


def plot_learning_curve(table: pd.DataFrame, raw: dict[float, float], ax: plt.Axes | None = None,
                        xlabel: str = "unlabeled photos") -> plt.Axes:
    """mAP against the training set's size (``table["run"]``, log scale), one line per ratio with its 95% interval
    over queries as error bars and the spread over seeds as open markers; raw's mAP at each ratio dashed.
    ``table`` is :func:`fsrlib.evaluation.recorded.summarize_student_runs`'s."""
    ax = ax or plt.gca()
    for i, (ratio, sub) in enumerate(table.sort_values("run").groupby("ratio", sort=False)):
        color = f"C{i}"
        x = sub["run"].to_numpy(dtype=float)
        label = sub["ratio_label"].iloc[0]
        ax.errorbar(x, sub["mAP"], yerr=[sub["mAP"] - sub["lo"], sub["hi"] - sub["mAP"]], marker="o", ms=4,
                    capsize=3, color=color, label=f"student, {label}")
        ax.scatter(np.r_[x, x], np.r_[sub["seed_min"], sub["seed_max"]], marker="_", s=60, color=color)
        ax.axhline(raw[ratio], ls="--", lw=1, color=color, label=f"raw, {label}")
    ax.set_xscale("log")
    sizes = sorted(table["run"].unique())
    ax.set_xticks(sizes, [f"{n:,}" for n in sizes])
    ax.minorticks_off()
    ax.set_xlabel(xlabel)
    ax.set_ylabel("mAP (95% interval over queries)")
    ax.grid(alpha=0.3)
    return ax
