"""Where labelled images come from: one resolver for every command and dataset.

A data source is a path and a kind (``dataset``):

* ``mnist``: MNIST's four IDX files, SHA-256 checked (a directory, default ``$AUGMENT_DATA``,
  else ``~/.cache/augment/mnist``; flat or torchvision's ``MNIST/raw`` layout);
* ``idx``: any IDX pair with MNIST's file names (the same directory layouts, not checksummed);
* ``folder``: an ImageFolder-style directory, one folder per class (``augment.data.image_folder``),
  or ``train/`` and ``test/`` folders of such;
* ``npz``: an ``.npz`` file of ``x``, ``y`` and optionally ``class_names``, ``x_test``/``y_test``
  (``augment.data.npz``).

Splits: the source's own test split where it has one; otherwise a seeded, stratified hold-out
(``HOLDOUT_FRACTION`` of each class, the same images every time). Class names come from the
folders, the npz's ``class_names``, or are "0".."C-1".
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch

from augment.config import DATASETS
from augment.data.idx import find_idx_file, read_idx
from augment.data.image_folder import class_folders, read_image_folder
from augment.data.mnist import SPLITS, load_split, resolve_data_dir
from augment.data.npz import check_label_range, read_npz
from augment.data.subsets import class_permutations
from augment.errors import ConfigError, DataError
from augment.fileio import PathLike

HOLDOUT_FRACTION = 1 / 7  # of each class, when a source has one split (MNIST: 10,000 of 70,000)
HOLDOUT_SEED = 0x4D4E4953  # its own stream: a hold-out does not move with a run's seed


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


def dataset_name(dataset: Optional[str] = None, mnist: bool = True) -> str:
    """The kind of a source: ``dataset`` when given (one of ``DATASETS``), else 'mnist' or 'idx'
    from the older ``mnist`` flag."""
    if dataset is None:
        return "mnist" if mnist else "idx"
    if dataset not in DATASETS:
        raise ConfigError(f"dataset must be one of {', '.join(DATASETS)}, got {dataset!r}")
    return dataset


def load_labelled(data_dir: Optional[PathLike], split: str = "train", dataset: str = "mnist") -> LabelledImages:
    """The ``split`` ('train' or 'test') of a source; one-line ``DataError`` for bad data."""
    dataset = dataset_name(dataset)
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}; expected 'train' or 'test'")
    if dataset in ("mnist", "idx"):
        directory = resolve_data_dir(data_dir)
        has_test = find_idx_file(directory, SPLITS["test"][0]) or find_idx_file(directory, SPLITS["test"][1])
        if dataset == "mnist" or has_test:
            images, labels = load_split(directory, split, mnist=dataset == "mnist")
            return LabelledImages(images, labels, _numbered(directory, labels, split == "train"))
        images, labels = load_split(directory, "train", mnist=False)
        return _held_out(images, labels, _numbered(directory, labels, True), split)
    path = _given_path(data_dir, dataset)
    if dataset == "npz":
        content = read_npz(path)
        images, labels = content["train"]
        names = content["class_names"]
        names = names if names is not None else [str(c) for c in range(check_label_range(path, labels, None, "train"))]
        check_label_range(path, labels, names, "train")
        if "test" not in content:
            return _held_out(images, labels, names, split)
        if split == "train":
            return LabelledImages(images, labels, names)
        test_images, test_labels = content["test"]
        check_label_range(path, test_labels, names, "test")
        return LabelledImages(test_images, test_labels, names)
    if not (path / "train").is_dir():  # one folder per class: one split
        return _held_out(*read_image_folder(path), split)
    if not (path / "test").is_dir():  # train/ only
        return _held_out(*read_image_folder(path / "train"), split)
    images, labels, names = read_image_folder(path / split)
    if split == "test":
        train_names = [p.name for p in class_folders(path / "train")]
        if names != train_names:
            raise DataError(f"{path}: test/ has the classes {names}, train/ has {train_names}")
    return LabelledImages(images, labels, names)


def _numbered(directory: Path, split_labels: torch.Tensor, train: bool) -> list:
    """Class names "0".."C-1" of an IDX source: C = max(train label) + 1 (the train labels read
    for the test split: a small file), or from the split's own labels when the train labels are
    absent or empty (e.g. a dump of a test split only)."""
    labels = split_labels
    if not train:
        path = find_idx_file(directory, SPLITS["train"][1])
        train_labels = read_idx(path) if path is not None else None
        if train_labels is not None and train_labels.dim() == 1 and len(train_labels):
            labels = train_labels
    if not len(labels):
        raise DataError(f"{directory}: no labels to tell the classes by (the {'train' if train else 'test'} split is "
                        f"empty)")
    return [str(c) for c in range(int(labels.max()) + 1)]


def _given_path(data_dir: Optional[PathLike], dataset: str) -> Path:
    if data_dir is None:
        raise ConfigError(f"dataset {dataset!r} needs a path: the {'folder' if dataset == 'folder' else '.npz file'} "
                          f"(--data-dir)")
    path = Path(data_dir)
    if not path.exists():
        raise DataError(f"{'image folder' if dataset == 'folder' else 'npz file'} does not exist: {path}")
    return path


def _held_out(images: torch.Tensor, labels: torch.Tensor, names: list, split: str) -> LabelledImages:
    """The train or test part of a seeded, stratified hold-out of a single-split source: the
    last ceil(HOLDOUT_FRACTION * n_c) of each class's seeded permutation are test (none of a
    class of one image)."""
    keep = []
    for order in class_permutations(labels, len(names), HOLDOUT_SEED):
        n_test = math.ceil(HOLDOUT_FRACTION * len(order)) if len(order) > 1 else 0
        keep.append(order[len(order) - n_test:] if split == "test" else order[:len(order) - n_test])
    idx = torch.cat(keep).sort().values
    return LabelledImages(images[idx], labels[idx], names, "held out")


def source_path(data_dir: Optional[PathLike], dataset: str) -> Path:
    """The file or directory a source reads: an IDX directory as resolved (env, cache,
    torchvision's ``MNIST/raw``), else the path given."""
    return resolve_data_dir(data_dir) if dataset_name(dataset) in ("mnist", "idx") else _given_path(data_dir, dataset)


def describe_source(data_dir: Optional[PathLike], dataset: str = "mnist") -> dict:
    """What ``augment data verify`` reports of a source: its kind and path, the images in each
    split and where the test split comes from, and the class names; every check of
    ``load_labelled`` runs."""
    train, test = (load_labelled(data_dir, split, dataset) for split in ("train", "test"))
    return {"dataset": dataset, "path": str(source_path(data_dir, dataset)),
            "examples": {"train": len(train.labels), "test": len(test.labels)},
            "test_split": test.origin, "classes": train.class_names,
            "image_size": list(train.images.shape[1:])}
