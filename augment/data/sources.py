"""Where labelled images come from: one entry point for every command and dataset.

A data source is a path and a kind (``dataset``), and each kind is one reader
(``augment.data.reader.SourceReader``):

* ``mnist`` (``MnistReader``): MNIST's four IDX files, SHA-256 checked (a directory, default
  ``$AUGMENT_DATA``, else ``~/.cache/augment/mnist``; flat or torchvision's ``MNIST/raw`` layout);
* ``idx`` (``IdxReader``): any IDX pair with MNIST's file names (the same layouts, not
  checksummed);
* ``folder`` (``FolderReader``): an ImageFolder-style directory, one folder per class, or
  ``train/`` and ``test/`` folders of such (``augment.data.image_folder``);
* ``npz`` (``NpzReader``): an ``.npz`` file of ``x``, ``y`` and optionally ``class_names``,
  ``x_test``/``y_test`` (``augment.data.npz``).

Splits: the source's own test split where it has one; otherwise a seeded, stratified hold-out
(``HOLDOUT_FRACTION`` of each class, the same images every time). Class names come from the
folders, the npz's ``class_names``, or are "0".."C-1". Every reader holds to one budget of
pixels and bytes (``augment.data.limits``, ``$AUGMENT_MAX_PIXELS``), checked from headers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from augment.config import DATASETS
from augment.data.image_folder import FolderReader
from augment.data.mnist import IdxReader, MnistReader
from augment.data.npz import NpzReader
from augment.data.reader import HOLDOUT_FRACTION, HOLDOUT_SEED, LabelledImages, SourceReader
from augment.errors import ConfigError
from augment.fileio import PathLike

__all__ = ["HOLDOUT_FRACTION", "HOLDOUT_SEED", "LabelledImages", "READERS", "dataset_name", "describe_source",
           "load_labelled", "open_source", "source_path"]

READERS = {reader.kind: reader for reader in (MnistReader, IdxReader, FolderReader, NpzReader)}


def dataset_name(dataset: Optional[str] = None) -> str:
    """The kind of a source: ``dataset`` (one of ``DATASETS``), 'mnist' when None."""
    if dataset is None:
        return "mnist"
    if dataset not in DATASETS:
        raise ConfigError(f"dataset must be one of {', '.join(DATASETS)}, got {dataset!r}")
    return dataset


def open_source(data_dir: Optional[PathLike], dataset: str = "mnist") -> SourceReader:
    """The reader of the source at ``data_dir`` of kind ``dataset``; a one-line error when the
    path is missing or of the wrong kind."""
    return READERS[dataset_name(dataset)](data_dir)


def load_labelled(data_dir: Optional[PathLike], split: str = "train", dataset: str = "mnist") -> LabelledImages:
    """The ``split`` ('train' or 'test') of a source; one-line ``DataError`` for bad data."""
    return open_source(data_dir, dataset).load(split)


def source_path(data_dir: Optional[PathLike], dataset: str) -> Path:
    """The file or directory a source reads: an IDX directory as resolved (env, cache,
    torchvision's ``MNIST/raw``), else the path given."""
    return READERS[dataset_name(dataset)].locate(data_dir)


def describe_source(data_dir: Optional[PathLike], dataset: str = "mnist") -> dict:
    """What ``augment data verify`` reports of a source: its kind and path, the images in each
    split (an IDX directory: each split present, 0 for an empty one, as a dump of one split
    writes) and where the test split comes from, the class names and the image size (H, W);
    every check of ``load_labelled`` runs."""
    return open_source(data_dir, dataset).describe()
