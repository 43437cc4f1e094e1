"""An ImageFolder-style directory as labelled grayscale images (``FolderReader``, kind
'folder'): one folder per class (its name is the class name; classes numbered in sorted order,
as torchvision's ``ImageFolder`` does), holding PNG, JPEG or BMP files of any size. Every
image's size is read from its header, and the total held to the budget of
``augment.data.limits``, before any image is decoded; only regular files are opened.

Conversions, each stated once by a warning when it happens: a colour image becomes grayscale
(PIL's ``convert("L")``, ITU-R 601-2 luma; 16-bit grayscale keeps its top 8 bits; pixels
beyond 16 bits and float pixels are refused); when the images do not all share one size, each is
resized to the models' 32x32 with antialiased bilinear interpolation (half-pixel centres), as
``augment.images.to_model_images`` resizes MNIST's 28x28. Images of one common size are kept
as they are (and resized with everything else when they enter a model). Hidden files (a name
starting with '.') are skipped; any other file that is not an image is an error.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Callable, Optional, TypeVar

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError

from augment.config import IMAGE_SIZE
from augment.data.limits import check_pixels, image_pixels, open_regular
from augment.data.reader import SourceReader
from augment.errors import ConfigError, DataError
from augment.fileio import PathLike

T = TypeVar("T")

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")


class ConversionWarning(UserWarning):
    """Images were converted (to grayscale, or resized) to be read as a data set."""


def class_folders(root: Path) -> list[Path]:
    """The class folders of ``root`` in class order (sorted by name); a one-line DataError when
    there are fewer than two, or a class folder holds no image."""
    if not root.is_dir():
        raise DataError(f"image folder {'is not a directory' if root.exists() else 'does not exist'}: {root}")
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    stray = sorted(p.name for p in root.iterdir() if not p.is_dir() and not p.name.startswith("."))
    if stray:
        raise DataError(f"{root}: expected one folder per class, found the file {stray[0]} beside them")
    if len(folders) < 2:
        raise DataError(f"{root}: an image folder needs a folder per class and at least 2 classes, found "
                        f"{len(folders)} folder{'s' if len(folders) != 1 else ''}")
    return folders


def _image_files(folder: Path) -> list[Path]:
    files = sorted(p for p in folder.iterdir() if not p.name.startswith("."))
    for p in files:
        if p.is_dir():
            raise DataError(f"{folder}: class folders hold images, not folders ({p.name})")
        if p.suffix.lower() not in IMAGE_SUFFIXES:
            raise DataError(f"not an image file (PNG, JPEG or BMP): {p}")
    if not files:
        raise DataError(f"class folder {folder} holds no image")
    return files


def _holds_an_image(folder: Path) -> bool:
    return any(p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".") for p in folder.iterdir())


def read_image_folder(root: Path) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """(images (N, H, W) uint8, labels (N,) int64, class names) of an image folder; images of
    mixed sizes come back 32x32 (see the module docstring). Every image's size is read from its
    header first (PIL's lazy open), and the total checked against the budget
    (``augment.data.limits``), before any image is decoded."""
    folders = class_folders(root)
    files = [(label, path) for label, folder in enumerate(folders) for path in _image_files(folder)]
    check_pixels(sum(image_pixels(*_open_image(path)) for _, path in files), str(root))
    arrays, converted = [], set()
    for _, path in files:
        arrays.append(_open_image(path, lambda img: _decoded(img, path, converted)))
    if converted:
        warnings.warn(f"{root}: {', '.join(sorted(converted))} images converted to grayscale (L)", ConversionWarning,
                      stacklevel=2)
    shapes = {a.shape for a in arrays}
    if len(shapes) == 1:
        images = torch.from_numpy(np.stack(arrays))
    else:
        warnings.warn(f"{root}: images of {len(shapes)} sizes resized to {IMAGE_SIZE}x{IMAGE_SIZE} (antialiased "
                      f"bilinear)", ConversionWarning, stacklevel=2)
        images = torch.stack([_resized(a) for a in arrays])
    return images, torch.tensor([label for label, _ in files], dtype=torch.long), [f.name for f in folders]


def _open_image(path: Path, use: Optional[Callable[[Image.Image], T]] = None) -> T:
    """``use`` applied to the image at ``path`` (a regular file) opened lazily: only its header
    is read until ``use`` asks for pixels. Without ``use``, its size (W, H) from the header."""
    try:
        with open_regular(path) as file, Image.open(file) as img:
            if min(img.size) < 1:
                raise DataError(f"{path}: an image of {img.size[0]}x{img.size[1]} pixels; an image needs a width "
                                f"and height of at least 1")
            return img.size if use is None else use(img)
    except DataError:
        raise
    except Image.DecompressionBombError as e:
        raise DataError(f"{path}: refused by Pillow as a decompression bomb ({str(e).split('.')[0]})") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as e:
        raise DataError(f"cannot read the image {path} ({type(e).__name__})") from None


class FolderReader(SourceReader):
    """``--dataset folder``: one folder per class, or ``train/`` and ``test/`` folders of such
    (``test/`` with the same classes); without ``test/``, the test split is held out."""

    kind = "folder"

    @classmethod
    def recognises(cls, path: Path) -> bool:
        """A directory (or its ``train/``) with a class folder holding an image file."""
        if not path.is_dir():
            return False
        root = path / "train" if (path / "train").is_dir() else path
        return any(folder.is_dir() and not folder.name.startswith(".") and _holds_an_image(folder)
                   for folder in root.iterdir())

    @classmethod
    def locate(cls, root: Optional[PathLike]) -> Path:
        if root is None:
            raise ConfigError("dataset 'folder' needs a path: the folder (--data-dir)")
        if not Path(root).exists():
            raise DataError(f"image folder does not exist: {root}")
        return Path(root)

    def has_own_test(self) -> bool:
        return (self.path / "train").is_dir() and (self.path / "test").is_dir()

    def read(self, split: str, allow_empty: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        images, labels, _ = read_image_folder(self._split_root(split))
        return images, labels

    def class_names(self) -> Optional[list]:
        names = [p.name for p in class_folders(self._split_root("train"))]
        if self.has_own_test():
            test_names = [p.name for p in class_folders(self.path / "test")]
            if test_names != names:
                raise DataError(f"{self.path}: test/ has the classes {test_names}, train/ has {names}")
        return names

    def reference_labels(self, split: str, labels: torch.Tensor) -> torch.Tensor:
        """The train labels from the file listing alone (no image decoded)."""
        if split == "train":
            return labels
        counts = [len(_image_files(folder)) for folder in class_folders(self._split_root("train"))]
        return torch.repeat_interleave(torch.arange(len(counts)), torch.tensor(counts))

    def _split_root(self, split: str) -> Path:
        """The folder of class folders of ``split`` (the source's own split)."""
        if self.has_own_test():
            return self.path / split
        return self.path / "train" if (self.path / "train").is_dir() else self.path


def _decoded(img: Image.Image, path: Path, converted: set) -> np.ndarray:
    if img.mode != "L":
        converted.add(img.mode)
    return _grayscale_uint8(img, path)


def _grayscale_uint8(img: Image.Image, path: Path) -> np.ndarray:
    """(H, W) uint8 of an image: 16-bit grayscale (PIL's modes "I;16*", or "I" as older Pillow
    reads a 16-bit PNG) keeps its top 8 bits, where PIL's ``convert("L")`` would clip it at 255;
    other modes go through ``convert("L")``. Pixels outside 16 bits, or floats, have no range to
    map from and are refused."""
    if img.mode.startswith("I"):
        pixels = np.asarray(img).astype(np.int64)
        if pixels.size and (pixels.min() < 0 or pixels.max() > 65535):
            raise DataError(f"{path}: {img.mode} pixels outside 0..65535 have no fixed range; save the image as "
                            f"8- or 16-bit grayscale")
        return (pixels >> 8).astype(np.uint8)
    if img.mode == "F":
        raise DataError(f"{path}: float pixels have no fixed range; save the image as 8- or 16-bit grayscale")
    return np.array(img if img.mode == "L" else img.convert("L"), dtype=np.uint8)


def _resized(array: np.ndarray) -> torch.Tensor:
    x = torch.from_numpy(array).float()[None, None]
    x = F.interpolate(x, size=(IMAGE_SIZE, IMAGE_SIZE), mode="bilinear", align_corners=False, antialias=True)
    return x[0, 0].round_().clamp_(0, 255).to(torch.uint8)
