"""MNIST's four IDX files: their SHA-256, where they are looked for (``resolve_data_dir``; the
default place, ``$AUGMENT_DATA`` else the fetch cache; ``locate_mnist``, the first place that
holds MNIST), checking a directory, loading a split as uint8 images and int64 labels, and the
two readers of IDX directories (``augment.data.reader``): ``MnistReader`` (kind 'mnist',
MNIST's checksums) and ``IdxReader`` (kind 'idx', any IDX pair with MNIST's file names,
structure still validated).

A data directory holds ``train-images-idx3-ubyte`` etc. (raw or ``.gz``) flat or in
torchvision's ``MNIST/raw`` layout.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Optional

import torch

from augment.data.idx import find_idx_file, parse_idx, read_file_bytes, read_idx
from augment.data.limits import check_image_shape
from augment.data.reader import SourceReader
from augment.errors import DataError
from augment.fileio import PathLike

# Uncompressed MNIST files: name -> (bytes, sha256).
MNIST_FILES = {
    "train-images-idx3-ubyte": (47040016, "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db"),
    "train-labels-idx1-ubyte": (60008, "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5"),
    "t10k-images-idx3-ubyte": (7840016, "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7"),
    "t10k-labels-idx1-ubyte": (10008, "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2"),
}
SPLITS = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def resolve_data_dir(root: Optional[PathLike] = None) -> Path:
    """Where the IDX files are: ``root`` (or ``root/MNIST/raw``, torchvision's layout), else
    ``$AUGMENT_DATA``, else the fetch cache (``default_data_dir``). Raises DataError when none
    holds them."""
    other_kind = "; for another kind of data, leave out --dataset to have it recognised"
    if root is not None and not Path(root).is_dir():
        raise DataError(f"data directory {'is not a directory' if Path(root).exists() else 'does not exist'}: "
                        f"{root}" + (other_kind if Path(root).exists() else ""))
    base = Path(root) if root is not None else default_data_dir()
    found = find_idx_dir(base)
    if found is None:
        raise DataError(f"no IDX files (train-images-idx3-ubyte[.gz]) in {base} or {base / 'MNIST' / 'raw'}"
                        + ("; run 'augment data fetch'" if root is None else other_kind))
    return found


def find_idx_dir(base: Path) -> Optional[Path]:
    """``base`` or ``base/MNIST/raw`` (torchvision's layout), the first holding an IDX images file
    of either split (MNIST's names, raw or ``.gz``); None when neither does."""
    for d in (base, base / "MNIST" / "raw"):
        if any(find_idx_file(d, images) for images, _ in SPLITS.values()):
            return d
    return None


def default_data_dir() -> Path:
    """Where MNIST is when no directory is given, and where ``augment data fetch`` writes it:
    ``$AUGMENT_DATA``, else the fetch cache ``~/.cache/augment/mnist``."""
    return Path(os.environ.get("AUGMENT_DATA") or fetch_cache_dir())


def fetch_cache_dir() -> Path:
    """The fetch cache, ``~/.cache/augment/mnist``: where ``augment data fetch`` writes without
    ``--dest`` and ``$AUGMENT_DATA``."""
    return Path.home() / ".cache" / "augment" / "mnist"


def locate_mnist(*more: PathLike) -> Optional[Path]:
    """The first directory holding MNIST (``is_mnist_dir``) among ``$AUGMENT_DATA``, the fetch
    cache and ``more`` (e.g. a checkout's shared data), as ``resolve_data_dir`` finds its files
    (flat or ``MNIST/raw``); None when none does. Where the tests look for real MNIST."""
    candidates = [Path(os.environ["AUGMENT_DATA"])] if os.environ.get("AUGMENT_DATA") else []
    for base in [*candidates, fetch_cache_dir(), *map(Path, more)]:
        if is_mnist_dir(base):
            return find_idx_dir(base)
    return None


def is_mnist_dir(path: PathLike) -> bool:
    """Whether the directory ``path`` (flat or ``MNIST/raw``) holds MNIST: its four files by
    name, raw or ``.gz``, and the two label files' SHA-256 MNIST's (60 KB and 10 KB: a quick
    tell of MNIST from another set under the same names, e.g. Fashion-MNIST; the images are
    checked when they are read)."""
    directory = find_idx_dir(Path(path)) if Path(path).is_dir() else None
    if directory is None or not all(find_idx_file(directory, name) for name in MNIST_FILES):
        return False
    for _, labels in SPLITS.values():
        try:
            if not is_mnist_file(labels, read_file_bytes(find_idx_file(directory, labels))):
                return False
        except DataError:  # unreadable: not told MNIST here (the idx reader says why when it reads it)
            return False
    return True


def is_mnist_file(name: str, raw: bytes) -> bool:
    """Whether ``raw`` is the uncompressed MNIST file ``name`` (its size and SHA-256)."""
    size, digest = MNIST_FILES[name]
    return len(raw) == size and hashlib.sha256(raw).hexdigest() == digest


def check_mnist_checksum(name: str, raw: bytes, where: str) -> None:
    """Raise DataError unless ``raw`` is the uncompressed MNIST file ``name``."""
    if not is_mnist_file(name, raw):
        raise DataError(f"{where}: SHA-256 does not match MNIST's {name} (corrupt, or not MNIST: "
                        f"for other IDX data, use --dataset idx)")


def verify_dir(directory: PathLike, dataset: str = "mnist") -> dict:
    """Check every split found in ``directory`` (or ``directory/MNIST/raw``, torchvision's
    layout, as an ``augment dump`` writes): headers, sizes, image/label counts, the labels'
    classes and (``dataset`` 'mnist') SHA-256. Returns {split: number of examples, 0 for an
    empty split}; raises DataError on the first problem or when no split is present."""
    _check_idx_kind(dataset)
    directory = Path(directory)
    if not directory.is_dir():
        raise DataError(f"data directory {'is not a directory' if directory.exists() else 'does not exist'}: "
                        f"{directory}")
    reader = (MnistReader if dataset == "mnist" else IdxReader)(directory)
    return reader.describe()["examples"]


# -------------------------------------------------------------------------------------- load


def load_split(directory: PathLike, split: str = "train", dataset: str = "mnist", allow_empty: bool = False
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """Images ``(N, H, W)`` uint8 and labels ``(N,)`` int64 of one split ('train' or 'test'),
    as the files hold them (no check of the labels' classes: ``load_labelled`` does those).

    ``dataset`` 'mnist' verifies the SHA-256 of MNIST's files; 'idx' accepts any IDX pair of
    grayscale images with integer labels (structure still validated). An empty split is an
    error unless ``allow_empty``.
    """
    checksum = _check_idx_kind(dataset) == "mnist"
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}; expected 'train' or 'test'")
    directory = Path(directory)
    arrays = []
    for name in SPLITS[split]:
        path = find_idx_file(directory, name)
        if path is None:
            raise DataError(f"missing {name}[.gz] in {directory}")
        raw = read_file_bytes(path)
        arrays.append(parse_idx(raw, str(path)))
        if checksum:
            check_mnist_checksum(name, raw, str(path))
    images, labels = arrays
    if images.dim() != 3:
        raise DataError(f"{directory}: images must have 3 dimensions (N, H, W), got {list(images.shape)}")
    if labels.dim() != 1:
        raise DataError(f"{directory}: labels must have 1 dimension, got {list(labels.shape)}")
    if len(images) != len(labels):
        raise DataError(f"{directory}: {len(images)} images but {len(labels)} labels in split {split!r}")
    if len(images) == 0 and not allow_empty:
        raise DataError(f"{directory}: split {split!r} is empty")
    check_image_shape(images.shape, str(find_idx_file(directory, SPLITS[split][0])))
    return images, labels.long()


def _check_idx_kind(dataset: str) -> str:
    if dataset not in ("mnist", "idx"):
        raise DataError(f"IDX files are dataset 'mnist' or 'idx', not {dataset!r}")
    return dataset


# ------------------------------------------------------------------------------------ readers


class IdxReader(SourceReader):
    """``--dataset idx``: any IDX pair with MNIST's file names, raw or gzipped, flat or in
    torchvision's ``MNIST/raw`` layout. Its own test split when the ``t10k-`` files are there,
    else held out; classes numbered by the train labels (the test labels when the train split
    is empty, as in a dump of a test split)."""

    kind = "idx"

    @classmethod
    def recognises(cls, path: Path) -> bool:
        return path.is_dir() and find_idx_dir(path) is not None

    @classmethod
    def locate(cls, root: Optional[PathLike]) -> Path:
        return resolve_data_dir(root)

    def has_own_test(self) -> bool:
        return any(find_idx_file(self.path, name) for name in SPLITS["test"])

    def read(self, split: str, allow_empty: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        return load_split(self.path, split, self.kind, allow_empty)

    def reference_labels(self, split: str, labels: torch.Tensor) -> torch.Tensor:
        for other in ("train", "test"):
            found = labels if other == split else self._labels(other)
            if found is not None and len(found):
                return found
        return labels

    def present_splits(self) -> tuple:
        found = tuple(split for split, names in SPLITS.items() if any(find_idx_file(self.path, n) for n in names))
        return found if self.has_own_test() else ("train", "test")

    def _labels(self, split: str) -> Optional[torch.Tensor]:
        """A split's labels (a small file), or None when the file is absent or not 1-D."""
        path = find_idx_file(self.path, SPLITS[split][1])
        labels = read_idx(path) if path is not None else None
        return labels.long() if labels is not None and labels.dim() == 1 else None


class MnistReader(IdxReader):
    """``--dataset mnist``: MNIST's four IDX files, each SHA-256 checked; both splits its own."""

    kind = "mnist"

    @classmethod
    def recognises(cls, path: Path) -> bool:
        return is_mnist_dir(path)

    def has_own_test(self) -> bool:
        return True
