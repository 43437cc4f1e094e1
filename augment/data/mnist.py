"""MNIST's four IDX files: their SHA-256, where they are looked for, checking a directory,
loading a split as uint8 images and int64 labels.

A data directory holds ``train-images-idx3-ubyte`` etc. (raw or ``.gz``) flat or in
torchvision's ``MNIST/raw`` layout. ``mnist=True`` checks MNIST's checksums; ``False`` takes
any IDX pair with MNIST's file names (structure still validated).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Optional

import torch

from augment.data.idx import find_idx_file, parse_idx, read_file_bytes
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
    ``$AUGMENT_DATA``, else ``~/.cache/augment/mnist``. Raises DataError when none holds them."""
    if root is not None:
        candidates = [Path(root)]
        if not Path(root).exists():
            raise DataError(f"data directory does not exist: {root}")
    elif os.environ.get("AUGMENT_DATA"):
        candidates = [Path(os.environ["AUGMENT_DATA"])]
    else:
        candidates = [default_data_dir()]
    for base in candidates:
        for d in (base, base / "MNIST" / "raw"):
            if find_idx_file(d, SPLITS["train"][0]) or find_idx_file(d, SPLITS["test"][0]):
                return d
    raise DataError(f"no IDX files (train-images-idx3-ubyte[.gz]) in {candidates[0]} or "
                    f"{candidates[0] / 'MNIST' / 'raw'}; run 'augment data fetch'")


def default_data_dir() -> Path:
    return Path(os.environ.get("AUGMENT_DATA") or Path.home() / ".cache" / "augment" / "mnist")


def check_mnist_checksum(name: str, raw: bytes, where: str) -> None:
    """Raise DataError unless ``raw`` is the uncompressed MNIST file ``name``."""
    size, digest = MNIST_FILES[name]
    if len(raw) != size or hashlib.sha256(raw).hexdigest() != digest:
        raise DataError(f"{where}: SHA-256 does not match MNIST's {name} (corrupt, or not MNIST: "
                        f"for other IDX data, use --dataset idx)")


def verify_dir(directory: PathLike, mnist: bool = True) -> dict:
    """Check every split found in ``directory`` (or ``directory/MNIST/raw``, torchvision's
    layout, as an ``augment dump`` writes): headers, sizes, image/label counts and (if
    ``mnist``) SHA-256. Returns {split: number of examples, 0 for an empty split}; raises
    DataError on the first problem or when no split is present."""
    directory = Path(directory)
    if not directory.is_dir():
        raise DataError(f"data directory {'is not a directory' if directory.exists() else 'does not exist'}: "
                        f"{directory}")
    found = {}
    for where in (directory, directory / "MNIST" / "raw"):
        for split, (img_name, lbl_name) in SPLITS.items():
            if find_idx_file(where, img_name) or find_idx_file(where, lbl_name):
                images, _ = load_split(where, split, mnist=mnist, allow_empty=True)
                found[split] = len(images)
        if found:
            return found
    raise DataError(f"no IDX files in {directory} or {directory / 'MNIST' / 'raw'}")


# -------------------------------------------------------------------------------------- load


def load_split(directory: PathLike, split: str = "train", mnist: bool = True, allow_empty: bool = False
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """Images ``(N, H, W)`` uint8 and labels ``(N,)`` int64 of one split ('train' or 'test').

    ``mnist=True`` verifies the SHA-256 of MNIST's files; ``False`` accepts any IDX pair of
    grayscale images with integer labels (structure still validated). An empty split is an
    error unless ``allow_empty``.
    """
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
        if mnist:
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
    return images, labels.long()
