"""Tables and plots of a balanced grid (rows as the runner writes them to results.csv):
summary.md (mean ± std over seeds), diversity.csv and the four PNG plots."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Optional

import pandas as pd
from matplotlib.figure import Figure

from augment.downstream.methods import methods_of
from augment.downstream.records import REAL_CEILING
from augment.evaluation.report import labelled_classes, markdown_table
from augment.fileio import atomic_path, atomic_write_text


def _frame(rows):

    df = pd.DataFrame(rows)
    df["test_accuracy"] = df["test_accuracy"].astype(float) * 100
    df["ratio"] = df["ratio"].astype(float)
    df["seed"] = df["seed"].astype(int)
    df["n"] = df["n_per_class"].astype(str).map(lambda s: 6000 if s == "all" else int(s))
    df["name"] = df.apply(lambda r: r["method"] if r["regime"] == "-" else f"{r['method']} ({r['regime']})",
                          axis=1)
    return df


def _method_colours(df) -> dict:
    """One colour per method, the same in every accuracy plot of a grid."""
    return {m: f"C{i % 10}" for i, m in enumerate(sorted(df["name"].unique()))}


def _seeds_label(method: str, group) -> str:
    """``method`` with how many seeds its points average, e.g. "none (3 seeds)"."""
    counts = sorted(set(group.groupby(["n", "ratio"])["seed"].nunique()))
    seeds = str(counts[0]) if len(counts) == 1 else f"{counts[0]}-{counts[-1]}"
    return f"{method} ({seeds} seed{'' if seeds == '1' else 's'})"


def _save(fig, path: Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")


def _finish_accuracy_panels(fig, axes, path: Path) -> None:
    """Grid, y label and legend of a row of accuracy panels; save the figure."""
    for ax in axes[0]:
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("test accuracy (%)")
    axes[0][-1].legend(fontsize=7, loc="lower right")
    fig.text(0.5, -0.02, "mean over seeds; error bars and bands: std over seeds; hollow markers: one seed, "
             "no spread to show", ha="center", va="top", fontsize=7)
    _save(fig, path)


def _mean_std_line(ax, group, x: str, fmt: str, label: str, colour: str) -> None:
    """Mean test accuracy over seeds against column ``x``, with the std as error bars (none,
    and a hollow marker, where a point has a single seed)."""
    stats = group.groupby(x)["test_accuracy"].agg(["mean", "std", "count"]).reset_index()
    ax.errorbar(stats[x], stats["mean"], yerr=stats["std"], fmt=fmt, ms=3, capsize=2, color=colour,
                label=label)
    single = stats[stats["count"] == 1]
    ax.plot(single[x], single["mean"], "o", ms=5, mfc="white", mec=colour, zorder=3)


def plot_accuracy_vs_n(rows, path: Path) -> None:
    """One panel per ratio: test accuracy against real images per class, one line per method
    (real-only baselines repeated in every panel); error bars are the std over seeds."""
    df = _frame(rows)
    finite = df[df["ratio"].map(math.isfinite)]
    base = finite[finite["regime"] == "-"]
    ratios = sorted(finite[finite["regime"] != "-"]["ratio"].unique()) or [0.0]
    colours = _method_colours(df)
    fig = Figure(figsize=(4.6 * len(ratios), 3.6))
    axes = fig.subplots(1, len(ratios), squeeze=False, sharey=True)
    for ax, r in zip(axes[0], ratios):
        part = finite[(finite["ratio"] == r) | (finite["regime"] == "-")]
        for method, g in sorted(part.groupby("name")):
            style = "--" if method in set(base["name"]) else "-"
            _mean_std_line(ax, g, "n", style + "o", _seeds_label(method, g), colours[method])
        ax.set_xscale("log")
        ax.set_title(f"synthetic:real = {r:g}")
        ax.set_xlabel("real images per class (6000 = all)")
    _finish_accuracy_panels(fig, axes, path)


def plot_accuracy_vs_ratio(rows, path: Path) -> None:
    """One panel per n: accuracy against the synthetic:real ratio per synthetic method, with
    the real-only baselines as horizontal lines."""
    df = _frame(rows)
    finite = df[df["ratio"].map(math.isfinite)]
    ns = sorted(finite["n"].unique())
    colours = _method_colours(df)
    fig = Figure(figsize=(4.4 * len(ns), 3.6))
    axes = fig.subplots(1, len(ns), squeeze=False, sharey=True)
    for ax, n in zip(axes[0], ns):
        part = finite[finite["n"] == n]
        for method, g in sorted(part.groupby("name")):
            if (g["regime"] == "-").all():  # a real-only baseline: its mean across, its std as a band
                mean, std = g["test_accuracy"].mean(), g["test_accuracy"].std()
                ax.axhline(mean, ls="--", lw=1, label=_seeds_label(method, g), color=colours[method])
                if std == std:  # not NaN: more than one seed
                    ax.axhspan(mean - std, mean + std, color=colours[method], alpha=0.12, lw=0)
            else:
                _mean_std_line(ax, g, "ratio", "-o", _seeds_label(method, g), colours[method])
        ax.set_title(f"n = {'all' if n == 6000 else n} real per class")
        ax.set_xlabel("synthetic:real ratio")
    _finish_accuracy_panels(fig, axes, path)


def plot_per_class(rows, path: Path) -> None:
    """Per-class test accuracy, one panel per n (real images per class): each method at its
    largest ratio, mean over seeds."""
    df = _frame(rows)
    colour = _method_colours(df)  # one colour per method in every panel and plot
    df = df[df["ratio"].map(math.isfinite)]
    ns = sorted(df["n"].unique())
    cols = sorted([c for c in df.columns if c.startswith("acc_")], key=lambda c: int(c[4:]))
    fig = Figure(figsize=(10, 3.0 * len(ns)))
    axes = fig.subplots(len(ns), 1, squeeze=False)
    for ax, n in zip(axes[:, 0], ns):
        part = df[df["n"] == n]
        part = part[part["ratio"] == part.groupby("name")["ratio"].transform("max")]
        methods = sorted(part["name"].unique())
        width = 0.8 / max(1, len(methods))
        for i, method in enumerate(methods):
            g = part[part["name"] == method]
            means = [g[c].astype(float).mean() * 100 for c in cols]
            ratio = g["ratio"].iloc[0]
            label = method if ratio == 0 else f"{method}, r={ratio:g}"
            ax.bar([k + i * width for k in range(len(cols))], means, width, label=label, color=colour[method])
        ax.set_xticks([k + 0.4 - width / 2 for k in range(len(cols))], [c[4:] for c in cols])
        ax.set_ylabel("test accuracy (%)")
        ax.set_title(f"n = {'all' if n == 6000 else n} real images per class (mean over seeds)")
        lo = min(80.0, float(part[cols].astype(float).min().min() * 100) - 2)
        ax.set_ylim(lo, 100)
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
        ax.grid(alpha=0.3, axis="y")
    axes[-1, 0].set_xlabel("class")
    fig.subplots_adjust(hspace=0.4)
    _save(fig, path)


def plot_diversity(diversity, path: Path) -> None:
    """Per-class intra-class diversity (synthetic/real) and coverage of each generator."""
    df = pd.DataFrame(diversity)
    keys = [k for k in ("diversity", "coverage", "agreement") if k in df.columns]
    fig = Figure(figsize=(4.6 * len(keys), 3.4))
    axes = fig.subplots(1, len(keys), squeeze=False)
    gens = sorted(g for g in df["generator"].unique() if g != REAL_CEILING)
    ceiling = df[df["generator"] == REAL_CEILING].sort_values("class")
    width = 0.8 / max(1, len(gens))
    for ax, key in zip(axes[0], keys):
        for i, gname in enumerate(gens):
            g = df[df["generator"] == gname].sort_values("class")
            ax.bar(g["class"] + i * width, g[key].astype(float), width, label=gname)
        if len(ceiling):  # real images at the same n, a line across each class's bars
            ax.hlines(ceiling[key].astype(float), ceiling["class"] - width / 2,
                      ceiling["class"] + (len(gens) - 0.5) * width, colors="k", lw=1.5,
                      label=f"{REAL_CEILING}, same n")
        ax.set_title({"diversity": "diversity (synthetic / real spread)"}.get(key, key))
        ax.set_ylabel(key)
        classes = sorted(df["class"].astype(int).unique())
        ax.set_xticks([c + (len(gens) - 1) * width / 2 for c in classes], [str(c) for c in classes])
        ax.set_xlabel("class")
        ax.axhline(1.0, color="0.5", lw=0.6, ls="--")
        ax.grid(alpha=0.3, axis="y")
    handles, labels = axes[0][0].get_legend_handles_labels()
    ncol = min(len(labels), 4)
    fig.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=ncol, fontsize=8,
               frameon=False)
    _save(fig, path)


# ------------------------------------------------------------------------------- tables


def summary_frame(rows: list[dict]):
    """Mean, std and count of test accuracy per (method, regime, ratio, n)."""
    df = pd.DataFrame(rows)
    df["test_accuracy"] = df["test_accuracy"].astype(float)
    df["ratio"] = df["ratio"].astype(float)
    df["n_per_class"] = df["n_per_class"].astype(str)
    g = df.groupby(["method", "regime", "ratio", "n_per_class"])["test_accuracy"]
    return g.agg(["mean", "std", "count"]).reset_index()


def paired_gains(rows: list[dict], baseline: str, methods: tuple):
    """Accuracy of each ``methods`` cell minus the ``baseline`` cell ("none" or "classical") of
    the same n and seed (the same real images), in points: mean, std and count over seeds per
    (method, regime, ratio, n). Pairing removes the spread that the real subset causes."""
    df = pd.DataFrame(rows)
    df["test_accuracy"] = df["test_accuracy"].astype(float)
    df["ratio"] = df["ratio"].astype(float)
    df["n_per_class"] = df["n_per_class"].astype(str)
    df["seed"] = df["seed"].astype(int)
    base = df[df["method"] == baseline][["n_per_class", "seed", "test_accuracy"]]
    cells = df[df["method"].isin(methods)]
    merged = cells.merge(base, on=["n_per_class", "seed"], suffixes=("", "_base"))
    merged["gain"] = 100 * (merged["test_accuracy"] - merged["test_accuracy_base"])
    g = merged.groupby(["method", "regime", "ratio", "n_per_class"])["gain"]
    return g.agg(["mean", "std", "count"]).reset_index()


def _reading_order(table):
    """Rows of a (method, regime, ratio) table in reading order: the method table's (none,
    classical, synthetic, classical+synthetic); shipped before fair; ratios by value (inf last)."""
    order, regimes = methods_of("balanced"), ("-", "shipped", "fair")

    def key(index):
        method, regime, ratio = index
        return (order.index(method) if method in order else len(order),
                regimes.index(regime) if regime in regimes else len(regimes), float(ratio))

    return table.loc[sorted(table.index, key=key)]


def _gain_table(gains, ns: list) -> str:
    gains = gains.copy()
    gains["cell"] = gains.apply(lambda r: f"{r['mean']:+.2f} ± {r['std']:.2f} ({int(r['count'])} seeds)"
                                if r["count"] > 1 else f"{r['mean']:+.2f} (1 seed)", axis=1)
    gains["ratio"] = gains["ratio"].map(lambda r: f"{r:g}")
    table = gains.pivot_table(index=["method", "regime", "ratio"], columns="n_per_class",
                              values="cell", aggfunc="first")
    table = _reading_order(table.reindex(columns=[n for n in ns if n in table.columns]).fillna(""))
    return _markdown(table.reset_index())


def write_summary(out_dir: Path, grid, rows: list[dict], diversity: list[dict], fair_generators: dict,
                  data_dir: Optional[Path], dataset: str) -> None:
    """summary.md (mean ± std tables), diversity.csv, and the plots of a balanced grid's rows
    (the grid, its fair generators and data are not needed here)."""
    if not rows:
        return
    summary = summary_frame(rows)
    ns = sorted(summary["n_per_class"].unique(), key=lambda s: (1, 0) if s == "all" else (0, int(s)))
    summary["cell"] = summary.apply(_mean_std_cell, axis=1)
    summary["ratio"] = summary["ratio"].map(lambda r: f"{r:g}")  # 0, 0.5, 4, inf
    table = summary.pivot_table(index=["method", "regime", "ratio"], columns="n_per_class",
                                values="cell", aggfunc="first").reindex(columns=ns).fillna("")
    table = _reading_order(table)
    lines = ["# Test accuracy (%) on the real test set, mean ± std over seeds", "",
             "Rows: method, generator regime, synthetic:real ratio. Columns: real images "
             "per class. Ratio inf = synthetic only: no real image is used, and the column is "
             "the number of real images per class the generator was trained on (shipped: all). The "
             "'shipped' regime is the shipped generator, or the one --generator named (run.json says which). "
             "A cell from one seed says so instead of showing a std.", "",
             _markdown(table.reset_index())]
    for baseline, methods, title in (
            ("none", ("synthetic", "classical", "classical+synthetic"), "real only"),
            ("classical", ("classical+synthetic",), "classical augmentation alone")):
        gains = paired_gains(rows, baseline, methods)
        if len(gains):
            lines += ["", f"# Gain over {title} (points), paired by seed", "",
                      f"Each run minus the {title} run of the same n and seed (the same real images); "
                      "mean ± std over seeds.", "", _gain_table(gains, ns)]
    if diversity:
        div = pd.DataFrame(diversity)
        atomic_write_text(out_dir / "diversity.csv", div.to_csv(index=False))
        cols = [c for c in ("agreement", "diversity", "coverage", "frechet") if c in div.columns]
        means = div.groupby("generator", sort=True)[cols].mean().reset_index()
        lines += ["", "# Synthetic data (the generators the grid used)", "",
                  f"Mean over the classes of each generator's per-class figures "
                  f"({len(div) // max(len(means), 1)} classes; per-class rows below and in diversity.csv). "
                  f"Coverage and Fréchet depend on the number of samples: read each generator against "
                  f"'{REAL_CEILING}', real training images scored the same way at the same n.", "",
                  _markdown(means), "", "Per class:", "",
                  _markdown(div[["generator", *cols]].assign(**{"class": labelled_classes(div)})
                            [["generator", "class", *cols]])]
    atomic_write_text(out_dir / "summary.md", "\n".join(lines) + "\n")
    _plots(out_dir, rows, diversity)


def _mean_std_cell(row) -> str:
    if row["count"] > 1:
        return f"{100 * row['mean']:.2f} ± {100 * row['std']:.2f}"
    return f"{100 * row['mean']:.2f} (1 seed)"


def _markdown(df) -> str:
    """Markdown of a DataFrame whose first column becomes the row label."""
    first = df.columns[0]
    return markdown_table(df.set_index(first), index_name=str(first))


def _plots(out_dir: Path, rows: list[dict], diversity: list[dict]) -> None:
    plot_accuracy_vs_n(rows, out_dir / "accuracy_vs_n.png")
    plot_accuracy_vs_ratio(rows, out_dir / "accuracy_vs_ratio.png")
    plot_per_class(rows, out_dir / "per_class_accuracy.png")
    if diversity:
        plot_diversity(diversity, out_dir / "diversity.png")
