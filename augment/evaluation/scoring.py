"""Evaluate a conditional generator, or a set of labelled images, class by class, through a
classifier trained on real data (the shipped one: MNIST).

Samples ``n_per_class`` images of every class (latents from a CPU ``torch.Generator`` seeded
with ``seed``), or reads a sample set (``augment.evaluation.sample_sets``), embeds them and the
real test set with the evaluator classifier and reports, overall and per class (see
``METRIC_HELP``): agreement (right digits), Frechet classifier distance,
precision/recall/density/coverage (sharp and varied), intra-class diversity, the confusion
matrix and, on request, CAS (a fresh classifier trained on the samples only, tested
on real test). The same metrics on a real-train subset of the same size give the ceiling row.
The memorization audit (``augment.evaluation.audit``) asks whether the set copies the training
images of its generator.
``augment.evaluation.report`` turns the results into tables, markdown and plots (one report directory).
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Callable, Optional, Union

import numpy as np
import torch

from augment.checkpoint import load_generator
from augment.config import SubsetSpec
from augment.data.sources import LabelledImages, source_kind, source_path
from augment.data.subsets import per_class_subset
from augment.device import module_device
from augment.errors import AugmentError, ConfigError
from augment.evaluation.fit import check_evaluator_fits, check_generator_fits, reference_signature, split_signature
from augment.evaluation import metrics
from augment.evaluation.audit import native_pixels, run_audit, training_indices
from augment.evaluation.classifier import Classifier, ClassifierTrainConfig, features_and_predictions, train_classifier
from augment.evaluation.classifier_files import (
    DEFAULT_WEIGHTS,
    default_classifier,
    load_classifier,
    load_verified_classifier,
)
from augment.evaluation.report import (
    GENERATOR,
    MEMORIZATION_HELP,
    METRIC_HELP,
    REAL_BASELINE,
    SAMPLES,
    check_out_dir,
    memorization_verdict,
    sample_grid,
    write_report,
)
from augment.evaluation.reference import RealReference, load_reference, load_train_split, real_train_subset
from augment.evaluation.sample_sets import baseline_size, read_checked_samples, read_split
from augment.fileio import PathLike, sha256_file

REPORT_FORMAT = "augment.evaluation"
FORMAT_VERSION = 2  # 2: top-level "memorization"; "samples" instead of "generator" for a sample set
GRID_PER_CLASS = 10
CAS_STEPS = 1500  # fixed training budget of a CAS classifier, whatever the sample count

Device = Union[str, torch.device]
Log = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


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
                     cas_steps: int = CAS_STEPS, log: Log = _quiet, embedded: Optional[tuple] = None) -> dict:
    """All metrics of a labelled set (images as the classifier takes them, labels ``(N,)`` =
    the class each image is meant to show) against ``reference`` (``embedded``: the set's
    features and predictions, if already computed). Returns ``{"count", "overall": {column:
    float}, "per_class": {column: [C floats]}, "confusion_matrix": C x C ints}``; NaN where a
    value is undefined (too few samples)."""
    started = time.time()
    num_classes = reference.num_classes
    labels = labels.cpu().long()
    channels = images.shape[1] if images.dim() == 4 else 1
    if channels != classifier.config.channels:
        raise AugmentError(f"images have {channels} channels but the evaluator takes "
                           f"{classifier.config.channels}")
    log(f"embedding {len(labels)} images")
    feats, preds = embedded or features_and_predictions(classifier, images)
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


def _judge(images: torch.Tensor, pixels: torch.Tensor, labels: torch.Tensor, classifier: Classifier,
           reference: RealReference, train: Optional[LabelledImages], k: int, seed: int, cas: bool, cas_steps: int,
           log: Log, training_subset: SubsetSpec, training_seed: int, feature_per_class: int,
           known: Optional[tuple] = None) -> tuple[dict, Optional[torch.Tensor]]:
    """The metrics of a judged set and (given the train split ``train``) its memorization audit
    under ``"memorization"``; the audit's picture, or None."""
    embedded = features_and_predictions(classifier, images)
    result = evaluate_samples(images, labels, classifier, reference, k, seed, cas, cas_steps, log, embedded)
    if train is None:
        return result, None
    if reference.pixels is None:
        raise AugmentError("the memorization audit needs the real test images' pixels (RealReference.pixels, as "
                           "load_reference sets them); or pass audit=False")
    log(f"memorization audit: nearest of {len(labels)} images among the training images "
        f"({training_subset.label()}, seed {training_seed})")
    result["memorization"], picture = run_audit(
        images, native_pixels(images, tuple(reference.pixels.shape[1:])) if pixels is None else pixels, labels,
        embedded[0], classifier, train, reference.held_out, training_subset, training_seed, seed, feature_per_class,
        known)
    result["memorization"]["verdict"] = memorization_verdict(result["memorization"])
    return result, picture


def evaluate_generator(generator: torch.nn.Module, n_per_class: int = 1000, seed: int = 0,
                       classifier: Optional[Classifier] = None,
                       data_dir: Optional[PathLike] = None, cas: bool = False,
                       device: Optional[Device] = None, reference: Optional[RealReference] = None,
                       k: int = 5, cas_steps: int = CAS_STEPS, log: Log = _quiet, dataset: Optional[str] = None,
                       audit: bool = True, training_subset: SubsetSpec = SubsetSpec(),
                       training_seed: int = 0) -> dict:
    """Metrics (see :func:`evaluate_samples`) of ``n_per_class`` seeded samples per class of a
    conditional generator against the real test set, and its memorization audit, as
    ``augment evaluate`` reports them.

    Args:
        generator: a conditional generator module (``generator(z, labels)``, ``.config``),
            e.g. from ``augment.load_generator``.
        n_per_class: samples per class (latents from a CPU ``torch.Generator`` seeded with
            ``seed``, so the same on any device).
        seed: the seed of the latents (and of CAS training, diversity's subsampling and the
            audit's k-means).
        classifier: the evaluator; default the shipped one, on ``device``. It must fit the data
            (``augment.evaluation.fit``: the shipped one fits only MNIST).
        data_dir: where the real data is (default: ``$AUGMENT_DATA``, else the cache).
        cas: also train a classifier on the samples alone and test it on real test (slow).
        device: the evaluator's device (default: the generator's).
        reference: the real test set already embedded (:func:`load_reference`); skips it.
        k: neighbours of precision/recall/density/coverage.
        cas_steps: training steps of the CAS classifier.
        log: called with progress messages.
        dataset: the kind of source (``augment.data.sources``); None: recognised from the path.
        audit: run the memorization audit (``augment.evaluation.audit``).
        training_subset: the subset of the train split the generator was trained on (default
            all of it; a fair generator: its ``n_per_class`` or long-tailed spec).
        training_seed: the seed that drew that subset (the training run's seed).

    Returns:
        ``{"count", "overall": {metric: float}, "per_class": {metric: [C floats]},
        "confusion_matrix", "seconds"}`` (metrics: ``augment.evaluation.report.METRIC_HELP``)
        and ``"memorization"`` (``augment.evaluation.report.MEMORIZATION_HELP``) with ``audit``.
    """
    classifier, reference = _prepare(classifier, reference, data_dir, dataset, device or module_device(generator))
    check_generator_fits(generator, reference_signature(reference))
    log(f"sampling {n_per_class} images per class")
    images, labels = sample_generator(generator, n_per_class, seed)
    train = load_train_split(reference) if audit else None
    return _judge(images, None, labels, classifier, reference, train, k, seed, cas, cas_steps, log,
                  training_subset, training_seed, n_per_class)[0]


def evaluate_sample_set(samples: PathLike, sample_format: Optional[str] = None,
                        classifier: Optional[Classifier] = None, data_dir: Optional[PathLike] = None,
                        dataset: Optional[str] = None, reference: Optional[RealReference] = None, k: int = 5,
                        seed: int = 0, cas: bool = False, cas_steps: int = CAS_STEPS, device: Device = "cpu",
                        log: Log = _quiet, audit: bool = True, training_subset: SubsetSpec = SubsetSpec(),
                        training_seed: int = 0) -> dict:
    """Metrics and memorization audit of a set of labelled images, as ``augment evaluate
    --samples`` reports them.

    Args:
        samples: the set: an ``.npz`` file, an image folder, an IDX directory or an ``augment
            dump`` directory (``augment.evaluation.sample_sets``).
        sample_format: 'npz', 'folder', 'idx' or 'dump'; default recognised from the path.
        classifier: the evaluator; default the shipped one, on ``device``.
        data_dir: where the real data is (default: ``$AUGMENT_DATA``, else the cache).
        dataset: the kind of real source (``augment.data.sources``); None: recognised from the path.
        reference: the real test set already embedded (``load_reference``); skips it.
        k: neighbours of precision/recall/density/coverage (every class needs more images).
        seed: the seed of CAS training, diversity's subsampling and the audit's k-means.
        cas: also train a classifier on the set alone and test it on real test (slow).
        cas_steps: training steps of the CAS classifier.
        device: the evaluator's device.
        log: called with progress messages.
        audit: run the memorization audit.
        training_subset: the subset of the real train split the set's generator learnt from
            (default all of it).
        training_seed: the seed that drew that subset.

    Returns:
        :func:`evaluate_generator`'s dict and ``"samples"``: path, format, images and images per
        class. One-line ``DataError`` for a set that is empty, has other classes than the real
        data, images of another size (not resized) or a class of at most ``k`` images.
    """
    classifier, reference = _prepare(classifier, reference, data_dir, dataset, device)
    images, pixels, labels, described = _read_samples(samples, sample_format, reference, k)
    train = load_train_split(reference) if audit else None
    result = _judge(images, pixels, labels, classifier, reference, train, k, seed, cas, cas_steps, log,
                    training_subset, training_seed, baseline_size(labels, reference.num_classes, train))[0]
    return {**result, "samples": described}


def _read_samples(path: PathLike, sample_format: Optional[str], reference: RealReference, k: int) -> tuple:
    return read_checked_samples(path, sample_format, reference.class_names, tuple(reference.pixels.shape[1:]), k)


def evaluate_real_baseline(n_per_class: int = 1000, seed: int = 0,
                           classifier: Optional[Classifier] = None,
                           data_dir: Optional[PathLike] = None, cas: bool = False,
                           device: Device = "cpu", reference: Optional[RealReference] = None,
                           k: int = 5, cas_steps: int = CAS_STEPS,
                           log: Log = _quiet, dataset: Optional[str] = None) -> dict:
    """The same metrics for ``n_per_class`` seeded real training images per class against
    real test: the ceiling a perfect generator would reach at this sample size."""
    classifier, reference = _prepare(classifier, reference, data_dir, dataset, device)
    log(f"real baseline: {n_per_class} training images per class")
    images, labels = real_train_subset(reference, n_per_class, seed)
    return evaluate_samples(images, labels, classifier, reference, k, seed, cas, cas_steps, log)


def _prepare(classifier: Optional[Classifier], reference: Optional[RealReference],
             data_dir: Optional[PathLike], dataset: Optional[str], device: Device
             ) -> tuple[Classifier, RealReference]:
    """The evaluator (default the shipped one) and the real test set it embedded, checked to fit
    each other (``check_evaluator_fits``) before the test set is embedded."""
    name = "the shipped evaluator" if classifier is None else "the evaluator"
    classifier = default_classifier(device) if classifier is None else classifier
    if reference is not None:
        check_evaluator_fits(classifier, reference_signature(reference), name, "classifier=FILE")
        return classifier, reference
    kind = source_kind(data_dir, dataset)
    test = read_split(data_dir, "test", kind)
    check_evaluator_fits(classifier, split_signature(test, kind, source_path(data_dir, kind)), name, "classifier=FILE")
    return classifier, load_reference(classifier, data_dir, kind, test)


# ------------------------------------------------------------------------------ end to end


def run_evaluation(generator_path: Optional[PathLike], out_dir: PathLike, n_per_class: int = 1000,
                   seed: int = 0, cas: bool = False, cas_steps: int = CAS_STEPS, k: int = 5,
                   classifier_path: Optional[PathLike] = None,
                   data_dir: Optional[PathLike] = None, device: Device = "cpu", overwrite: bool = False,
                   log: Log = _quiet, dataset: Optional[str] = None, samples: Optional[PathLike] = None,
                   sample_format: Optional[str] = None, training_subset: SubsetSpec = SubsetSpec(),
                   training_seed: int = 0) -> dict:
    """``augment evaluate``: load the evaluator and the generator file (or checkpoint), or read
    the sample set ``samples`` instead; score it, its memorization audit and the real baseline;
    write the report directory; returns the report. The evaluator and the generator are checked
    to fit the data (``augment.evaluation.fit``) before the work; ``dataset`` None: the kind
    recognised from the path."""
    dataset = source_kind(data_dir, dataset)
    if (generator_path is None) == (samples is None):
        raise ConfigError("evaluate a generator file or a sample set (--samples), one of them")
    started = time.time()
    if samples is None and n_per_class <= k:
        raise AugmentError(f"n_per_class ({n_per_class}) must exceed k ({k}) for per-class "
                           f"precision/recall/density/coverage")
    out_dir = check_out_dir(out_dir, overwrite)  # fail before the work, not after
    generator = load_generator(generator_path, device) if samples is None else None
    if classifier_path is None:
        classifier_path, name = DEFAULT_WEIGHTS, "the shipped evaluator"
        classifier, _ = load_verified_classifier(classifier_path, device)
    else:
        classifier, name = load_classifier(classifier_path, device), f"the classifier {classifier_path}"
    test = read_split(data_dir, "test", dataset)
    data = split_signature(test, dataset, source_path(data_dir, dataset))
    check_evaluator_fits(classifier, data, name, "--classifier FILE")
    if samples is None:
        check_generator_fits(generator_path, data, "augment evaluate FILE")
    log("embedding the real test set")
    reference = load_reference(classifier, data_dir, dataset, test)
    if samples is None:
        images, pixels, labels = None, None, None
    else:
        log(f"reading the sample set {samples}")
        images, pixels, labels, described = _read_samples(samples, sample_format, reference, k)
    train = load_train_split(reference)
    training_indices(train, training_subset, training_seed, reference.num_classes)  # a bad subset fails early
    if samples is not None:
        n_per_class = baseline_size(labels, reference.num_classes, train)
    real_images, real_labels = real_train_subset(reference, n_per_class, seed, train)  # fails early
    if samples is None:
        log(f"sampling {n_per_class} images per class")
        images, labels = sample_generator(generator, n_per_class, seed)
    log(f"real baseline: {n_per_class} training images per class")
    real_embedded = features_and_predictions(classifier, real_images)
    known = (per_class_subset(train.labels, n_per_class, seed, reference.num_classes), real_embedded[0])
    judged, picture = _judge(images, pixels, labels, classifier, reference, train, k, seed, cas, cas_steps, log,
                             training_subset, training_seed, n_per_class, known)
    name = GENERATOR if samples is None else SAMPLES
    memorization = judged.pop("memorization")
    results = {name: judged, REAL_BASELINE: evaluate_samples(real_images, real_labels, classifier, reference, k,
                                                             seed, cas, cas_steps, log, real_embedded)}
    report = {
        "format": REPORT_FORMAT,
        "format_version": FORMAT_VERSION,
        "classifier": {"path": str(classifier_path), "sha256": sha256_file(classifier_path),
                       "test_accuracy": reference.classifier_accuracy},
        "data": {"dir": str(source_path(data_dir, dataset)), "dataset": dataset,
                 "test_images": int(len(reference.labels)),
                 "class_names": reference.class_names},
        "settings": {"n_per_class": n_per_class, "seed": seed, "k": k, "cas": cas,
                     "cas_steps": cas_steps if cas else None, "device": str(device)},
        "results": results,
        "memorization": memorization,
        "metrics": METRIC_HELP,
        "memorization_help": MEMORIZATION_HELP,
    }
    if samples is None:
        report["generator"] = {"path": str(generator_path), "sha256": sha256_file(generator_path),
                               "model_config": dataclasses.asdict(generator.config)}
    else:
        report["samples"] = described
    report["seconds"] = round(time.time() - started, 2)
    grid = sample_grid(images, labels, reference.num_classes, GRID_PER_CLASS)
    write_report(report, out_dir, grid, overwrite, picture)
    return report
