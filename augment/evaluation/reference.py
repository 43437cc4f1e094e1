"""The real side of an evaluation: the real test split as the evaluator sees it
(``RealReference``: images, labels, features, predictions, pixels) and the real train split
(the baseline's images and the memorization audit's training images), read through
``augment.evaluation.sample_sets.read_split``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch

from augment.data.sources import LabelledImages, source_kind
from augment.data.subsets import per_class_subset
from augment.errors import DataError
from augment.evaluation.classifier import Classifier, features_and_predictions
from augment.evaluation.sample_sets import read_split
from augment.fileio import PathLike
from augment.images import to_model_images


@dataclass
class RealReference:
    """The real test split as the evaluator sees it: images ``(N, C, 32, 32)`` in [-1, 1],
    labels ``(N,)``, features ``(N, D)`` and predictions ``(N,)``, all on the CPU; ``pixels``
    the same images uint8 at their own size ``(N, H, W)``; ``origin`` "own" (the source's test
    split) or "held out" (a seeded hold-out of a single-split source)."""

    images: torch.Tensor
    labels: torch.Tensor
    features: torch.Tensor
    predictions: torch.Tensor
    num_classes: int
    data_dir: Optional[Path]
    dataset: str = "mnist"
    class_names: Optional[list] = None
    pixels: Optional[torch.Tensor] = None
    origin: str = "own"

    @property
    def classifier_accuracy(self) -> float:
        """The evaluator's accuracy on this real test set, in [0, 1]."""
        return float((self.predictions == self.labels).double().mean())

    @property
    def held_out(self) -> dict:
        """What the memorization audit calibrates on (``augment.evaluation.audit.run_audit``)."""
        split = "test split" if self.origin == "own" else "test part of the seeded hold-out (1/7 of each class)"
        return {"pixels": self.pixels, "features": self.features, "labels": self.labels, "split": split}


def load_reference(classifier: Classifier, data_dir: Optional[PathLike] = None,
                   dataset: Optional[str] = None, test: Optional[LabelledImages] = None) -> RealReference:
    """Load the real test split of a source (``augment.data.sources``: ``data_dir`` of kind
    ``dataset``, None: recognised from the path), or take it already read (``test``), and embed it."""
    dataset = source_kind(data_dir, dataset)
    test = read_split(data_dir, "test", dataset) if test is None else test
    num_classes = classifier.config.num_classes
    if int(test.labels.max()) >= num_classes:
        raise DataError(f"test labels reach {int(test.labels.max())} but the classifier has "
                        f"{num_classes} classes")
    images = to_model_images(test.images)
    features, predictions = features_and_predictions(classifier, images)
    return RealReference(images, test.labels, features, predictions, num_classes,
                         Path(data_dir) if data_dir is not None else None, dataset, test.class_names,
                         test.images, test.origin)


def load_train_split(reference: RealReference) -> LabelledImages:
    """The real train split of ``reference``'s source: uint8 images ``(N, H, W)``, labels."""
    return read_split(reference.data_dir, "train", reference.dataset)


def real_train_subset(reference: RealReference, n_per_class: int, seed: int = 0,
                      train: Optional[LabelledImages] = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``n_per_class`` real training images per class (seeded): images ``(C*n, C, 32, 32)`` in
    [-1, 1] and labels ``(C*n,)``, on the CPU (``train``: the train split, if already read)."""
    train = train or load_train_split(reference)
    keep = per_class_subset(train.labels, n_per_class, seed, reference.num_classes)
    return to_model_images(train.images[keep]), train.labels[keep]
