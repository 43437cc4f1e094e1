"""The output formats of a dump, each a writer that streams one split batch by batch:

* ``idx``: ``MNIST/raw/<prefix>-images-idx3-ubyte`` and ``-labels-idx1-ubyte``, torchvision's
  MNIST layout (header first, then the pixels as they come);
* ``png``: ``png/<split>/<class>/<index>.png``, 8-bit grayscale, fixed compression, no metadata:
  an ImageFolder root;
* ``npz``: ``<split>.npz`` with ``y`` (labels, written first) and ``x`` (images, streamed), fixed
  zip entry dates: ``np.load`` reads it.

Every writer has ``write(images (k, H, W) uint8, labels (k,), start)``, ``close()`` and
``files(root)`` (what the manifest records of it). ``augment.synthetic.dump`` drives them.
"""

from __future__ import annotations

import hashlib
import io
import re
import zipfile
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch
from PIL import Image

from augment.errors import ConfigError
from augment.fileio import sha256_file

FORMATS = ("idx", "png", "npz")
SPLITS = {"train": "train", "test": "t10k"}  # split -> IDX file prefix
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)


# ------------------------------------------------------------------------------- writers


class IdxWriter:
    """Streams MNIST/raw/<prefix>-images-idx3-ubyte and -labels-idx1-ubyte (header first)."""

    def __init__(self, root: Path, split: str, num_samples: int, size: tuple):
        raw = root / "MNIST" / "raw"
        raw.mkdir(parents=True, exist_ok=True)
        prefix = SPLITS[split]
        self.paths = [raw / f"{prefix}-images-idx3-ubyte", raw / f"{prefix}-labels-idx1-ubyte"]
        self.images = open(self.paths[0], "wb")
        self.labels = open(self.paths[1], "wb")
        self.images.write(_idx_header((num_samples, *size)))
        self.labels.write(_idx_header((num_samples,)))
        self.raw = raw

    def write(self, images: torch.Tensor, labels: torch.Tensor, start: int) -> None:
        self.images.write(images.contiguous().numpy().tobytes())
        self.labels.write(labels.to(torch.uint8).numpy().tobytes())

    def close(self) -> None:
        self.images.close()
        self.labels.close()

    def files(self, root: Path) -> dict:
        return {p.relative_to(root).as_posix(): file_info(p) for p in self.paths}


def write_empty_idx(root: Path, split: str, size: tuple) -> dict:
    """A valid IDX pair of 0 items of ``size`` (H, W) for a split not dumped (torchvision wants
    all four files)."""
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    images, labels = raw / f"{SPLITS[split]}-images-idx3-ubyte", raw / f"{SPLITS[split]}-labels-idx1-ubyte"
    images.write_bytes(_idx_header((0, *size)))
    labels.write_bytes(_idx_header((0,)))
    return {p.relative_to(root).as_posix(): file_info(p) for p in (images, labels)}


def _idx_header(dims: Sequence[int]) -> bytes:
    return bytes([0, 0, 0x08, len(dims)]) + b"".join(int(d).to_bytes(4, "big") for d in dims)


class PngTreeWriter:
    """png/<split>/<class>/<index>.png, 8-bit grayscale, fixed compression, no metadata.

    A class folder is its zero-padded id (``3``, or ``03`` with 11+ classes), followed by
    ``_<name>`` when the classes have names other than their ids (``3_cat``), so that sorting
    the folders, as ``ImageFolder`` does, keeps the class order."""

    def __init__(self, root: Path, split: str, num_samples: int, num_classes: int,
                 class_names: Optional[Sequence[str]] = None):
        self.base = root / "png" / split
        self.width = max(5, len(str(num_samples - 1)))
        self.class_width = len(str(num_classes - 1))
        self.names = class_names
        self.digest = hashlib.sha256()
        self.count = 0

    def class_dir(self, label: int) -> Path:
        return self.base / class_folder_name(label, self.class_width, self.names)

    def write(self, images: torch.Tensor, labels: torch.Tensor, start: int) -> None:
        for k, (img, label) in enumerate(zip(images.numpy(), labels.tolist())):
            buf = io.BytesIO()
            Image.fromarray(img).save(buf, format="PNG", compress_level=6, optimize=False)
            folder = self.class_dir(label)
            folder.mkdir(parents=True, exist_ok=True)
            name = f"{start + k:0{self.width}d}.png"
            data = buf.getvalue()
            (folder / name).write_bytes(data)
            self.digest.update(f"{folder.name}/{name}:{len(data)}:".encode() + data)
            self.count += 1

    def close(self) -> None:
        pass

    def files(self, root: Path) -> dict:
        return {self.base.relative_to(root).as_posix() + "/": {
            "count": self.count, "sha256_of_files_in_index_order": self.digest.hexdigest()}}


def class_folder_name(label: int, width: int, names: Optional[Sequence[str]] = None) -> str:
    """``3`` (names that are the ids, or none), else ``3_cat`` (the name made file-safe)."""
    folder = str(label).zfill(width)
    if names is None or list(names) == [str(c) for c in range(len(names))]:
        return folder
    return f"{folder}_{re.sub(r'[^A-Za-z0-9._-]+', '-', names[label]).strip('-.') or 'class'}"


class NpzWriter:
    """<split>.npz with y (labels, written first) and x (images, streamed): np.load reads it."""

    def __init__(self, root: Path, split: str, num_samples: int, labels: torch.Tensor, size: tuple):
        self.path = root / f"{split}.npz"
        self.zip = zipfile.ZipFile(self.path, "w", compression=zipfile.ZIP_STORED, allowZip64=True)
        with self.zip.open(_zip_info("y.npy"), "w", force_zip64=True) as f:
            np.lib.format.write_array(f, labels.numpy().astype("<i8"), version=(1, 0))
        self.x = self.zip.open(_zip_info("x.npy"), "w", force_zip64=True)
        np.lib.format.write_array_header_1_0(
            self.x, {"descr": "|u1", "fortran_order": False, "shape": (num_samples, *size)})

    def write(self, images: torch.Tensor, labels: torch.Tensor, start: int) -> None:
        self.x.write(images.contiguous().numpy().tobytes())

    def close(self) -> None:
        self.x.close()
        self.zip.close()

    def files(self, root: Path) -> dict:
        return {self.path.relative_to(root).as_posix(): file_info(self.path)}


def _zip_info(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=_ZIP_DATE)
    info.compress_type = zipfile.ZIP_STORED
    info.create_system = 3
    info.external_attr = 0o644 << 16
    return info


def file_info(path: Path) -> dict:
    return {"bytes": path.stat().st_size, "sha256": sha256_file(path)}


def check_formats(formats: Sequence[str]) -> list:
    if isinstance(formats, str):
        formats = [formats]
    formats = [str(f).lower() for f in formats]
    if not formats:
        raise ConfigError(f"no output format given; choose from {', '.join(FORMATS)}")
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise ConfigError(f"unknown format {unknown[0]!r}; choose from {', '.join(FORMATS)}")
    return [f for f in FORMATS if f in formats]
