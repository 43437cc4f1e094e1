"""Tables and plots of a longtail grid (rows as the runner writes them to results.csv):
summary.md (mean ± std over seeds; paired gains over the best non-generative baseline),
diversity.csv, and the plots balanced_accuracy.png, recall_vs_count.png and
rare_class_samples.png."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import pandas as pd
import torch
from matplotlib.figure import Figure

from augment.checkpoint import load_generator
from augment.data.real import RealMNIST
from augment.downstream.longtail_grid import RARE, rarest_classes
from augment.downstream.methods import METHODS, methods_of
from augment.downstream.records import REAL_CEILING
from augment.evaluation.report import labelled_classes, markdown_table
from augment.fileio import atomic_path, atomic_write_text
from augment.visualize import class_grid, grid_image

SCORES = {"test_accuracy": "accuracy", "balanced_accuracy": "balanced accuracy", "worst_recall": "worst-class recall",
          "rare_recall": f"mean recall, {RARE} rarest classes"}
SAMPLES_SHOWN = 8  # images per row of the rare-class figure


def label(method: str) -> str:
    """How tables and plots name a method (the method table's label)."""
    return METHODS[method].label if method in METHODS else method


def rank(method: str) -> int:
    """A method's place in tables and plots: the method table's order, whatever order the rows
    came in or --methods named them; unknown methods last."""
    order = methods_of("longtail")
    return order.index(method) if method in order else len(order)


def longtail_frame(rows: list[dict]) -> pd.DataFrame:
    """results.csv rows as a frame: scores in percent, a display name per (method, regime)."""
    df = pd.DataFrame(rows)
    for k in list(SCORES) + [c for c in df.columns if c.startswith("recall_")]:
        df[k] = df[k].astype(float) * 100
    df["imbalance_ratio"] = df["imbalance_ratio"].astype(float)
    df["seed"] = df["seed"].astype(int)
    df["name"] = df.apply(lambda r: label(r["method"])
                          + ("" if r["regime"] == "-" else f" ({r['regime']})"), axis=1)
    return df


def _cell(mean: float, std: float, count: int, signed: bool = False) -> str:
    value = f"{mean:+.2f}" if signed else f"{mean:.2f}"
    return f"{value} ± {std:.2f}" if count > 1 else f"{value} (1 seed)"


def score_table(df: pd.DataFrame) -> pd.DataFrame:
    """Mean ± std over seeds of every score, one row per (rho, method, regime)."""
    regimes = {"-": 0, "fair": 1, "shipped": 2}
    out = []
    for (rho, method, regime), g in df.groupby(["imbalance_ratio", "method", "regime"]):
        row = {"rho": f"{rho:g}", "method": label(method), "regime": regime,
               "seeds": g["seed"].nunique()}
        row.update({label: _cell(g[k].mean(), g[k].std(), len(g)) for k, label in SCORES.items()})
        out.append((rho, regimes.get(regime, 3), rank(method), row))
    return pd.DataFrame([r for *_, r in sorted(out, key=lambda t: t[:3])])


def best_baseline(df: pd.DataFrame) -> dict:
    """{rho: the non-generative method with the highest mean balanced accuracy}."""
    base = df[df["regime"] == "-"]
    means = base.groupby(["imbalance_ratio", "method"])["balanced_accuracy"].mean().reset_index()
    return {rho: g.sort_values("balanced_accuracy", ascending=False)["method"].iloc[0]
            for rho, g in means.groupby("imbalance_ratio")}


def paired_gains(df: pd.DataFrame, baselines: dict) -> pd.DataFrame:
    """Each synthetic cell minus the same rho's and seed's best-baseline cell, in points:
    balanced accuracy and the rarest classes' recall, mean ± std over seeds."""
    out = []
    for rho, method in sorted(baselines.items()):
        base = df[(df["imbalance_ratio"] == rho) & (df["method"] == method) & (df["regime"] == "-")]
        base = base.set_index("seed")
        cells = df[(df["imbalance_ratio"] == rho) & (df["regime"] != "-")]
        groups = sorted(cells.groupby(["method", "regime"]),
                        key=lambda kv: (rank(kv[0][0]), kv[0][1]))
        for (m, regime), g in groups:
            g = g.set_index("seed").join(base[["balanced_accuracy", "rare_recall"]].add_suffix("_base"), how="inner")
            if not len(g):
                continue
            bal = g["balanced_accuracy"] - g["balanced_accuracy_base"]
            rare = g["rare_recall"] - g["rare_recall_base"]
            out.append({"rho": f"{rho:g}", "method": label(m), "regime": regime,
                        "over": label(method),
                        "balanced accuracy gain": _cell(bal.mean(), bal.std(), len(g), signed=True),
                        f"rarest-{RARE} recall gain": _cell(rare.mean(), rare.std(), len(g), signed=True),
                        "seeds above": f"{int((bal > 0).sum())} of {len(g)}"})
    return pd.DataFrame(out)


def diversity_tables(diversity: list[dict], counts: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(per class, rare vs frequent) tables of the fair generators' diversity rows; ``counts``
    {generator name: training images per class} (the ceiling has none)."""
    div = pd.DataFrame(diversity)
    div["train_images"] = [str(counts[g][c]) if g in counts else "-" for g, c in zip(div["generator"], div["class"])]
    cols = [c for c in ("agreement", "coverage", "frechet", "diversity") if c in div.columns]
    per_class = div[["generator", "train_images", *cols]].assign(**{"class": labelled_classes(div)})[
        ["generator", "class", "train_images", *cols]]
    groups = []
    for name, g in div.groupby("generator", sort=True):
        if name in counts:
            rare = rarest_classes(counts[name])
            frequent = rarest_classes([-n for n in counts[name]])
            for label, classes in ((f"{RARE} rarest", rare), (f"{RARE} most frequent", frequent)):
                part = g[g["class"].isin(classes)]
                groups.append({"generator": name, "classes": f"{label} ({', '.join(map(str, sorted(classes)))})",
                               **{c: part[c].mean() for c in cols}})
        else:
            groups.append({"generator": name, "classes": "all", **{c: g[c].mean() for c in cols}})
    return per_class, pd.DataFrame(groups)


def _markdown(df: pd.DataFrame) -> str:
    first = df.columns[0]
    return markdown_table(df.set_index(first), index_name=str(first))


def write_summary(out_dir: Path, grid, rows: list[dict], diversity: list[dict], fair_generators: dict,
                  data_dir: Optional[Path], dataset: str) -> None:
    """summary.md, diversity.csv and the plots of a longtail grid. ``fair_generators``:
    {(subset, seed): generator file} of the fair generators there are."""
    if not rows:
        return
    fair_generators = {(subset.imbalance_ratio, seed): path for (subset, seed), path in fair_generators.items()}
    df = longtail_frame(rows)
    lines = ["# Long-tailed training sets: scores on the balanced real test set (%), mean ± std over seeds", "",
             f"Rows: imbalance ratio rho (MNIST-LT, n_max = {grid.n_max}), method, generator regime ('-': no "
             f"synthetic data). Balanced accuracy is the mean per-class recall; the rarest classes are the {RARE} "
             f"with the fewest training images.{_settings_note(rows)}", "", _markdown(score_table(df))]
    baselines = best_baseline(df)
    gains = paired_gains(df, baselines)
    if len(gains):
        lines += ["", "# Gains over the best non-generative baseline (points), paired by seed", "",
                  "For each rho, the baseline is the method without synthetic data with the highest mean balanced "
                  "accuracy; each synthetic run minus that baseline's run of the same seed (the same real images).",
                  "", _markdown(gains)]
    counts = {}
    for (rho, seed), _ in fair_generators.items():
        row = next((r for r in rows if float(r["imbalance_ratio"]) == rho and int(r["seed"]) == seed), None)
        if row is not None:
            counts[grid.generator_name(grid.subset(rho), seed)] = _row_counts(row)
    if diversity:
        atomic_write_text(out_dir / "diversity.csv", pd.DataFrame(diversity).to_csv(index=False))
        per_class, grouped = diversity_tables(diversity, counts)
        lines += ["", f"# The generators' samples, class by class ({grid.diversity_per_class} per class)", "",
                  f"Scored by the evaluator (the shipped one unless --classifier); read each "
                  f"against '{REAL_CEILING}', real training images scored "
                  "the same way at the same n. Rarest vs most frequent classes of each fair generator's training set:",
                  "", _markdown(grouped), "", "Per class (train_images: the generator's training images of the class):",
                  "", _markdown(per_class)]
    atomic_write_text(out_dir / "summary.md", "\n".join(lines) + "\n")
    plot_balanced_accuracy(df, out_dir / "balanced_accuracy.png")
    plot_recall_vs_count(df, out_dir / "recall_vs_count.png")
    if fair_generators:
        plot_rare_class_samples(grid, fair_generators, data_dir, dataset, out_dir / "rare_class_samples.png")


def _settings_note(rows: list[dict]) -> str:
    """' In these rows the logit adjustment's tau is 0.5 and ...' for the settings the rows used."""
    notes = []
    for key, what in (("logit_adjust_tau", "the logit adjustment's tau"), ("synthetic_ratio", "the synthetic ratio"),
                      ("top_up_target", "the top-up target (images per class)")):
        values = sorted({float(r[key]) for r in rows if r.get(key) not in ("", None)})
        if values:
            notes.append(f"{what} is {', '.join(f'{v:g}' for v in values)}")
    return f" In these rows {' and '.join(notes)}." if notes else ""


def _row_counts(row: dict) -> list[int]:
    return [int(row[f"count_{c}"]) for c in range(sum(1 for k in row if k.startswith("count_")))]


def _save(fig: Figure, path: Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")


def plot_balanced_accuracy(df: pd.DataFrame, path: Path) -> None:
    """One panel per rho: each method's balanced accuracy, mean over seeds, std as error bars."""
    rhos = sorted(df["imbalance_ratio"].unique())
    fig = Figure(figsize=(5.2 * len(rhos), 0.32 * df["name"].nunique() + 1.5))
    axes = fig.subplots(1, len(rhos), squeeze=False, sharey=True)[0]
    names = sorted(df["name"].unique(),
                   key=lambda n: (rank(df[df["name"] == n]["method"].iloc[0]), n))
    colours = {"-": "0.55", "fair": "C0", "shipped": "C1"}
    for ax, rho in zip(axes, rhos):
        part = df[df["imbalance_ratio"] == rho]
        stats = part.groupby("name")["balanced_accuracy"].agg(["mean", "std", "count"])
        ys = list(range(len(names)))[::-1]
        for y, name in zip(ys, names):
            if name not in stats.index:
                continue
            regime = part[part["name"] == name]["regime"].iloc[0]
            s = stats.loc[name]
            ax.barh(y, s["mean"], xerr=s["std"] if s["count"] > 1 else None, color=colours.get(regime, "C2"),
                    capsize=2)
        ax.set_yticks(ys, names, fontsize=8)
        lo = float(part["balanced_accuracy"].min())
        ax.set_xlim(max(0.0, lo - 3), 100)
        ax.set_title(f"rho = {rho:g}")
        ax.set_xlabel("balanced accuracy (%)")
        ax.grid(alpha=0.3, axis="x")
    fig.text(0.5, -0.02, "mean over seeds, error bars: std; grey: no synthetic data, blue: fair generator, "
             "orange: shipped generator", ha="center", va="top", fontsize=7)
    _save(fig, path)


def plot_recall_vs_count(df: pd.DataFrame, path: Path) -> None:
    """Per-class test recall against that class's training images, one panel per rho: ERM, the
    best baseline and the synthetic methods, mean over seeds."""
    rhos = sorted(df["imbalance_ratio"].unique())
    fig = Figure(figsize=(5.2 * len(rhos), 3.8))
    axes = fig.subplots(1, len(rhos), squeeze=False, sharey=True)[0]
    baselines = best_baseline(df)
    classes = sorted(int(c[len("recall_"):]) for c in df.columns if c.startswith("recall_"))
    for ax, rho in zip(axes, rhos):
        part = df[df["imbalance_ratio"] == rho]
        best = baselines.get(rho, "erm")
        shown = part[(part["method"].isin(["erm", best]) & (part["regime"] == "-")) | (part["regime"] != "-")]
        for i, (name, g) in enumerate(sorted(shown.groupby("name"))):
            points = sorted((g[f"count_{c}"].astype(int).mean(), g[f"recall_{c}"].mean()) for c in classes)
            ax.plot([p[0] for p in points], [p[1] for p in points], "o-" if "(" in name else "s--", ms=3, lw=1,
                    label=name, color=f"C{i % 10}")
        ax.set_xscale("log")
        ax.set_title(f"rho = {rho:g}")
        ax.set_xlabel("training images of the class")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("test recall of the class (%)")
    axes[-1].legend(fontsize=6, loc="lower right")
    _save(fig, path)


@torch.inference_mode()
def plot_rare_class_samples(grid, fair_generators: dict, data_dir: Optional[Path], dataset: str, path: Path) -> None:
    """For each rho (the lowest seed with a fair generator): the rarest classes' real training
    images (all of them when fewer) next to the fair generator's samples of the class."""
    chosen = {}
    for rho, seed in sorted(fair_generators):
        chosen.setdefault(rho, seed)
    fig = Figure(figsize=(7.5, 1.6 * len(chosen) * RARE / 3 + 0.6))
    axes = fig.subplots(len(chosen), 1, squeeze=False)[:, 0]
    for ax, (rho, seed) in zip(axes, sorted(chosen.items())):
        real = RealMNIST(data_dir, train=True, subset=grid.subset(rho), seed=seed, dataset=dataset)
        counts = torch.bincount(real.targets, minlength=real.num_classes).tolist()
        generator = load_generator(fair_generators[(rho, seed)])
        rows, labels = [], []
        for c in rarest_classes(counts):
            mine = real.data[real.targets == c][:SAMPLES_SHOWN]
            pad = torch.full((SAMPLES_SHOWN - len(mine), *mine.shape[1:]), 1.0)  # white where there are fewer
            fake = class_grid(generator, per_class=SAMPLES_SHOWN, seed=seed, classes=[c])
            rows.append(torch.cat([mine, pad, fake]))
            labels.append(f"class {c} ({counts[c]} real)")
        image = grid_image(torch.cat(rows), nrow=2 * SAMPLES_SHOWN)
        ax.imshow(image, cmap="gray", vmin=0, vmax=255)
        height = image.size[1] / len(rows)
        ax.set_yticks([height * (k + 0.5) for k in range(len(rows))], labels, fontsize=7)
        ax.set_xticks([image.size[0] * 0.25, image.size[0] * 0.75], ["real training images", "fair generator"],
                      fontsize=7)
        ax.set_title(f"rho = {rho:g}, seed {seed}: the {RARE} rarest classes", fontsize=8)
    _save(fig, path)
