"""Evaluation results as tables, markdown and plots, published as one report directory.

``summary_table``/``per_class_table`` turn results (see ``augment.evaluation``) into pandas
frames; ``write_report`` writes results.json, report.md, per_class.png, confusion.png and an
optional sample grid into a temporary sibling directory that is renamed into place, so a report
directory appears complete or not at all.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd
import torch
from matplotlib.figure import Figure

from augment.fileio import PathLike, atomic_directory, check_directory_target
from augment.images import BACKGROUND
from augment.visualize import save_grid

REAL_BASELINE = "real train"
GENERATOR = "generator"
SAMPLES = "samples"  # the judged set of ``augment evaluate --samples``

# Column -> what it measures and which way is better.
METRIC_HELP = {
    "agreement": "share of samples the evaluator classifies as their conditioned class "
                 "(right digits; higher is better)",
    "frechet": "Frechet distance between Gaussians fitted to evaluator features of the set and "
               "of real test (realism and variety; lower is better)",
    "class_frechet": "mean over classes of the per-class Frechet distance (lower is better)",
    "precision": "share of samples inside the k-NN balls of real test features "
                 "(realistic, sharp; higher is better)",
    "recall": "share of real test inside the k-NN balls of the samples "
              "(variety; higher is better)",
    "density": "how many real balls hold a sample, over k (about 1 when samples fall like real "
               "ones; above 1 = crowding where real data is dense)",
    "coverage": "share of real test whose own ball holds a sample (variety; higher is better)",
    "diversity": "mean pairwise feature distance within a class, samples over real test "
                 "(1 = as varied as real, about 0 = mode collapse)",
    "cas": "classification accuracy score: a fresh classifier trained on the set only, "
           "accuracy on real test (per class: on the real test images of that class; higher "
           "is better)",
}
# Keys of results.json's "memorization" (augment.evaluation.memorization, .audit).
MEMORIZATION_HELP = {
    "ct": "data-copying statistic C_T (Meehan et al. 2020): z-score of how much closer the samples lie to their "
          "nearest training image than held-out real images do, averaged over k-means cells of the training set "
          "(about 0: as far as fresh real data; negative: closer, copying; below -3 no accident; positive: farther)",
    "authenticity": "share of samples not closer to their nearest training image than that image is to its own "
                    "nearest training neighbour (Alaa et al. 2022; compare held_out_authenticity, fresh real data's)",
    "near_duplicate_fraction": "share of samples within the near-duplicate threshold of a training image; the "
                               "threshold of a class is the 1% quantile of held-out real images' nearest-training "
                               "distances, so fresh real data scores about 0.01",
    "held_out_authenticity": "authenticity of the held-out real images themselves: the yardstick",
}
COPY_NEAR_DUPLICATES = 0.05  # the verdict "copies": 5x the near duplicates of fresh real data
COPY_CT = -3.0  # C_T at or below this: clearly closer to the training images than fresh real data
LEAN_CT = -1.0  # C_T at or below this: a little closer
SUMMARY_COLUMNS = ("agreement", "frechet", "class_frechet", "precision", "recall", "density",
                   "coverage", "diversity", "cas")
PER_CLASS_COLUMNS = ("agreement", "frechet", "precision", "recall", "density", "coverage",
                     "diversity", "cas")


# ----------------------------------------------------------------------------------- tables


def summary_table(results: dict):
    """pandas DataFrame: one row per evaluated set (``results`` maps name -> result dict),
    the overall metrics as columns (``cas`` only when computed)."""
    rows = {name: {c: r["overall"].get(c, math.nan) for c in SUMMARY_COLUMNS}
            for name, r in results.items()}
    frame = pd.DataFrame.from_dict(rows, orient="index")
    return frame.drop(columns="cas") if frame["cas"].isna().all() else frame


def per_class_table(result: dict, class_names: Optional[list] = None):
    """pandas DataFrame: one row per class, the per-class metrics as columns; rows labelled
    ``class_labels(class_names)`` ("3 dress"), or by number."""
    columns = {c: result["per_class"][c] for c in PER_CLASS_COLUMNS if c in result["per_class"]}
    frame = pd.DataFrame(columns)
    frame.index = class_labels(class_names, len(frame))
    frame.index.name = "class"
    return frame


def labelled_classes(frame: pd.DataFrame) -> pd.Series:
    """A table's ``class`` column as "3 dress" where its rows have a ``class_name``, else as is."""
    if "class_name" not in frame.columns:
        return frame["class"]
    return pd.Series([f"{int(c)} {n}" if isinstance(n, str) and n else c
                      for c, n in zip(frame["class"], frame["class_name"])], index=frame.index)


def class_labels(class_names: Optional[list], num_classes: int) -> list:
    """Row labels of C classes: "3 dress" where the data names its classes, else 0..C-1 (names
    that are just the numbers, as an IDX source's, add nothing)."""
    numbers = [str(c) for c in range(num_classes)]
    if not class_names or len(class_names) != num_classes or list(class_names) == numbers:
        return list(range(num_classes))
    return [f"{c} {name}" for c, name in enumerate(class_names)]


def format_table(frame) -> str:
    """Plain-text table with 4 significant decimals, as printed on stdout."""
    return frame.to_string(float_format=lambda v: f"{v:.4f}", na_rep="nan")


def markdown_table(frame, index_name: str = "") -> str:
    """GitHub-flavoured markdown of a DataFrame (no third-party dependency)."""
    header = [index_name or (frame.index.name or "")] + [str(c) for c in frame.columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, *values in frame.itertuples(index=True, name=None):  # keeps each column's type
        cells = [str(name)] + [_cell(v) for v in values]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _cell(value) -> str:
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.4f}"
    return str(value)


# ---------------------------------------------------------------------------------- reports


def check_out_dir(out_dir: PathLike, overwrite: bool = False) -> Path:
    """Raise AugmentError unless ``out_dir`` is absent, an empty directory, or (with
    ``overwrite``) a previous evaluation report directory."""
    out_dir = Path(out_dir)
    check_directory_target(out_dir, overwrite, _not_a_report)
    return out_dir


def _not_a_report(directory: Path) -> Optional[str]:
    if not (directory / "results.json").is_file():
        return "it is not an evaluation report directory (no results.json)"
    return None


def write_report(report: dict, out_dir: PathLike, grid: Optional[torch.Tensor] = None,
                 overwrite: bool = False, copies: Optional[torch.Tensor] = None) -> Path:
    """Publish ``out_dir`` with results.json, report.md, per_class.png, confusion.png,
    (given ``grid``, images ``(classes, per_class, channels, 32, 32)``) samples.png, one row
    per class, and (given ``copies``, images ``(rows, 1 + neighbours, channels, 32, 32)``)
    copies.png, each most-copied sample beside its nearest training images. The files are
    written into a temporary sibling directory that is then renamed, so ``out_dir`` appears
    complete or not at all."""
    out_dir = check_out_dir(out_dir, overwrite)
    with atomic_directory(out_dir, overwrite, _not_a_report) as tmp:
        (tmp / "results.json").write_text(json.dumps(_json_safe(report), indent=2) + "\n")
        images = {"per_class": "per_class.png", "confusion": "confusion.png"}
        if grid is not None:
            save_grid(grid.flatten(0, 1), tmp / "samples.png", nrow=grid.shape[1])
            images["samples"] = "samples.png"
        if copies is not None and len(copies):
            save_grid(copies.flatten(0, 1), tmp / "copies.png", nrow=copies.shape[1])
            images["copies"] = "copies.png"
        _plot_per_class(report, tmp / images["per_class"])
        _plot_confusion(report, tmp / images["confusion"])
        (tmp / "report.md").write_text(report_markdown(report, images))
    return out_dir


def sample_grid(images: torch.Tensor, labels: torch.Tensor, num_classes: int, per_class: int = 10) -> torch.Tensor:
    """The first images of each class ``(C, columns, ...)`` for samples.png, ``columns`` the
    largest class's count up to ``per_class``; a class short of them padded with background."""
    columns = min(per_class, int(torch.bincount(labels, minlength=num_classes).max()))
    grid = torch.full((num_classes, columns, *images.shape[1:]), BACKGROUND)
    for c in range(num_classes):
        first = images[labels == c][:columns]
        grid[c, :len(first)] = first
    return grid


def _json_safe(value):
    """``value`` with NaN/inf floats as None (strict JSON)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def report_markdown(report: dict, images: Optional[dict] = None) -> str:
    """The markdown of a report dict (see :func:`run_evaluation`); ``images`` maps
    ``per_class``/``confusion``/``samples``/``copies`` to file names to embed."""
    results = report["results"]
    settings = report["settings"]
    names = report.get("data", {}).get("class_names")
    gen, clf, samples = report.get("generator", {}), report["classifier"], report.get("samples")
    lines = [f"# Evaluation of `{samples['path'] if samples else gen.get('path', 'generator')}`", ""]
    if gen.get("sha256"):
        lines.append(f"- generator: `{gen['path']}` (SHA-256 `{gen['sha256'][:16]}`), "
                     f"config `{json.dumps(gen.get('model_config', {}), sort_keys=True)}`")
    if samples:
        lines.append(f"- samples: `{samples['path']}` ({samples['format']}, {samples['images']} images; per class "
                     f"{', '.join(map(str, samples['counts_per_class']))})")
    lines += [
        f"- evaluator: `{clf['path']}` (SHA-256 `{clf['sha256'][:16]}`), accuracy on real test "
        f"{clf['test_accuracy']:.4f}",
        f"- real data: `{report['data']['dir']}` ({report['data']['test_images']} test images)",
        f"- {settings['n_per_class']} images per class{' (real baseline)' if samples else ''}, seed "
        f"{settings['seed']}, PRDC k = {settings['k']}, CAS: "
        + (f"{settings['cas_steps']} steps" if settings["cas"] else "no"),
        f"- wall time {report['seconds']:.1f} s",
        "", "## Summary", "",
        f"`{REAL_BASELINE}` is {settings['n_per_class']} real training images per class on the "
        f"same metrics: the ceiling. The evaluator was trained on those images, so that row's "
        f"agreement is a little optimistic: on unseen real digits it is the evaluator's test "
        f"accuracy above.", "",
        markdown_table(summary_table(results), "set"), "",
    ]
    if report.get("memorization"):
        lines += memorization_markdown(report["memorization"], names)
    for name, result in results.items():
        lines += [f"## Per class: {name}", "", markdown_table(per_class_table(result, names), "class"), ""]
    judged = next(iter(results))
    matrix = pd.DataFrame(results[judged]["confusion_matrix"])
    matrix.index = class_labels(names, len(matrix))
    lines += [f"## Confusion matrix: {judged}", "",
              "Rows: the class each image is labelled with (asked of the generator); columns: the evaluator's "
              "prediction.", "", markdown_table(matrix, "asked \\ seen"), ""]
    lines += ["## Metrics", ""]
    lines += [f"- **{name}**: {text}" for name, text in METRIC_HELP.items()
              if name != "cas" or settings["cas"]]
    lines.append("")
    titles = {"per_class": "Per-class metrics", "confusion": "Confusion matrix",
              "samples": "Samples (row = class)",
              "copies": "The most-copied sample of each class (left) beside its nearest training images"}
    for key, file in (images or {}).items():
        lines += [f"## {titles[key]}", "", f"![{titles[key]}]({file})", ""]
    return "\n".join(lines)


def memorization_verdict(memorization: dict) -> str:
    """A plain-words verdict on a ``"memorization"`` dict (pixels first, then features)."""
    pixels, features = memorization, memorization.get("features", {})
    near, ct = pixels.get("near_duplicate_fraction", math.nan), pixels.get("ct", math.nan)
    feature_ct = features.get("ct", math.nan)
    if _finite(near) and near >= COPY_NEAR_DUPLICATES:
        return (f"copies its training images: {near:.0%} of the samples are near duplicates of one (fresh real "
                f"data: about 1%), C_T {ct:+.1f}")
    if _finite(ct) and ct <= COPY_CT:
        return (f"leans towards its training images: the samples lie closer to them than fresh real data does "
                f"(C_T {ct:+.1f} in pixels), though few are near duplicates ({near:.1%}; fresh real data: about 1%)")
    if _finite(feature_ct) and feature_ct <= COPY_CT:
        return (f"no copies in pixels (C_T {ct:+.1f}, {near:.1%} near duplicates), but in the evaluator's features "
                f"the samples sit closer to the training images than fresh real data (C_T {feature_ct:+.1f})")
    if not _finite(ct) and not _finite(near):
        return "undetermined: too few samples or held-out images per class for the audit"
    if _finite(ct) and ct <= LEAN_CT:
        return (f"no copies ({near:.1%} near duplicates; fresh real data: about 1%), the samples a little closer to "
                f"the training images than fresh real data (C_T {ct:+.1f} in pixels, {feature_ct:+.1f} in features)")
    return (f"no sign of copying: the samples lie no closer to the training images than fresh real data does "
            f"(C_T {ct:+.1f} in pixels, {feature_ct:+.1f} in features; {near:.1%} near duplicates)")


def memorization_markdown(memorization: dict, class_names: Optional[list] = None) -> list:
    """The report's memorization section, as lines."""
    training, held = memorization["training"], memorization["held_out"]
    spaces = {"pixels": memorization, "features": memorization.get("features", {})}
    frame = pd.DataFrame({space: {key: values.get(key, math.nan) for key in MEMORIZATION_HELP}
                          for space, values in spaces.items()}).T
    frame["cells used"] = [f"{v['cells']['used']}/{v['cells']['total']}" if "cells" in v else ""
                           for v in spaces.values()]
    per_class = pd.DataFrame({f"{space} {key}": values["per_class"][key]
                              for space, values in spaces.items() if "per_class" in values
                              for key in ("ct", "authenticity", "near_duplicate_fraction")})
    per_class.index = class_labels(class_names, len(per_class))
    lines = ["## Memorization", "", f"**Verdict: {memorization['verdict']}.**", "",
             f"Training images: the {training['images']} of the train split the generator learnt from (subset "
             f"`{training['subset']}`, seed {training['seed']}); in features, {training['feature_images']} of them. "
             f"Held-out real: the {held['images']} images of the real data's {held['split']}, never training "
             f"images. Nearest neighbours are searched within each class; pixels at the real data's size and grey "
             f"levels. Audit time {memorization['seconds']:.1f} s.", "",
             markdown_table(frame, "space"), ""]
    lines += [f"- **{key}**: {text}" for key, text in MEMORIZATION_HELP.items()]
    lines += ["", "Per class:", "", markdown_table(per_class, "class"), ""]
    return lines


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def _plot_per_class(report: dict, path: Path) -> None:
    """Grouped bars per class, one panel per metric, one bar colour per evaluated set."""
    results = report["results"]
    columns = [c for c in PER_CLASS_COLUMNS
               if any(c in r["per_class"] for r in results.values())]
    num_classes = len(next(iter(results.values()))["per_class"]["agreement"])
    cols = 4
    rows = math.ceil(len(columns) / cols)
    fig = Figure(figsize=(4 * cols, 3 * rows))
    axes = fig.subplots(rows, cols, squeeze=False)
    width = 0.8 / len(results)
    x = np.arange(num_classes)
    for ax, column in zip(axes.flat, columns):
        for i, (name, result) in enumerate(results.items()):
            values = np.array(result["per_class"].get(column, [math.nan] * num_classes), float)
            ax.bar(x + (i - (len(results) - 1) / 2) * width, values, width, label=name)
        ax.set_title(column)
        labels = [str(v) for v in class_labels(report.get("data", {}).get("class_names"), num_classes)]
        ax.set_xticks(x, labels, rotation=90 if " " in labels[0] else 0, fontsize=7)
        ax.set_xlabel("class")
        ax.grid(axis="y", alpha=0.3)
    for ax in list(axes.flat)[len(columns):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=90)


def _plot_confusion(report: dict, path: Path) -> None:
    """Row-normalised confusion matrix of the first evaluated set, counts written in."""
    name, result = next(iter(report["results"].items()))
    counts = np.array(result["confusion_matrix"], dtype=float)
    shares = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    fig = Figure(figsize=(6, 5.2))
    ax = fig.subplots()
    image = ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    for (row, col), count in np.ndenumerate(counts):
        if count:
            ax.text(col, row, f"{int(count)}", ha="center", va="center", fontsize=7,
                    color="white" if shares[row, col] > 0.5 else "black")
    ax.set_xlabel("predicted by the evaluator")
    ax.set_ylabel("class asked for")
    labels = [str(v) for v in class_labels(report.get("data", {}).get("class_names"), len(counts))]
    ax.set_xticks(range(len(counts)), labels, rotation=90 if " " in labels[0] else 0, fontsize=7)
    ax.set_yticks(range(len(counts)), labels, fontsize=7)
    ax.set_title(f"confusion matrix: {name}")
    fig.colorbar(image, ax=ax, fraction=0.046)
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=90)
