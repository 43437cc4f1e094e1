"""The memorization audit of one evaluation: which training images and which held-out real
images, the statistics of ``augment.evaluation.memorization`` in pixels and in the evaluator's
features, and the most-copied samples beside their nearest training images.

* Training images: the judged generator's own, the train split of the real data reduced to the
  subset it was trained on (``SubsetSpec`` and seed, as ``augment train`` drew it: a fair
  generator's n per class or long-tailed subset; default all of the split).
* Held-out real images: the real data's test split (its own, or the seeded hold-out of a
  single-split source), which no generator trains on.
* Pixels: the images at the real data's own size and grey levels (samples of a 32x32 generator
  are resized as ``augment dump`` writes them), all training images. This is the space where a
  copy is a copy; its numbers are the audit's headline (``ct``, ``authenticity``,
  ``near_duplicate_fraction``).
* Features: the evaluator's, against at most ``feature_per_class`` training images per class
  (the first of each class's seeded order, ``augment.data.subsets.class_permutations``; with
  the whole split as training set these are the real baseline's images, embedded once), under
  ``"features"``.
"""

from __future__ import annotations

import time
from typing import Optional

import numpy as np
import torch

from augment.config import SubsetSpec
from augment.data.sources import LabelledImages
from augment.data.subsets import class_permutations, subset_indices
from augment.evaluation import memorization as mem
from augment.evaluation.classifier import Classifier, extract_features
from augment.images import to_model_images, to_uint8_images

MOST_COPIED = 10  # rows of the picture at most: the most-copied sample of each class, most copied first
NEIGHBOURS_SHOWN = 3  # training images beside each sample


def native_pixels(images: torch.Tensor, size: tuple) -> torch.Tensor:
    """Model images ``(N, C, 32, 32)`` in [-1, 1] -> uint8 ``(N, H, W)`` (one channel) or
    ``(N, C, H, W)`` at ``size`` ``(H, W)``: antialiased bilinear, round to nearest, as
    ``augment dump`` writes samples."""
    x = to_uint8_images(images, size)
    return x[:, 0] if x.shape[1] == 1 else x


def training_indices(train: LabelledImages, subset: SubsetSpec, seed: int, num_classes: int) -> torch.Tensor:
    """Sorted indices into the train split of the images a generator trained on ``subset``
    with ``seed`` saw (``augment.data.subsets.subset_indices``; all for the default spec)."""
    keep = subset_indices(train.labels, subset, seed, num_classes)
    return torch.arange(len(train.labels)) if keep is None else keep


def feature_indices(train: LabelledImages, training: torch.Tensor, per_class: int, seed: int,
                    num_classes: int) -> torch.Tensor:
    """Sorted indices (into the train split) of at most ``per_class`` training images per class:
    the first of ``training`` in each class's seeded order (``class_permutations``), so the
    whole split gives ``per_class_subset(labels, per_class, seed)``, the real baseline's images."""
    member = torch.zeros(len(train.labels), dtype=torch.bool)
    member[training] = True
    chosen = [order[member[order]][:per_class] for order in class_permutations(train.labels, num_classes, seed)]
    return torch.cat(chosen).sort().values


def run_audit(images: torch.Tensor, pixels: torch.Tensor, labels: torch.Tensor, features: torch.Tensor,
              classifier: Classifier, train: LabelledImages, held_out: dict, subset: SubsetSpec = SubsetSpec(),
              training_seed: int = 0, seed: int = 0, feature_per_class: int = 1000,
              embedded: Optional[tuple] = None) -> tuple[dict, torch.Tensor]:
    """The audit of a labelled set: ``images`` as the evaluator takes them, ``pixels`` uint8 at
    the real size, ``labels`` ``(N,)``, evaluator ``features`` ``(N, D)``; ``train`` the real
    train split (uint8); ``held_out`` ``{"pixels", "features", "labels", "split"}`` of real test.
    ``embedded`` = (train-split indices, their features) already computed, reused when they are
    the feature training images. Returns the ``"memorization"`` dict of results.json (see
    ``augment.evaluation.report.MEMORIZATION_HELP``) and the picture's images ``(rows, 1 +
    NEIGHBOURS_SHOWN, C, 32, 32)`` in [-1, 1]."""
    started, cpu_started = time.time(), time.process_time()
    num_classes = classifier.config.num_classes
    keep = training_indices(train, subset, training_seed, num_classes)
    train_labels = train.labels[keep]
    pixel = mem.audit(train.images[keep], train_labels, held_out["pixels"], held_out["labels"],
                      pixels, labels, num_classes, seed)
    in_features = feature_indices(train, keep, feature_per_class, seed, num_classes)
    if embedded is not None and torch.equal(embedded[0], in_features):
        train_features = embedded[1]
    else:
        train_features = extract_features(classifier, to_model_images(train.images[in_features]))
    feature = mem.audit(train_features, train.labels[in_features], held_out["features"], held_out["labels"],
                        features, labels, num_classes, seed)
    rows = _most_copied(pixel, labels)
    summary = {
        **pixel.summary,
        "space": "pixels",
        "features": feature.summary,
        "training": {"subset": subset.label(), "seed": training_seed, "images": int(len(keep)),
                     "feature_images": int(len(in_features))},
        "held_out": {"split": held_out["split"], "images": int(len(held_out["labels"]))},
        "most_copied": [{"sample": int(i), "class": int(labels[i]), "training_index": int(keep[pixel.nearest_index[i]]),
                         "distance": float(pixel.nearest_distance[i]), "copy_ratio": float(pixel.copy_ratio[i])}
                        for i in rows],
    }
    picture = _picture(images, pixels, rows, train, keep, train_labels, labels)
    summary["seconds"] = round(time.time() - started, 2)
    summary["cpu_seconds"] = round(time.process_time() - cpu_started, 2)  # all threads: the cost on a shared machine
    return summary, picture


def _most_copied(audit: mem.MemorizationAudit, labels: torch.Tensor) -> list:
    """The most-copied sample of each class (smallest copy ratio: nearest-training distance over
    the class's near-duplicate threshold), most copied first, at most ``MOST_COPIED``."""
    ratio = np.where(np.isnan(audit.copy_ratio), np.inf, audit.copy_ratio)
    best = {}
    for i in np.argsort(ratio, kind="stable"):
        if np.isfinite(ratio[i]):
            best.setdefault(int(labels[i]), int(i))
    return sorted(best.values(), key=lambda i: ratio[i])[:MOST_COPIED]


def _picture(images: torch.Tensor, pixels: torch.Tensor, rows: list, train: LabelledImages, keep: torch.Tensor,
             train_labels: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Each chosen sample beside its ``NEIGHBOURS_SHOWN`` nearest training images of its class."""
    out = []
    for i in rows:
        same = keep[train_labels == labels[i]]
        nearest = mem.nearest_neighbours(pixels[i:i + 1], train.images[same], NEIGHBOURS_SHOWN)[1][0]
        neighbours = to_model_images(train.images[same[nearest]])
        blank = torch.full((NEIGHBOURS_SHOWN - len(neighbours), *neighbours.shape[1:]), -1.0)
        out.append(torch.cat([images[i:i + 1].float().cpu(), neighbours, blank]))
    return torch.stack(out) if out else torch.empty((0, 1 + NEIGHBOURS_SHOWN, *images.shape[1:]))
