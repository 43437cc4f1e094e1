"""What a reader may open and decode: regular files only, and one budget of pixels and bytes.

The budget is one number, ``AUGMENT_MAX_PIXELS`` (environment variable; default
``DEFAULT_MAX_PIXELS`` = 2^31, the 2 GiB IDX files could always hold): the images one read of a
source decodes (a split) hold at most that many pixels, each image counted as at least the
models' 32x32 (the copy it gets when it enters a model), and no file or array a reader decodes
holds more than that many bytes. Every reader checks it from headers
(IDX headers, npz members' ``.npy`` headers, PNG/JPEG/BMP headers through PIL's lazy open)
before it inflates or decodes anything, so a small file that declares gigabytes costs nothing.
"""

from __future__ import annotations

import os
import stat
from typing import BinaryIO, Sequence

from augment.config import IMAGE_SIZE
from augment.errors import ConfigError, DataError
from augment.fileio import PathLike

MAX_PIXELS_ENV = "AUGMENT_MAX_PIXELS"
DEFAULT_MAX_PIXELS = 1 << 31  # 2,147,483,648: 2 million images of 32x32 or less (EMNIST ByClass: 0.81 million)
MODEL_IMAGE_PIXELS = IMAGE_SIZE * IMAGE_SIZE  # the least an image counts for: its copy in the models' format


def max_pixels() -> int:
    """The budget: ``$AUGMENT_MAX_PIXELS`` (a positive integer; ``_`` and ``,`` allowed as
    thousands separators), else ``DEFAULT_MAX_PIXELS``. Pixels of one read, and bytes of any
    file or array a reader decodes."""
    text = os.environ.get(MAX_PIXELS_ENV, "").strip()
    if not text:
        return DEFAULT_MAX_PIXELS
    try:
        value = int(text.replace(",", "").replace("_", ""))
    except ValueError:
        value = 0
    if value < 1:
        raise ConfigError(f"{MAX_PIXELS_ENV} must be a positive integer (pixels), got {text[:40]!r}")
    return value


def check_bytes(nbytes: int, where: str, what: str = "holds") -> None:
    """A one-line DataError when a file or array ``where`` ``what`` (e.g. 'declares') more than
    the budget's bytes."""
    limit = max_pixels()
    if nbytes > limit:
        raise DataError(f"{where}: {what} {nbytes:,} bytes, more than the {limit:,} a data file or array may hold "
                        f"here (raise {MAX_PIXELS_ENV} to allow more)")


def check_image_shape(shape: Sequence[int], where: str) -> None:
    """A one-line DataError unless images of ``shape`` (N, H, W), declared by a header, are at
    least 1x1 and fit the budget (``image_pixels``)."""
    if len(shape) == 3 and min(shape[1:]) < 1:
        raise DataError(f"{where}: images of {shape[1]}x{shape[2]} pixels; an image needs a width and height of at "
                        f"least 1")
    check_pixels(int(shape[0]) * image_pixels(int(shape[1]), int(shape[2])), where)


def image_pixels(width: int, height: int) -> int:
    """The pixels an image counts for in the budget: W*H, and at least the models' 32x32
    (``MODEL_IMAGE_PIXELS``), the copy every image gets when it enters a model, so many tiny
    images cannot cost more than the budget says."""
    return max(width * height, MODEL_IMAGE_PIXELS)


def check_pixels(pixels: int, where: str) -> None:
    """A one-line DataError when ``pixels`` (declared by headers, before decoding; from
    ``image_pixels``) exceed the budget."""
    limit = max_pixels()
    if pixels > limit:
        raise DataError(f"{where}: images of {pixels:,} pixels in all (each at least {IMAGE_SIZE}x{IMAGE_SIZE}), "
                        f"more than the {limit:,} a source may hold here (raise {MAX_PIXELS_ENV} to allow more)")


def open_regular(path: PathLike) -> BinaryIO:
    """``path`` opened for binary reading, if it is a regular file (or a link to one). A FIFO,
    a device or a directory is a one-line DataError, and opening it does not block (the
    O_NONBLOCK it is opened with does nothing to a regular file's reads)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise DataError(f"file not found: {path}") from None
    except OSError as e:
        raise DataError(f"cannot read {path}: {e.strerror}") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        if stat.S_ISDIR(mode):
            raise DataError(f"expected a file, found a directory: {path}")
        raise DataError(f"{path}: not a regular file (a FIFO, socket or device); only regular files are read")
    return open(fd, "rb")
