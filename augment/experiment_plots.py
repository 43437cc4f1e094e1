"""Plots of augmentation-experiment results (rows as written to results.csv)."""

from __future__ import annotations

import math
from pathlib import Path

from .fileio import atomic_path


def _frame(rows):
    import pandas as pd

    df = pd.DataFrame(rows)
    df["test_accuracy"] = df["test_accuracy"].astype(float) * 100
    df["ratio"] = df["ratio"].astype(float)
    df["seed"] = df["seed"].astype(int)
    df["n"] = df["n_per_class"].astype(str).map(lambda s: 6000 if s == "all" else int(s))
    df["method"] = df.apply(lambda r: r["augmentation"] if r["regime"] == "-"
                            else f"{r['augmentation']} ({r['regime']})", axis=1)
    return df


def _save(fig, path: Path) -> None:
    import matplotlib.pyplot as plt

    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _mean_std_line(ax, group, x: str, fmt: str, label: str) -> None:
    """Mean test accuracy over seeds against column ``x``, with the std as error bars."""
    stats = group.groupby(x)["test_accuracy"].agg(["mean", "std"]).reset_index()
    ax.errorbar(stats[x], stats["mean"], yerr=stats["std"].fillna(0), fmt=fmt, ms=3, capsize=2,
                label=label)


def plot_accuracy_vs_n(rows, path: Path) -> None:
    """One panel per ratio: test accuracy against real images per class, one line per method
    (real-only baselines repeated in every panel); error bars are the std over seeds."""
    plt = _pyplot()
    df = _frame(rows)
    finite = df[df["ratio"].map(math.isfinite)]
    base = finite[finite["regime"] == "-"]
    ratios = sorted(finite[finite["regime"] != "-"]["ratio"].unique()) or [0.0]
    fig, axes = plt.subplots(1, len(ratios), figsize=(4.6 * len(ratios), 3.6), squeeze=False, sharey=True)
    for ax, r in zip(axes[0], ratios):
        part = finite[(finite["ratio"] == r) | (finite["regime"] == "-")]
        for method, g in sorted(part.groupby("method")):
            style = "--" if method in set(base["method"]) else "-"
            _mean_std_line(ax, g, "n", style + "o", method)
        ax.set_xscale("log")
        ax.set_title(f"synthetic:real = {r:g}")
        ax.set_xlabel("real images per class (6000 = all)")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("test accuracy (%)")
    axes[0][-1].legend(fontsize=7, loc="lower right")
    _save(fig, path)


def plot_accuracy_vs_ratio(rows, path: Path) -> None:
    """One panel per n: accuracy against the synthetic:real ratio per synthetic method, with
    the real-only baselines as horizontal lines."""
    plt = _pyplot()
    df = _frame(rows)
    finite = df[df["ratio"].map(math.isfinite)]
    ns = sorted(finite["n"].unique())
    fig, axes = plt.subplots(1, len(ns), figsize=(4.4 * len(ns), 3.6), squeeze=False, sharey=True)
    for ax, n in zip(axes[0], ns):
        part = finite[finite["n"] == n]
        for method, g in sorted(part.groupby("method")):
            if (g["regime"] == "-").all():
                ax.axhline(g["test_accuracy"].mean(), ls="--", lw=1, label=method,
                           color="k" if method == "none" else "gray")
            else:
                _mean_std_line(ax, g, "ratio", "-o", method)
        ax.set_title(f"n = {'all' if n == 6000 else n} real per class")
        ax.set_xlabel("synthetic:real ratio")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("test accuracy (%)")
    axes[0][-1].legend(fontsize=7, loc="lower right")
    _save(fig, path)


def plot_per_class(rows, path: Path) -> None:
    """Per-class test accuracy at the smallest n: each method at its largest ratio."""
    plt = _pyplot()
    df = _frame(rows)
    n = df[df["ratio"].map(math.isfinite)]["n"].min()
    part = df[(df["n"] == n) & df["ratio"].map(math.isfinite)]
    part = part[part["ratio"] == part.groupby("method")["ratio"].transform("max")]
    cols = sorted([c for c in df.columns if c.startswith("acc_")], key=lambda c: int(c[4:]))
    fig, ax = plt.subplots(figsize=(10, 3.6))
    methods = sorted(part["method"].unique())
    width = 0.8 / max(1, len(methods))
    for i, method in enumerate(methods):
        g = part[part["method"] == method]
        means = [g[c].astype(float).mean() * 100 for c in cols]
        ratio = g["ratio"].iloc[0]
        label = method if ratio == 0 else f"{method}, r={ratio:g}"
        ax.bar([k + i * width for k in range(len(cols))], means, width, label=label)
    ax.set_xticks([k + 0.4 - width / 2 for k in range(len(cols))], [c[4:] for c in cols])
    ax.set_xlabel("class")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(f"per-class accuracy with n = {n} real images per class (mean over seeds)")
    lo = min(80.0, float(part[cols].astype(float).min().min() * 100) - 2)
    ax.set_ylim(lo, 100)
    ax.legend(fontsize=7, ncol=2)
    ax.grid(alpha=0.3, axis="y")
    _save(fig, path)


def plot_diversity(diversity, path: Path) -> None:
    """Per-class intra-class diversity (synthetic/real) and coverage of each generator."""
    import pandas as pd

    plt = _pyplot()
    df = pd.DataFrame(diversity)
    keys = [k for k in ("diversity", "coverage", "agreement") if k in df.columns]
    fig, axes = plt.subplots(1, len(keys), figsize=(4.6 * len(keys), 3.4), squeeze=False)
    gens = sorted(df["generator"].unique())
    width = 0.8 / max(1, len(gens))
    for ax, key in zip(axes[0], keys):
        for i, gname in enumerate(gens):
            g = df[df["generator"] == gname].sort_values("class")
            ax.bar(g["class"] + i * width, g[key].astype(float), width, label=gname)
        ax.set_title(key)
        ax.set_xlabel("class")
        ax.axhline(1.0, color="k", lw=0.6)
        ax.grid(alpha=0.3, axis="y")
    axes[0][-1].legend(fontsize=7)
    _save(fig, path)
