"""Evaluate a conditional generator class by class, through a classifier trained on real MNIST.

Samples ``n_per_class`` images of every class (latents from a CPU ``torch.Generator`` seeded
with ``seed``), embeds them and the real test set with the evaluator classifier and reports,
overall and per class (see ``METRIC_HELP``): agreement (right digits), Frechet classifier
distance, precision/recall/density/coverage (sharp and varied), intra-class diversity, the
confusion matrix and, on request, CAS (a fresh classifier trained on the samples only, tested
on real test). The same metrics on a real-train subset of the same size give the ceiling row.
``augment.evaluation.report`` turns the results into tables, markdown and plots (one report directory).
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Union

import numpy as np
import torch

from augment.checkpoint import load_generator
from augment.data.sources import dataset_name, load_labelled, source_path
from augment.data.subsets import per_class_subset
from augment.device import module_device
from augment.errors import AugmentError, ConfigError, DataError
from augment.evaluation import metrics
from augment.evaluation.classifier import Classifier, ClassifierTrainConfig, features_and_predictions, train_classifier
from augment.evaluation.classifier_files import (
    DEFAULT_WEIGHTS,
    default_classifier,
    load_classifier,
    load_verified_classifier,
)
from augment.evaluation.report import GENERATOR, METRIC_HELP, REAL_BASELINE, check_out_dir, write_report
from augment.fileio import PathLike, sha256_file
from augment.images import to_model_images

REPORT_FORMAT = "augment.evaluation"
FORMAT_VERSION = 1
GRID_PER_CLASS = 10
CAS_STEPS = 1500  # fixed training budget of a CAS classifier, whatever the sample count

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
    data_dir: Optional[Path]
    dataset: str = "mnist"
    class_names: Optional[list] = None

    @property
    def classifier_accuracy(self) -> float:
        """The evaluator's accuracy on this real test set, in [0, 1]."""
        return float((self.predictions == self.labels).double().mean())


def load_reference(classifier: Classifier, data_dir: Optional[PathLike] = None,
                   mnist: bool = True, dataset: Optional[str] = None) -> RealReference:
    """Load the real test split of a source (``augment.data.sources``: ``data_dir`` of kind
    ``dataset``, default MNIST, else IDX when not ``mnist``) and embed it."""
    dataset = dataset_name(dataset, mnist)
    test = load_labelled(data_dir, "test", dataset)
    images_u8, labels = test.images, test.labels
    num_classes = classifier.config.num_classes
    if int(labels.max()) >= num_classes:
        raise DataError(f"test labels reach {int(labels.max())} but the classifier has "
                        f"{num_classes} classes")
    images = to_model_images(images_u8)
    features, predictions = features_and_predictions(classifier, images)
    return RealReference(images, labels, features, predictions, num_classes,
                         Path(data_dir) if data_dir is not None else None, dataset, test.class_names)


def real_train_subset(reference: RealReference, n_per_class: int, seed: int = 0
                      ) -> tuple[torch.Tensor, torch.Tensor]:
    """``n_per_class`` real training images per class (seeded): images ``(C*n, C, 32, 32)`` in
    [-1, 1] and labels ``(C*n,)``, on the CPU."""
    train = load_labelled(reference.data_dir, "train", reference.dataset)
    images_u8, labels = train.images, train.labels
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
                       log: Log = _quiet, dataset: Optional[str] = None) -> dict:
    """Metrics (see :func:`evaluate_samples`) of ``n_per_class`` seeded samples per class of a
    conditional generator against the real test set, as ``augment evaluate`` reports them.

    Args:
        generator: a conditional generator module (``generator(z, labels)``, ``.config``),
            e.g. from ``augment.load_generator``.
        n_per_class: samples per class (latents from a CPU ``torch.Generator`` seeded with
            ``seed``, so the same on any device).
        seed: the seed of the latents (and of CAS training and diversity's subsampling).
        classifier: the evaluator; default the shipped one, on ``device``.
        data_dir: where the real test split is (default: ``$AUGMENT_DATA``, else the cache).
        cas: also train a classifier on the samples alone and test it on real test (slow).
        device: the evaluator's device (default: the generator's).
        reference: the real test set already embedded (:func:`load_reference`); skips it.
        mnist: check MNIST's checksums (False: any IDX data).
        dataset: the kind of source (``augment.data.sources``); overrides ``mnist``.
        k: neighbours of precision/recall/density/coverage.
        cas_steps: training steps of the CAS classifier.
        log: called with progress messages.

    Returns:
        ``{"count", "overall": {metric: float}, "per_class": {metric: [C floats]},
        "confusion_matrix", "seconds"}`` (metrics: ``augment.evaluation.report.METRIC_HELP``).
    """
    classifier, reference = _prepare(classifier, reference, data_dir, dataset_name(dataset, mnist),
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
                           log: Log = _quiet, dataset: Optional[str] = None) -> dict:
    """The same metrics for ``n_per_class`` seeded real training images per class against
    real test: the ceiling a perfect generator would reach at this sample size."""
    classifier, reference = _prepare(classifier, reference, data_dir, dataset_name(dataset, mnist), device)
    log(f"real baseline: {n_per_class} training images per class")
    images, labels = real_train_subset(reference, n_per_class, seed)
    return evaluate_samples(images, labels, classifier, reference, k, seed, cas, cas_steps, log)


def _prepare(classifier: Optional[Classifier], reference: Optional[RealReference],
             data_dir: Optional[PathLike], dataset: str, device: Device
             ) -> tuple[Classifier, RealReference]:
    _check_evaluator_fits(classifier is not None, dataset)
    if classifier is None:
        classifier = default_classifier(device)
    if reference is None:
        reference = load_reference(classifier, data_dir, dataset=dataset)
    return classifier, reference


def _check_evaluator_fits(classifier_given: bool, dataset: str) -> None:
    """The shipped evaluator knows MNIST's digits: other data needs its own classifier."""
    if not classifier_given and dataset in ("folder", "npz"):
        raise ConfigError("the shipped evaluator knows MNIST's digits; to evaluate on other data pass a classifier of "
                          "it (--classifier, made by augment train-classifier --dataset ...)")


def _check_classes(generator_classes: int, real_classes: int) -> None:
    if generator_classes != real_classes:
        raise AugmentError(f"the generator has {generator_classes} classes but the evaluator "
                           f"and real data have {real_classes}")


# ------------------------------------------------------------------------------ end to end


def run_evaluation(generator_path: PathLike, out_dir: PathLike, n_per_class: int = 1000,
                   seed: int = 0, cas: bool = False, cas_steps: int = CAS_STEPS, k: int = 5,
                   classifier_path: Optional[PathLike] = None,
                   data_dir: Optional[PathLike] = None, mnist: bool = True,
                   device: Device = "cpu", overwrite: bool = False, log: Log = _quiet,
                   dataset: Optional[str] = None) -> dict:
    """``augment evaluate``: load the generator file (or checkpoint) and the evaluator, score
    the generator and the real baseline, write the report directory; returns the report."""
    dataset = dataset_name(dataset, mnist)
    _check_evaluator_fits(classifier_path is not None, dataset)  # before the work
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
    source_path(data_dir, dataset)  # a missing directory: its error before any progress line
    log("embedding the real test set")
    reference = load_reference(classifier, data_dir, dataset=dataset)
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
                      "model_config": dataclasses.asdict(generator.config)},
        "classifier": {"path": str(classifier_path), "sha256": sha256_file(classifier_path),
                       "test_accuracy": reference.classifier_accuracy},
        "data": {"dir": str(source_path(data_dir, dataset)), "dataset": dataset,
                 "test_images": int(len(reference.labels)),
                 "class_names": reference.class_names},
        "settings": {"n_per_class": n_per_class, "seed": seed, "k": k, "cas": cas,
                     "cas_steps": cas_steps if cas else None, "device": str(device)},
        "results": results,
        "metrics": METRIC_HELP,
    }
    report["seconds"] = round(time.time() - started, 2)
    write_report(report, out_dir, grid, overwrite)
    return report
