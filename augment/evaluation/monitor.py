"""In-training evaluation: a ``TrainingMonitor`` scores generators while they train.

Built above training (by ``augment train``, or any caller of ``augment.training.train``) and handed
to the loop as its ``monitor``, so ``augment.training`` never imports this package. Every
``TrainConfig.eval_every`` steps the loop calls it with ``{'live': G, 'average': G_ema}``; each is
sampled (``eval_per_class`` per class, the same latents every time, eval mode) and judged by a
classifier of the run's data against its real test split: agreement (the classifier labels a sample
as the class asked for, in [0, 1]), per-class Fréchet distance in the classifier's features (mean over
classes, >= 0) and coverage (Naeem et al. 2020, in [0, 1]). The judge is the run's
``eval_classifier`` file (checked to fit the run's data: ``augment.evaluation.fit``), else the shipped
MNIST evaluator on MNIST (the only data it fits), else a classifier trained on the run's training
images before training starts (``build_monitor`` says so through ``log``).
"""

from __future__ import annotations

import math
from typing import Callable, Optional

import numpy as np
import torch
from torch import nn

from augment.config import TrainConfig
from augment.data.sources import load_labelled
from augment.data.subsets import subset_indices
from augment.evaluation import metrics
from augment.evaluation.classifier import (
    Classifier,
    ClassifierConfig,
    ClassifierTrainConfig,
    features_and_predictions,
    train_classifier,
)
from augment.evaluation.classifier_files import default_classifier, load_classifier
from augment.evaluation.fit import check_evaluator_fits, data_signature
from augment.evaluation.reference import RealReference, load_reference
from augment.evaluation.scoring import sample_generator
from augment.images import to_model_images

MONITOR_SEED = 0  # the latents of every in-training evaluation
COVERAGE_K = 5  # the neighbours of coverage's balls
ON_THE_FLY_STEPS = 1500  # training steps of a judge made for a run without one (about a minute on 2 CPU cores)


class TrainingMonitor:
    """Callable ``{name: generator} -> {name: {"agreement", "class_frechet", "coverage"}}``.

    Args:
        classifier: the judge, a classifier of the run's classes.
        reference: the real test split as that classifier sees it (``load_reference``).
        per_class: samples per class of each evaluation.
    """

    def __init__(self, classifier: Classifier, reference: RealReference, per_class: int):
        self.classifier, self.reference, self.per_class = classifier, reference, per_class
        self.real_radii = metrics.neighbour_radii(reference.features, k=COVERAGE_K)  # once: most of coverage's cost

    def __call__(self, generators: dict[str, nn.Module]) -> dict[str, dict[str, float]]:
        return {name: self.score(generator) for name, generator in generators.items()}

    def score(self, generator: nn.Module) -> dict[str, float]:
        """Agreement, mean per-class Fréchet and coverage of ``per_class`` samples per class."""
        ref, classes = self.reference, self.reference.num_classes
        images, labels = sample_generator(generator, self.per_class, MONITOR_SEED)
        feats, preds = features_and_predictions(self.classifier, images)
        class_frechet = [v for v in metrics.per_class_frechet(feats, labels, ref.features, ref.labels, classes)
                         if not math.isnan(v)]
        return {"agreement": metrics.classifier_agreement(preds, labels, classes)["overall"],
                "class_frechet": float(np.mean(class_frechet)) if class_frechet else math.nan,
                "coverage": metrics.prdc(ref.features, feats, k=COVERAGE_K, real_radii=self.real_radii)["coverage"]}


def build_monitor(cfg: TrainConfig, log: Callable[[str], None] = print, device: Optional[torch.device] = None,
                  judge_steps: int = ON_THE_FLY_STEPS) -> Optional[TrainingMonitor]:
    """The monitor ``cfg.eval_every`` asks for (None without it), its judge chosen as the module
    docstring says (one made on the fly trains ``judge_steps`` steps) and its real reference
    embedded once. ``log`` hears which judge it is."""
    if cfg.eval_every is None:
        return None
    device = device or torch.device("cpu")
    if cfg.eval_classifier is not None:
        classifier = _eval_classifier(cfg, device)
        log(f"in-training evaluation judged by {cfg.eval_classifier}")
    elif cfg.dataset == "mnist":
        classifier = default_classifier(device)
        log("in-training evaluation judged by the shipped MNIST evaluator")
    else:
        classifier = _judge_of_the_training_images(cfg, device, judge_steps)
        log(f"in-training evaluation judged by a classifier trained now on the run's training images "
            f"({judge_steps} steps; pass --eval-classifier to use one of yours)")
    reference = load_reference(classifier, cfg.data_dir, dataset=cfg.dataset)
    return TrainingMonitor(classifier, reference, cfg.eval_per_class)


def check_monitor_inputs(cfg: TrainConfig) -> None:
    """The checks of ``build_monitor``'s inputs that need no training: ``eval_classifier`` is a readable
    classifier file that fits the run's data (a one-line error otherwise), for ``augment train --dry-run``."""
    if cfg.eval_every is not None and cfg.eval_classifier is not None:
        _eval_classifier(cfg, torch.device("cpu"))


def _eval_classifier(cfg: TrainConfig, device: torch.device) -> Classifier:
    """The run's ``eval_classifier``, checked to fit its data."""
    classifier = load_classifier(cfg.eval_classifier, device)
    check_evaluator_fits(classifier, data_signature(cfg.data_dir, cfg.dataset), f"the classifier {cfg.eval_classifier}",
                         "--eval-classifier FILE")
    return classifier


def _judge_of_the_training_images(cfg: TrainConfig, device: torch.device, steps: int) -> Classifier:
    """A classifier of the run's own training images (its subset), for data without a judge."""
    train = load_labelled(cfg.data_dir, "train", cfg.dataset)
    images, labels = train.images, train.labels
    keep = subset_indices(labels, cfg.subset, cfg.seed, train.num_classes)
    if keep is not None:
        images, labels = images[keep], labels[keep]
    images = to_model_images(images)  # (N, C, 32, 32) in [-1, 1]
    judge_cfg = ClassifierConfig(num_classes=train.num_classes, channels=int(images.shape[1]))
    model, _ = train_classifier(images, labels, judge_cfg,
                                ClassifierTrainConfig(steps=steps, seed=cfg.seed), device=device)
    return model
