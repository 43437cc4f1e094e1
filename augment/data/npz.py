"""A ``.npz`` file as labelled grayscale images (``NpzReader``, kind 'npz'): ``x`` uint8
(N, H, W), ``y`` integer labels (N,) in 0..C-1, and optionally ``class_names`` (C strings, str
or UTF-8 bytes) and a test split ``x_test``/``y_test``.

The zip archive is read member by member: each member's ``.npy`` header (shape, dtype) is read
and checked (kinds, lengths, the budget of ``augment.data.limits``) before its data is
inflated, and only the members of the split asked for are inflated. Arrays of Python objects
are refused, never unpickled. What ``augment dump -f npz`` writes (``train.npz``: x, y) reads
back unchanged.
"""

from __future__ import annotations

import math
import zipfile
import zlib
from pathlib import Path
from typing import BinaryIO, Optional

import numpy as np
import torch

from augment.data.limits import check_bytes, check_image_shape, open_regular
from augment.data.reader import SourceReader
from augment.errors import ConfigError, DataError
from augment.fileio import PathLike

KEYS = ("x", "y", "class_names", "x_test", "y_test")
MEMBERS = {"train": ("x", "y"), "test": ("x_test", "y_test")}
_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")  # a local file header; an empty archive
_NPY_MAGIC = b"\x93NUMPY"


class NpzReader(SourceReader):
    """``--dataset npz``: an ``.npz`` file; its own test split when it holds ``x_test``."""

    kind = "npz"

    @classmethod
    def recognises(cls, path: Path) -> bool:
        return path.is_file() and path.suffix.lower() == ".npz"

    def __init__(self, root: Optional[PathLike]):
        super().__init__(root)
        with _open_archive(self.path) as archive:
            unknown = sorted(set(archive) - set(KEYS))
            if unknown:
                raise DataError(f"{self.path}: unexpected arrays {unknown}; an npz data set holds {', '.join(KEYS)}")
            if "x" not in archive or "y" not in archive:
                raise DataError(f"{self.path}: an npz data set needs arrays x (images) and y (labels)")
            if ("x_test" in archive) != ("y_test" in archive):
                raise DataError(f"{self.path}: x_test and y_test go together")
            self._members = set(archive)

    @classmethod
    def locate(cls, root: Optional[PathLike]) -> Path:
        if root is None:
            raise ConfigError("dataset 'npz' needs a path: the .npz file (--data-dir)")
        path = Path(root)
        if not path.exists():
            raise DataError(f"npz file does not exist: {path}")
        if not path.is_file():
            raise DataError(f"npz file is not a file: {path}")
        return path

    def has_own_test(self) -> bool:
        return "x_test" in self._members

    def read(self, split: str, allow_empty: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        xname, yname = MEMBERS[split]
        with _open_archive(self.path) as archive:
            x_shape, x_dtype = _header(archive, self.path, xname)
            y_shape, y_dtype = _header(archive, self.path, yname)
            if x_dtype != np.uint8 or len(x_shape) != 3:
                raise DataError(f"{self.path}: {xname} must be uint8 images (N, H, W), got {x_dtype} {x_shape}")
            if len(y_shape) != 1 or y_dtype.kind not in "iu":
                raise DataError(f"{self.path}: {yname} must be integer labels (N,), got {y_dtype} {y_shape}")
            if x_shape[0] != y_shape[0]:
                raise DataError(f"{self.path}: {x_shape[0]} images in {xname} but {y_shape[0]} labels in {yname}")
            if not x_shape[0]:
                raise DataError(f"{self.path}: {xname} holds no image")
            check_image_shape(x_shape, f"{self.path}: {xname}")
            x, y = _array(archive, self.path, xname), _array(archive, self.path, yname)
        return torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(y.astype(np.int64))

    def reference_labels(self, split: str, labels: torch.Tensor) -> torch.Tensor:
        if split == "train":
            return labels
        with _open_archive(self.path) as archive:  # the train labels alone, not the train images
            shape, dtype = _header(archive, self.path, "y")
            if len(shape) != 1 or dtype.kind not in "iu" or not shape[0]:
                raise DataError(f"{self.path}: y must be integer labels (N,), N > 0, got {dtype} {shape}")
            return torch.from_numpy(_array(archive, self.path, "y").astype(np.int64))

    def class_names(self) -> Optional[list]:
        if "class_names" not in self._members:
            return None
        with _open_archive(self.path) as archive:
            shape, dtype = _header(archive, self.path, "class_names")
            if len(shape) != 1 or dtype.kind not in "US":
                raise DataError(f"{self.path}: class_names must be a 1-D array of strings, got {dtype} {shape}")
            names = _array(archive, self.path, "class_names").tolist()
        try:
            return [n.decode("utf-8") if isinstance(n, bytes) else str(n) for n in names]
        except UnicodeDecodeError:
            raise DataError(f"{self.path}: class_names stored as bytes that are not UTF-8 text; store them as "
                            f"strings") from None


class _Archive(dict):
    """The members of an open npz file: array name -> zip member name; closes the file."""

    def __init__(self, file: BinaryIO, zf: zipfile.ZipFile):
        super().__init__((n[:-4] if n.endswith(".npy") else n, n) for n in zf.namelist())
        self.file, self.zip = file, zf

    def __enter__(self) -> "_Archive":
        return self

    def __exit__(self, *exc) -> None:
        self.zip.close()
        self.file.close()


def _open_archive(path: Path) -> _Archive:
    """The npz file at ``path`` opened as a zip archive: a one-line DataError for a plain
    ``.npy``, anything that is not a zip archive, or a corrupt one."""
    file = open_regular(path)
    try:
        start = file.read(len(_NPY_MAGIC))
        if start.startswith(_NPY_MAGIC):
            raise DataError(f"{path}: a single .npy array, not an .npz archive; save x and y with np.savez")
        if not start.startswith(_ZIP_MAGIC):
            raise DataError(f"{path}: not an npz file (an .npz is a zip archive of .npy arrays, as np.savez "
                            f"writes; this file starts with {start[:4]!r})")
        file.seek(0)
        return _Archive(file, zipfile.ZipFile(file))
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as e:
        file.close()
        if isinstance(e, DataError):
            raise
        raise DataError(f"{path}: not a readable npz file ({type(e).__name__})") from None
    except BaseException:
        file.close()
        raise


def _header(archive: _Archive, path: Path, key: str) -> tuple[tuple, np.dtype]:
    """(shape, dtype) of member ``key`` from its ``.npy`` header alone; a one-line DataError
    for an array of objects or one that would hold more bytes than the budget."""
    try:
        with archive.zip.open(archive[key]) as member:
            version = np.lib.format.read_magic(member)
            if version == (1, 0):
                shape, _, dtype = np.lib.format.read_array_header_1_0(member)
            elif version == (2, 0):
                shape, _, dtype = np.lib.format.read_array_header_2_0(member)
            else:
                raise DataError(f"{path}: {key}.npy has .npy format version {version}; save it with np.savez")
    except DataError:
        raise
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error, NotImplementedError) as e:
        raise DataError(f"{path}: {key} is not a readable .npy array ({type(e).__name__}: "
                        f"{str(e).splitlines()[0][:100] if str(e) else ''})") from None
    if dtype.hasobject:
        raise DataError(f"{path}: {key} holds Python objects (pickled data), refused; store plain arrays")
    check_bytes(math.prod(shape) * dtype.itemsize, f"{path}: {key}", "declares")
    return tuple(int(d) for d in shape), dtype


def _array(archive: _Archive, path: Path, key: str) -> np.ndarray:
    """Member ``key``'s data, after ``_header`` has checked it."""
    try:
        with archive.zip.open(archive[key]) as member:
            return np.lib.format.read_array(member, allow_pickle=False)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error) as e:
        raise DataError(f"{path}: {key} is not a readable .npy array ({type(e).__name__})") from None
