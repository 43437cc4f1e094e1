"""A ``.npz`` file as labelled grayscale images: ``x`` uint8 (N, H, W), ``y`` integer labels (N,)
in 0..C-1, and optionally ``class_names`` (C strings) and a test split ``x_test``/``y_test``.

Read with ``allow_pickle=False``: a file that holds Python objects is refused, not unpickled.
What ``augment dump -f npz`` writes (``train.npz``: x, y) reads back unchanged.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from augment.errors import DataError

KEYS = ("x", "y", "class_names", "x_test", "y_test")


def read_npz(path: Path) -> dict:
    """{"train": (images, labels), "test": (images, labels) or absent, "class_names": list or
    None} of an npz file; one-line DataError for anything else."""
    if not path.is_file():
        raise DataError(f"npz file {'is not a file' if path.exists() else 'does not exist'}: {path}")
    try:
        with open(path, "rb") as file, np.load(file, allow_pickle=False) as archive:
            unknown = sorted(set(archive.files) - set(KEYS))
            if unknown:
                raise DataError(f"{path}: unexpected arrays {unknown}; an npz data set holds {', '.join(KEYS)}")
            if "x" not in archive.files or "y" not in archive.files:
                raise DataError(f"{path}: an npz data set needs arrays x (images) and y (labels)")
            arrays = {k: archive[k] for k in archive.files}
    except DataError:
        raise
    except ValueError as e:  # object arrays (pickles) are refused by allow_pickle=False
        raise DataError(f"{path}: refused ({str(e).splitlines()[0][:120]}); store plain arrays") from None
    except (OSError, zipfile.BadZipFile, EOFError) as e:
        raise DataError(f"{path}: not a readable npz file ({type(e).__name__})") from None
    names = arrays.get("class_names")
    if names is not None:
        if names.ndim != 1 or names.dtype.kind not in "US":
            raise DataError(f"{path}: class_names must be a 1-D array of strings")
        names = [str(n) for n in names.tolist()]
    out = {"train": _split(path, arrays["x"], arrays["y"], "x", "y"), "class_names": names}
    if ("x_test" in arrays) != ("y_test" in arrays):
        raise DataError(f"{path}: x_test and y_test go together")
    if "x_test" in arrays:
        out["test"] = _split(path, arrays["x_test"], arrays["y_test"], "x_test", "y_test")
    return out


def _split(path: Path, x: np.ndarray, y: np.ndarray, xname: str, yname: str) -> tuple[torch.Tensor, torch.Tensor]:
    if x.dtype != np.uint8 or x.ndim != 3:
        raise DataError(f"{path}: {xname} must be uint8 images (N, H, W), got {x.dtype} {tuple(x.shape)}")
    if y.ndim != 1 or y.dtype.kind not in "iu":
        raise DataError(f"{path}: {yname} must be integer labels (N,), got {y.dtype} {tuple(y.shape)}")
    if len(x) != len(y):
        raise DataError(f"{path}: {len(x)} images in {xname} but {len(y)} labels in {yname}")
    if not len(y):
        raise DataError(f"{path}: {xname} holds no image")
    return torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(y.astype(np.int64))


def check_label_range(path: Path, labels: torch.Tensor, names: Optional[list], split: str) -> int:
    """The number of classes, C: len(class_names), else max(label) + 1; labels must lie in
    0..C-1 and (in the train split) every class must have an image."""
    lo, hi = int(labels.min()), int(labels.max())
    classes = len(names) if names is not None else hi + 1
    if lo < 0 or hi >= classes:
        raise DataError(f"{path}: {split} labels span [{lo}, {hi}]; they must lie in 0..{classes - 1}"
                        + (" (one per class name)" if names is not None else ""))
    if split == "train":
        missing = sorted(set(range(classes)) - set(torch.unique(labels).tolist()))
        if missing:
            raise DataError(f"{path}: labels must be 0..C-1 with every class present; class {missing[0]} has no image")
    if classes < 2:
        raise DataError(f"{path}: a data set needs at least 2 classes, found {classes}")
    return classes
