"""Does an evaluator or a generator fit the data it is used with? The one check of ``augment
evaluate``, ``augment experiment`` (every generator of a grid, before its first cell) and the
in-training evaluation, before the long work; the quality filter makes it inside
``SyntheticMNIST``. The rule is ``augment.provenance.fit_problem``: the shipped evaluator and the
shipped generator (MNIST's) fit only data of kind 'mnist' (MNIST's checksummed files), and any
model fits only data with as many classes, named alike; the refusal names the fix.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Union

from torch import nn

from augment.data.sources import LabelledImages, load_labelled, source_kind, source_path
from augment.evaluation.classifier import Classifier
from augment.evaluation.reference import RealReference
from augment.fileio import PathLike, sha256_file
from augment.provenance import DataSignature, check_fits, unknown
from augment.synthetic.shipped import is_shipped, trained_on, verified_default_generator_path

__all__ = ["check_evaluator_fits", "check_generator_fits", "data_signature", "evaluator_trained_on",
           "reference_signature", "split_signature"]


def split_signature(split: LabelledImages, kind: str, where: PathLike) -> DataSignature:
    """What a loaded split of a source of ``kind`` at ``where`` holds: its class names, image
    size and channels."""
    return DataSignature.of_images(kind, split.class_names, split.images, where)


def data_signature(data_dir: Optional[PathLike], dataset: Optional[str] = None) -> DataSignature:
    """What the source at ``data_dir`` holds (``dataset`` None: its kind recognised from the
    path), read from its test split."""
    kind = source_kind(data_dir, dataset)
    return split_signature(load_labelled(data_dir, "test", kind), kind, source_path(data_dir, kind))


def reference_signature(reference: RealReference) -> DataSignature:
    """What the real data of an embedded test set is."""
    names = reference.class_names or [str(c) for c in range(reference.num_classes)]
    size = tuple(reference.pixels.shape[1:3]) if reference.pixels is not None else tuple(reference.images.shape[-2:])
    where = str(reference.data_dir) if reference.data_dir is not None else ""
    return DataSignature(reference.dataset, tuple(names), size, int(reference.images.shape[1]), where)


def check_evaluator_fits(classifier: Classifier, data: DataSignature, name: str = "the evaluator",
                         how: str = "--classifier FILE") -> None:
    """A one-line ConfigError, with the fix (train a classifier of the data and pass it:
    ``how``), unless ``classifier`` fits ``data``: by what its file says it was trained on
    (``classifier.trained_on``; the shipped evaluator: MNIST), else by its number of classes.

    Args:
        classifier: the evaluator.
        data: the data it would score (``data_signature``).
        name: what the classifier is, for the message (e.g. "the shipped evaluator").
        how: how a user passes another classifier, FILE standing for its path.
    """
    check_fits("evaluator", name, evaluator_trained_on(classifier), data, how)


def evaluator_trained_on(classifier: Classifier) -> DataSignature:
    """What ``classifier`` was trained on: what its file says (``trained_on``), else its number of
    classes alone (``augment.provenance.unknown``)."""
    return classifier.trained_on or unknown(classifier.config.num_classes, classifier.config.channels)


def check_generator_fits(generator: Union[PathLike, nn.Module, None], data: DataSignature,
                         how: str = "--generator FILE") -> None:
    """A one-line ConfigError, with the fix (train a generator of the data and pass it:
    ``how``), unless the generator fits ``data``: by what its file says it was trained on
    (the shipped generator: MNIST), a module by its number of classes.

    Args:
        generator: a generator file or checkpoint, a ``Generator`` module, or None (the shipped one).
        data: the data its images would join or be scored against (``data_signature``).
        how: how a user passes another generator, FILE standing for its path.
    """
    if isinstance(generator, nn.Module):
        model, name = unknown(generator.config.num_classes, generator.config.channels), "the generator"
    else:
        path = Path(generator) if generator is not None else verified_default_generator_path()
        digest = sha256_file(path)
        model = trained_on(path, digest)
        name = "the shipped generator" if is_shipped(digest) else f"the generator {path}"
    check_fits("generator", name, model, data, how)
