"""The interface every kind of data source implements, and what all kinds share.

A ``SourceReader`` subclass says whether a path looks like its kind (``recognises``: how the kind
of a source is told when none is given), where its data is (``locate``), whether the source has its own
test split, how to read one split's images and labels (checked against the budget of
``augment.data.limits`` before anything is decoded) and, if the source names them, the class
names. Everything else is written once here: the label checks (every class present in the
train split, labels of either split within the classes, at least two classes), class names,
the seeded hold-out of a one-split source, and what ``augment data verify`` reports. Adding a
kind of source is adding one subclass (and its name in ``augment.data.sources.READERS``).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Optional

import torch

from augment.data.subsets import class_permutations
from augment.errors import DataError
from augment.fileio import PathLike

SPLIT_NAMES = ("train", "test")
HOLDOUT_FRACTION = 1 / 7  # of each class, when a source has one split (MNIST: 10,000 of 70,000)
HOLDOUT_SEED = 0x4D4E4953  # its own stream: a hold-out does not move with a run's seed
MAX_CLASS_NAME_CHARS = 100


@dataclass
class LabelledImages:
    """One split of a source: images ``(N, H, W)`` uint8, labels ``(N,)`` int64 in [0, C), the
    C class names, and where the split came from ("own" or "held out")."""

    images: torch.Tensor
    labels: torch.Tensor
    class_names: list
    origin: str = "own"

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


class SourceReader(ABC):
    """One kind of data source at one path.

    Subclasses set ``kind`` (a name of ``augment.config.DATASETS``) and implement ``recognises``,
    ``locate``, ``has_own_test`` and ``read``; they may override ``class_names`` (default: numbered),
    ``reference_labels`` (the labels that number the classes) and ``present_splits``.
    """

    kind: ClassVar[str]

    def __init__(self, root: Optional[PathLike]):
        self.path = self.locate(root)

    @classmethod
    @abstractmethod
    def recognises(cls, path: Path) -> bool:
        """Whether the existing file or directory ``path`` looks like this kind of source, told
        from names (and at most a few small files), nothing decoded; the checks come when it
        is read."""

    @classmethod
    @abstractmethod
    def locate(cls, root: Optional[PathLike]) -> Path:
        """The file or directory the source reads; a one-line error when there is none."""

    @abstractmethod
    def has_own_test(self) -> bool:
        """Whether the source has its own test split (otherwise it is held out of train)."""

    @abstractmethod
    def read(self, split: str, allow_empty: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """Images ``(N, H, W)`` uint8 and labels ``(N,)`` int64 of the source's own ``split``,
        the budget checked from headers first. An empty split is an error unless
        ``allow_empty`` (a kind that cannot hold one ignores it)."""

    def class_names(self) -> Optional[list]:
        """The class names the source stores, or None: classes are numbered "0".."C-1"."""
        return None

    def reference_labels(self, split: str, labels: torch.Tensor) -> torch.Tensor:
        """The labels that define the classes (numbered, or checked against the names): the
        train split's (by default read again for the test split; a kind overrides this to read
        the labels alone)."""
        return labels if split == "train" else self.read("train")[1]

    def present_splits(self) -> tuple:
        """The splits ``describe`` reports."""
        return SPLIT_NAMES

    # ------------------------------------------------------------------- shared by every kind

    def load(self, split: str, allow_empty: bool = False) -> LabelledImages:
        """The ``split`` ('train' or 'test'), its own or held out, with every label check."""
        if split not in SPLIT_NAMES:
            raise DataError(f"unknown split {split!r}; expected 'train' or 'test'")
        own = self.has_own_test()
        read_split = split if own else "train"
        images, labels = self.read(read_split, allow_empty)
        names = self.class_names()
        reference = self.reference_labels(read_split, labels)
        if names is None:
            names = numbered_classes(self.path, reference, split)
        elif reference is not labels and len(reference):
            check_source_labels(self.path, reference, names, "train")  # the test split's classes are the train split's
        check_class_names(self.path, names)
        if len(labels):
            check_source_labels(self.path, labels, names, read_split)
        found = LabelledImages(images, labels, names)
        return found if own else held_out(found, split)

    def describe(self) -> dict:
        """What ``augment data verify`` prints: the kind and path, the images of each split
        (0 for an empty split where a kind allows one), where the test split comes from, the
        class names and the image size (H, W). Every check of ``load`` runs."""
        parts = {split: self.load(split, allow_empty=True) for split in self.present_splits()}
        first = next((p for p in parts.values() if len(p.labels)), next(iter(parts.values())))
        return {"dataset": self.kind, "path": str(self.path),
                "examples": {split: len(p.labels) for split, p in parts.items()},
                "test_split": parts["test"].origin if "test" in parts else "none",
                "classes": first.class_names, "image_size": list(first.images.shape[1:])}


def numbered_classes(path: Path, labels: torch.Tensor, split: str) -> list:
    """Class names "0".."C-1" of a source without names, C = max(label) + 1 of ``labels`` (the
    train split's), after checking that every class has an image: no list of C names is built
    for labels that do not cover 0..C-1."""
    if not len(labels):
        raise DataError(f"{path}: no labels to tell the classes by (the {split} split is empty)")
    return [str(c) for c in range(check_source_labels(path, labels, None, "train"))]


def check_source_labels(path: Path, labels: torch.Tensor, names: Optional[list], split: str) -> int:
    """The number of classes, C: len(names), else max(label) + 1. Labels must lie in 0..C-1;
    in the train split every class must have an image (compared with the distinct labels, so
    a label of 10^9 costs nothing); at least 2 classes."""
    lo, hi = int(labels.min()), int(labels.max())
    classes = len(names) if names is not None else hi + 1
    if lo < 0 or hi >= classes:
        raise DataError(f"{path}: {split} labels span [{lo}, {hi}]; they must lie in 0..{classes - 1}"
                        + (" (one per class name)" if names is not None else " (one per class)"))
    if split == "train":
        present = torch.unique(labels)  # sorted, at most N values
        if len(present) < classes:
            gaps = (present != torch.arange(len(present))).nonzero()
            missing = int(gaps[0]) if len(gaps) else len(present)
            raise DataError(f"{path}: labels must be 0..C-1 with every class present; class {missing} has no image"
                            + (f" (labels span [{lo}, {hi}], {len(present)} distinct)" if names is None else ""))
    if classes < 2:
        raise DataError(f"{path}: a data set needs at least 2 classes, found {classes}")
    return classes


def check_class_names(path: Path, names: list) -> None:
    """Class names are distinct, non-empty, printable strings of at most
    ``MAX_CLASS_NAME_CHARS`` characters (they become folder names, file metadata and the
    captions of sample grids)."""
    for name in names:
        if not isinstance(name, str) or not name or not name.isprintable() or len(name) > MAX_CLASS_NAME_CHARS:
            shown = repr(name[:40]) + ("..." if len(name) > 40 else "") if isinstance(name, str) else repr(name)
            raise DataError(f"{path}: class name {shown} refused; a class name is 1 to {MAX_CLASS_NAME_CHARS} "
                            f"printable characters")
    if len(set(names)) != len(names):
        raise DataError(f"{path}: class names must be distinct")


def held_out(data: LabelledImages, split: str) -> LabelledImages:
    """The train or test part of a seeded, stratified hold-out of a single-split source: the
    last ceil(HOLDOUT_FRACTION * n_c) of each class's seeded permutation are test (none of a
    class of one image)."""
    keep = []
    for order in class_permutations(data.labels, len(data.class_names), HOLDOUT_SEED):
        n_test = math.ceil(HOLDOUT_FRACTION * len(order)) if len(order) > 1 else 0
        keep.append(order[len(order) - n_test:] if split == "test" else order[:len(order) - n_test])
    idx = torch.cat(keep).sort().values
    return LabelledImages(data.images[idx], data.labels[idx], data.class_names, "held out")
