"""Evaluate a conditional generator class by class, through a classifier trained on real MNIST.

Samples ``n_per_class`` images of every class (latents from a CPU ``torch.Generator`` seeded
with ``seed``), embeds them and the real test set with the evaluator classifier and reports,
overall and per class (see ``METRIC_HELP``): agreement (right digits), Frechet classifier
distance, precision/recall/density/coverage (sharp and varied), intra-class diversity, the
confusion matrix and, on request, CAS (a fresh classifier trained on the samples only, tested
on real test). The same metrics on a real-train subset of the same size give the ceiling row.
``write_report`` publishes results.json, report.md and PNG plots as one directory, atomically.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Union

import numpy as np
import torch

from . import metrics
from .models import module_device
from .classifier import (Classifier, ClassifierTrainConfig, features_and_predictions,
                         train_classifier)
from .data import load_split, per_class_subset, resolve_data_dir, to_model_images
from .errors import AugmentError, DataError
from .fileio import PathLike, atomic_directory

REPORT_FORMAT = "augment.evaluation"
FORMAT_VERSION = 1
REAL_BASELINE = "real train"
GENERATOR = "generator"
GRID_PER_CLASS = 10
CAS_STEPS = 1500  # fixed training budget of a CAS classifier, whatever the sample count

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
SUMMARY_COLUMNS = ("agreement", "frechet", "class_frechet", "precision", "recall", "density",
                   "coverage", "diversity", "cas")
PER_CLASS_COLUMNS = ("agreement", "frechet", "precision", "recall", "density", "coverage",
                     "diversity", "cas")

Device = Union[str, torch.device]
Log = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


# ---------------------------------------------------------------------------- the real side


@dataclass
class RealReference:
    """The real test split as the evaluator sees it: images ``(N, C, 32, 32)`` in [-1, 1],
    labels ``(N,)``, features ``(N, D)`` and predictions ``(N,)``, all on the CPU."""

    images: torch.Tensor
    labels: torch.Tensor
    features: torch.Tensor
    predictions: torch.Tensor
    num_classes: int
    data_dir: Path
    mnist: bool

    @property
    def classifier_accuracy(self) -> float:
        """The evaluator's accuracy on this real test set, in [0, 1]."""
        return float((self.predictions == self.labels).double().mean())


def load_reference(classifier: Classifier, data_dir: Optional[PathLike] = None,
                   mnist: bool = True) -> RealReference:
    """Load the real test split of ``data_dir`` (see ``data.resolve_data_dir``) and embed it."""
    directory = resolve_data_dir(data_dir)
    images_u8, labels = load_split(directory, "test", mnist=mnist)
    num_classes = classifier.config.num_classes
    if int(labels.max()) >= num_classes:
        raise DataError(f"test labels reach {int(labels.max())} but the classifier has "
                        f"{num_classes} classes")
    images = to_model_images(images_u8)
    features, predictions = features_and_predictions(classifier, images)
    return RealReference(images, labels, features, predictions, num_classes, directory, mnist)


def real_train_subset(reference: RealReference, n_per_class: int, seed: int = 0
                      ) -> tuple[torch.Tensor, torch.Tensor]:
    """``n_per_class`` real training images per class (seeded): images ``(C*n, C, 32, 32)`` in
    [-1, 1] and labels ``(C*n,)``, on the CPU."""
    images_u8, labels = load_split(reference.data_dir, "train", mnist=reference.mnist)
    keep = per_class_subset(labels, n_per_class, seed, reference.num_classes)
    return to_model_images(images_u8[keep]), labels[keep]


# --------------------------------------------------------------------------------- sampling




@torch.inference_mode()
def sample_generator(generator: torch.nn.Module, n_per_class: int, seed: int = 0,
                     batch_size: int = 500) -> tuple[torch.Tensor, torch.Tensor]:
    """``n_per_class`` samples of each class: images ``(C*n, channels, 32, 32)`` float32 in
    [-1, 1] and labels ``(C*n,)`` (class-major: n of class 0, then class 1, ...), on the CPU.

    All latents are drawn up front from a CPU ``torch.Generator`` seeded with ``seed``, so the
    samples do not depend on the batch size or the device; the generator runs in eval mode.
    """
    if n_per_class < 1:
        raise AugmentError(f"n_per_class must be >= 1, got {n_per_class}")
    cfg = generator.config
    device = module_device(generator)
    labels = torch.arange(cfg.num_classes).repeat_interleave(n_per_class)
    z = torch.randn(len(labels), cfg.z_dim, generator=torch.Generator().manual_seed(seed))
    was_training = generator.training
    generator.eval()
    try:
        images = [generator(z[i:i + batch_size].to(device), labels[i:i + batch_size].to(device))
                  .float().cpu() for i in range(0, len(labels), batch_size)]
    finally:
        generator.train(was_training)
    images = torch.cat(images)
    if not torch.isfinite(images).all():
        raise AugmentError("the generator produced NaN or infinite pixels")
    return images, labels


# ---------------------------------------------------------------------------------- scoring


def evaluate_samples(images: torch.Tensor, labels: torch.Tensor, classifier: Classifier,
                     reference: RealReference, k: int = 5, seed: int = 0, cas: bool = False,
                     cas_steps: int = CAS_STEPS, log: Log = _quiet) -> dict:
    """All metrics of a labelled set (images as the classifier takes them, labels ``(N,)`` =
    the class each image is meant to show) against ``reference``. Returns
    ``{"count", "overall": {column: float}, "per_class": {column: [C floats]},
    "confusion_matrix": C x C ints}``; NaN where a value is undefined (too few samples)."""
    started = time.time()
    num_classes = reference.num_classes
    labels = labels.cpu().long()
    channels = images.shape[1] if images.dim() == 4 else 1
    if channels != classifier.config.channels:
        raise AugmentError(f"images have {channels} channels but the evaluator takes "
                           f"{classifier.config.channels}")
    log(f"embedding {len(labels)} images")
    feats, preds = features_and_predictions(classifier, images)
    real_feats, real_labels = reference.features, reference.labels

    agreement = metrics.classifier_agreement(preds, labels, num_classes)
    class_frechet = metrics.per_class_frechet(feats, labels, real_feats, real_labels, num_classes)
    log("precision/recall/density/coverage")
    overall_prdc = metrics.prdc(real_feats, feats, k=k)
    class_prdc = metrics.per_class_prdc(real_feats, real_labels, feats, labels, num_classes, k=k)
    diversity = metrics.intra_class_diversity(real_feats, real_labels, feats, labels,
                                              num_classes, seed=seed)
    overall = {
        "agreement": agreement["overall"],
        "frechet": metrics.frechet_distance(feats, real_feats),
        "class_frechet": _nanmean(class_frechet),
        **overall_prdc,
        "diversity": _nanmean(diversity),
    }
    per_class = {"agreement": agreement["per_class"], "frechet": class_frechet,
                 **{key: [row[key] for row in class_prdc] for key in metrics.PRDC_KEYS},
                 "diversity": diversity}
    if cas:
        log(f"CAS: training a classifier on the {len(labels)} images ({cas_steps} steps)")
        score = cas_score(images, labels, classifier, reference, steps=cas_steps, seed=seed)
        overall["cas"], per_class["cas"] = score["overall"], score["per_class"]
    return {"count": int(len(labels)), "overall": overall, "per_class": per_class,
            "confusion_matrix": metrics.confusion_matrix(labels, preds, num_classes).tolist(),
            "seconds": round(time.time() - started, 2)}


def cas_score(images: torch.Tensor, labels: torch.Tensor, classifier: Classifier,
              reference: RealReference, steps: int = CAS_STEPS, seed: int = 0,
              device: Optional[Device] = None) -> dict:
    """Classification accuracy score: train a fresh classifier of ``classifier``'s architecture
    on ``images``/``labels`` only (``steps`` steps, seeded), test it on the real test set.
    Returns ``{"overall": float in [0, 1], "per_class": C floats}``."""
    device = device or module_device(classifier)
    model, _ = train_classifier(images, labels, classifier.config,
                                ClassifierTrainConfig(steps=steps, seed=seed), device=device)
    preds = features_and_predictions(model, reference.images)[1]
    return metrics.classifier_agreement(preds, reference.labels, reference.num_classes)


def _nanmean(values: list) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return float(np.mean(finite)) if finite else math.nan


def evaluate_generator(generator: torch.nn.Module, n_per_class: int = 1000, seed: int = 0,
                       classifier: Optional[Classifier] = None,
                       data_dir: Optional[PathLike] = None, cas: bool = False,
                       device: Optional[Device] = None, reference: Optional[RealReference] = None,
                       mnist: bool = True, k: int = 5, cas_steps: int = CAS_STEPS,
                       log: Log = _quiet) -> dict:
    """Metrics (see :func:`evaluate_samples`) of ``n_per_class`` seeded samples per class of a
    conditional generator (``generator(z, labels)``, ``generator.config``) against the real
    test set. ``classifier`` defaults to the shipped evaluator on ``device`` (default: the
    generator's device); ``reference`` (from :func:`load_reference`) skips re-embedding."""
    classifier, reference = _prepare(classifier, reference, data_dir, mnist,
                                     device or module_device(generator))
    _check_classes(generator.config.num_classes, reference.num_classes)
    log(f"sampling {n_per_class} images per class")
    images, labels = sample_generator(generator, n_per_class, seed)
    return evaluate_samples(images, labels, classifier, reference, k, seed, cas, cas_steps, log)


def evaluate_real_baseline(n_per_class: int = 1000, seed: int = 0,
                           classifier: Optional[Classifier] = None,
                           data_dir: Optional[PathLike] = None, cas: bool = False,
                           device: Device = "cpu", reference: Optional[RealReference] = None,
                           mnist: bool = True, k: int = 5, cas_steps: int = CAS_STEPS,
                           log: Log = _quiet) -> dict:
    """The same metrics for ``n_per_class`` seeded real training images per class against
    real test: the ceiling a perfect generator would reach at this sample size."""
    classifier, reference = _prepare(classifier, reference, data_dir, mnist, device)
    log(f"real baseline: {n_per_class} training images per class")
    images, labels = real_train_subset(reference, n_per_class, seed)
    return evaluate_samples(images, labels, classifier, reference, k, seed, cas, cas_steps, log)


def _prepare(classifier: Optional[Classifier], reference: Optional[RealReference],
             data_dir: Optional[PathLike], mnist: bool, device: Device
             ) -> tuple[Classifier, RealReference]:
    if classifier is None:
        from .classifier import default_classifier

        classifier = default_classifier(device)
    if reference is None:
        reference = load_reference(classifier, data_dir, mnist)
    return classifier, reference


def _check_classes(generator_classes: int, real_classes: int) -> None:
    if generator_classes != real_classes:
        raise AugmentError(f"the generator has {generator_classes} classes but the evaluator "
                           f"and real data have {real_classes}")


# ----------------------------------------------------------------------------------- tables


def summary_table(results: dict):
    """pandas DataFrame: one row per evaluated set (``results`` maps name -> result dict),
    the overall metrics as columns (``cas`` only when computed)."""
    import pandas as pd

    rows = {name: {c: r["overall"].get(c, math.nan) for c in SUMMARY_COLUMNS}
            for name, r in results.items()}
    frame = pd.DataFrame.from_dict(rows, orient="index")
    return frame.dropna(axis=1, how="all") if "cas" in frame else frame


def per_class_table(result: dict):
    """pandas DataFrame: one row per class, the per-class metrics as columns."""
    import pandas as pd

    columns = {c: result["per_class"][c] for c in PER_CLASS_COLUMNS if c in result["per_class"]}
    frame = pd.DataFrame(columns)
    frame.index.name = "class"
    return frame


def format_table(frame) -> str:
    """Plain-text table with 4 significant decimals, as printed on stdout."""
    return frame.to_string(float_format=lambda v: f"{v:.4f}", na_rep="nan")


def markdown_table(frame, index_name: str = "") -> str:
    """GitHub-flavoured markdown of a DataFrame (no third-party dependency)."""
    header = [index_name or (frame.index.name or "")] + [str(c) for c in frame.columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, row in frame.iterrows():
        cells = [str(name)] + [_cell(v) for v in row.tolist()]
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
    if not out_dir.exists():
        return out_dir
    if not out_dir.is_dir():
        raise AugmentError(f"output path exists and is not a directory: {out_dir}")
    if not any(out_dir.iterdir()):
        return out_dir
    if not overwrite:
        raise AugmentError(f"output directory {out_dir} is not empty; pass --overwrite or "
                           f"choose another")
    if not (out_dir / "results.json").is_file():
        raise AugmentError(f"refusing to overwrite {out_dir}: it is not an evaluation report "
                           f"directory (no results.json)")
    return out_dir


def write_report(report: dict, out_dir: PathLike, grid: Optional[torch.Tensor] = None,
                 overwrite: bool = False) -> Path:
    """Publish ``out_dir`` with results.json, report.md, per_class.png, confusion.png and
    (given ``grid``, images ``(classes, per_class, channels, 32, 32)``) samples.png, one row
    per class. The files are
    written into a temporary sibling directory that is then renamed, so ``out_dir`` appears
    complete or not at all."""
    out_dir = check_out_dir(out_dir, overwrite)
    with atomic_directory(out_dir, overwrite) as tmp:
        (tmp / "results.json").write_text(json.dumps(_json_safe(report), indent=2) + "\n")
        images = {"per_class": "per_class.png", "confusion": "confusion.png"}
        if grid is not None:
            from .visualize import save_grid

            save_grid(grid.flatten(0, 1), tmp / "samples.png", nrow=grid.shape[1])
            images["samples"] = "samples.png"
        _plot_per_class(report, tmp / images["per_class"])
        _plot_confusion(report, tmp / images["confusion"])
        (tmp / "report.md").write_text(report_markdown(report, images))
    return out_dir


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
    ``per_class``/``confusion``/``samples`` to file names to embed."""
    import pandas as pd

    results = report["results"]
    settings = report["settings"]
    gen, clf = report.get("generator", {}), report["classifier"]
    lines = [f"# Evaluation of `{gen.get('path', 'generator')}`", ""]
    if gen.get("sha256"):
        lines.append(f"- generator: `{gen['path']}` (SHA-256 `{gen['sha256'][:16]}`), "
                     f"config `{json.dumps(gen.get('model_config', {}), sort_keys=True)}`")
    lines += [
        f"- evaluator: `{clf['path']}` (SHA-256 `{clf['sha256'][:16]}`), accuracy on real test "
        f"{clf['test_accuracy']:.4f}",
        f"- real data: `{report['data']['dir']}` ({report['data']['test_images']} test images)",
        f"- {settings['n_per_class']} images per class, seed {settings['seed']}, PRDC k = "
        f"{settings['k']}, CAS: " + (f"{settings['cas_steps']} steps" if settings["cas"] else "no"),
        f"- wall time {report['seconds']:.1f} s",
        "", "## Summary", "",
        f"`{REAL_BASELINE}` is {settings['n_per_class']} real training images per class on the "
        f"same metrics: the ceiling.", "",
        markdown_table(summary_table(results), "set"), "",
    ]
    for name, result in results.items():
        lines += [f"## Per class: {name}", "", markdown_table(per_class_table(result), "class"), ""]
    if GENERATOR in results:
        matrix = pd.DataFrame(results[GENERATOR]["confusion_matrix"])
        lines += ["## Confusion matrix: generator", "",
                  "Rows: the class the generator was asked for; columns: the evaluator's "
                  "prediction.", "", markdown_table(matrix, "asked \\ seen"), ""]
    lines += ["## Metrics", ""]
    lines += [f"- **{name}**: {text}" for name, text in METRIC_HELP.items()
              if name != "cas" or settings["cas"]]
    lines.append("")
    titles = {"per_class": "Per-class metrics", "confusion": "Confusion matrix",
              "samples": "Samples (row = class)"}
    for key, file in (images or {}).items():
        lines += [f"## {titles[key]}", "", f"![{titles[key]}]({file})", ""]
    return "\n".join(lines)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _plot_per_class(report: dict, path: Path) -> None:
    """Grouped bars per class, one panel per metric, one bar colour per evaluated set."""
    plt = _pyplot()
    results = report["results"]
    columns = [c for c in PER_CLASS_COLUMNS
               if any(c in r["per_class"] for r in results.values())]
    num_classes = len(next(iter(results.values()))["per_class"]["agreement"])
    cols = 4
    rows = math.ceil(len(columns) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3 * rows), squeeze=False)
    width = 0.8 / len(results)
    x = np.arange(num_classes)
    for ax, column in zip(axes.flat, columns):
        for i, (name, result) in enumerate(results.items()):
            values = np.array(result["per_class"].get(column, [math.nan] * num_classes), float)
            ax.bar(x + (i - (len(results) - 1) / 2) * width, values, width, label=name)
        ax.set_title(column)
        ax.set_xticks(x)
        ax.set_xlabel("class")
        ax.grid(axis="y", alpha=0.3)
    for ax in list(axes.flat)[len(columns):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=90)
    plt.close(fig)


def _plot_confusion(report: dict, path: Path) -> None:
    """Row-normalised confusion matrix of the first evaluated set, counts written in."""
    plt = _pyplot()
    name, result = next(iter(report["results"].items()))
    counts = np.array(result["confusion_matrix"], dtype=float)
    shares = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(6, 5.2))
    image = ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    for (row, col), count in np.ndenumerate(counts):
        if count:
            ax.text(col, row, f"{int(count)}", ha="center", va="center", fontsize=7,
                    color="white" if shares[row, col] > 0.5 else "black")
    ax.set_xlabel("predicted by the evaluator")
    ax.set_ylabel("class asked for")
    ax.set_xticks(range(len(counts)))
    ax.set_yticks(range(len(counts)))
    ax.set_title(f"confusion matrix: {name}")
    fig.colorbar(image, ax=ax, fraction=0.046)
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=90)
    plt.close(fig)


# ------------------------------------------------------------------------------ end to end


def run_evaluation(generator_path: PathLike, out_dir: PathLike, n_per_class: int = 1000,
                   seed: int = 0, cas: bool = False, cas_steps: int = CAS_STEPS, k: int = 5,
                   classifier_path: Optional[PathLike] = None,
                   data_dir: Optional[PathLike] = None, mnist: bool = True,
                   device: Device = "cpu", overwrite: bool = False, log: Log = _quiet) -> dict:
    """``augment evaluate``: load the generator file (or checkpoint) and the evaluator, score
    the generator and the real baseline, write the report directory; returns the report."""
    from .checkpoint import load_generator
    from .classifier import DEFAULT_WEIGHTS, load_classifier, load_verified_classifier
    from .fileio import sha256_file

    started = time.time()
    if n_per_class <= k:
        raise AugmentError(f"n_per_class ({n_per_class}) must exceed k ({k}) for per-class "
                           f"precision/recall/density/coverage")
    out_dir = check_out_dir(out_dir, overwrite)  # fail before the work, not after
    generator = load_generator(generator_path, device)
    if classifier_path is None:
        classifier_path = DEFAULT_WEIGHTS
        classifier, _ = load_verified_classifier(classifier_path, device)
    else:
        classifier = load_classifier(classifier_path, device)
    log("embedding the real test set")
    reference = load_reference(classifier, data_dir, mnist)
    _check_classes(generator.config.num_classes, reference.num_classes)

    real_images, real_labels = real_train_subset(reference, n_per_class, seed)  # fails early

    log(f"sampling {n_per_class} images per class")
    images, labels = sample_generator(generator, n_per_class, seed)
    results = {GENERATOR: evaluate_samples(images, labels, classifier, reference, k, seed, cas,
                                           cas_steps, log)}
    log(f"real baseline: {n_per_class} training images per class")
    results[REAL_BASELINE] = evaluate_samples(real_images, real_labels, classifier, reference, k,
                                              seed, cas, cas_steps, log)
    grid = images.view(reference.num_classes, n_per_class, *images.shape[1:])[:, :GRID_PER_CLASS]

    report = {
        "format": REPORT_FORMAT,
        "format_version": FORMAT_VERSION,
        "generator": {"path": str(generator_path), "sha256": sha256_file(generator_path),
                      "model_config": _asdict(generator.config)},
        "classifier": {"path": str(classifier_path), "sha256": sha256_file(classifier_path),
                       "test_accuracy": reference.classifier_accuracy},
        "data": {"dir": str(reference.data_dir), "test_images": int(len(reference.labels))},
        "settings": {"n_per_class": n_per_class, "seed": seed, "k": k, "cas": cas,
                     "cas_steps": cas_steps if cas else None, "device": str(device)},
        "results": results,
        "metrics": METRIC_HELP,
    }
    report["seconds"] = round(time.time() - started, 2)
    write_report(report, out_dir, grid, overwrite)
    return report


def _asdict(cfg) -> dict:
    import dataclasses

    return dataclasses.asdict(cfg)
