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

The kind is ``dataset`` when given; ``dataset=None``, in every function here and every library
entry that takes ``dataset=``, means: recognised from the path (``detect_source_kind``).

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
from augment.data.mnist import MNIST_FILES, IdxReader, MnistReader, resolve_data_dir
from augment.data.npz import NpzReader
from augment.data.reader import HOLDOUT_FRACTION, HOLDOUT_SEED, LabelledImages, SourceReader
from augment.errors import ConfigError, DataError
from augment.fileio import PathLike

__all__ = ["HOLDOUT_FRACTION", "HOLDOUT_SEED", "LabelledImages", "READERS", "dataset_name", "describe_source",
           "detect_source_kind", "load_labelled", "open_source", "source_kind", "source_path"]

# every kind's reader, in the order detect_source_kind asks them (MNIST before any IDX pair)
READERS = {reader.kind: reader for reader in (MnistReader, IdxReader, FolderReader, NpzReader)}


def dataset_name(dataset: str) -> str:
    """``dataset``, checked to be one of ``DATASETS`` (a kind given by name; None, "recognise
    it from the path", is ``source_kind``'s)."""
    if dataset not in DATASETS:
        raise ConfigError(f"dataset must be one of {', '.join(DATASETS)}, got {dataset!r}")
    return dataset


def detect_source_kind(path: PathLike) -> str:
    """The kind of the data source at ``path``, recognised from the path alone: 'npz' for a file
    ending ``.npz``; for a directory (or its ``MNIST/raw``) holding IDX files of MNIST's names,
    'mnist' when all four are there and the two label files' SHA-256 are MNIST's (the images
    are checked when read), else 'idx'; 'folder' for a directory (or its ``train/``) of class
    folders holding images. Anything else: a one-line DataError naming ``--dataset``."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"data source does not exist: {path}")
    for kind, reader in READERS.items():
        if reader.recognises(path):
            return kind
    raise DataError(f"cannot tell what kind of data {path} is ({_unrecognised(path)}); pass --dataset "
                    f"{'|'.join(DATASETS)}")


def _unrecognised(path: Path) -> str:
    """Why ``path`` is no kind of source, with what to pass instead where that can be seen."""
    if path.is_file():
        if path.name.split(".")[0] in MNIST_FILES:
            return f"IDX files are read by their directory: pass {path.parent}"
        return "a data file is an .npz; other sources are directories"
    npz = sorted(p.name for p in path.glob("*.npz") if p.is_file())
    if npz:
        return f"it holds {npz[0]}: pass that file"
    return "no IDX files train-images-idx3-ubyte[.gz], flat or in MNIST/raw, and no class folders of images"


def source_kind(data_dir: Optional[PathLike], dataset: Optional[str] = None) -> str:
    """The kind of the source at ``data_dir``: ``dataset`` when given (checked), else recognised
    from the path (``detect_source_kind``; no ``data_dir``: the IDX directory ``$AUGMENT_DATA``,
    else the fetch cache, 'mnist' or 'idx')."""
    if dataset is not None:
        return dataset_name(dataset)
    return detect_source_kind(resolve_data_dir(None) if data_dir is None else data_dir)


def open_source(data_dir: Optional[PathLike], dataset: Optional[str] = None) -> SourceReader:
    """The reader of the source at ``data_dir`` of kind ``dataset`` (None: recognised from the
    path); a one-line error when the path is missing or of the wrong kind."""
    return READERS[source_kind(data_dir, dataset)](data_dir)


def load_labelled(data_dir: Optional[PathLike], split: str = "train", dataset: Optional[str] = None
                  ) -> LabelledImages:
    """The ``split`` ('train' or 'test') of a source (``dataset`` None: its kind recognised
    from the path); one-line ``DataError`` for bad data."""
    return open_source(data_dir, dataset).load(split)


def source_path(data_dir: Optional[PathLike], dataset: Optional[str] = None) -> Path:
    """The file or directory a source reads: an IDX directory as resolved (env, cache,
    torchvision's ``MNIST/raw``), else the path given."""
    return READERS[source_kind(data_dir, dataset)].locate(data_dir)


def describe_source(data_dir: Optional[PathLike], dataset: Optional[str] = None) -> dict:
    """What ``augment data verify`` reports of a source (``dataset`` None: its kind recognised
    from the path): its kind and path, the images in each split (an IDX directory: each split
    present, 0 for an empty one, as a dump of one split writes) and where the test split comes
    from, the class names and the image size (H, W); every check of ``load_labelled`` runs."""
    return open_source(data_dir, dataset).describe()
