"""Labelled image sets to judge (``augment evaluate --samples``), read like real data by the
readers of ``augment.data.sources``, and their checks against the real data.

Formats (``SAMPLE_FORMATS``), recognised from the path when not given: a file ending ``.npz`` is
``npz`` (``x``, ``y`` and optionally ``class_names``, ``x_test``/``y_test``); a directory with an
``augment dump`` manifest.json is ``dump``; a directory holding IDX files (MNIST's file names,
flat or ``MNIST/raw``) is ``idx``; any other directory is ``folder`` (one folder per class, or
``train/`` and ``test/`` of such). Every image of the set is judged: both splits of a source
that has two. A dump is read from one of the formats it holds (npz, else idx, else png), every
split it holds, with the class names of its manifest.

Images keep their size: a set whose images are not the real data's size is refused, not resized
(pixel distances need one size); an image folder of mixed sizes is resized to 32x32 as it is
read (``augment.data.image_folder``), as real data would be.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import torch

from augment.config import SAMPLE_FORMATS
from augment.data.idx import find_idx_file
from augment.data.mnist import SPLITS
from augment.data.sources import LabelledImages, load_labelled
from augment.errors import CheckpointError, ConfigError, DataError
from augment.fileio import PathLike
from augment.images import to_model_images
from augment.manifests import read_json_object
from augment.synthetic.dump import DUMP_FORMAT


def read_split(source: Optional[PathLike], split: str, kind: str) -> LabelledImages:
    """One split of a source of ``kind`` (``augment.data.sources``): the one call into the data
    package's readers for real data and sample sets alike."""
    return load_labelled(source, split, kind)


def sample_format(path: PathLike) -> str:
    """The format of the sample set at ``path`` (see the module docstring); one-line DataError
    when there is nothing there."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"sample set does not exist: {path}")
    if path.is_file():
        if path.suffix.lower() == ".npz":
            return "npz"
        raise DataError(f"{path}: a sample set file must be an .npz (x, y, class_names); other formats are "
                        f"directories")
    if _dump_manifest(path) is not None:
        return "dump"
    if any(find_idx_file(d, SPLITS[s][0]) for d in (path, path / "MNIST" / "raw") for s in SPLITS):
        return "idx"
    return "folder"


def read_sample_set(path: PathLike, kind: Optional[str] = None) -> tuple[LabelledImages, str]:
    """Every image of the sample set at ``path`` (format ``kind``, default recognised from the
    path) and the format read: images ``(N, H, W)`` uint8, labels ``(N,)``, class names."""
    path = Path(path)
    kind = kind or sample_format(path)
    if kind not in SAMPLE_FORMATS:
        raise ConfigError(f"sample format must be one of {', '.join(SAMPLE_FORMATS)}, got {kind!r}")
    if kind != "dump":
        return _both_splits(path, kind), kind
    manifest = _dump_manifest(path)
    if manifest is None:
        raise DataError(f"{path}: not an augment dump (no manifest.json of format {DUMP_FORMAT!r})")
    splits = [s for s, info in manifest["splits"].items() if info.get("num_samples")]
    if "npz" in manifest.get("formats", []):
        parts = [_both_splits(path / f"{s}.npz", "npz") for s in splits]
    elif "idx" in manifest.get("formats", []):
        parts = [read_split(path, s, "idx") for s in splits]
    elif "png" in manifest.get("formats", []):
        parts = [_both_splits(path / "png" / s, "folder") for s in splits]
    else:
        raise DataError(f"{path}: the dump's manifest lists no format this reads (npz, idx, png)")
    if not parts:
        raise DataError(f"{path}: the dump holds no images")
    names = [str(n) for n in manifest.get("class_names") or parts[0].class_names]
    return _joined(parts, names, path), "dump"


def check_sample_set(samples: LabelledImages, path: PathLike, class_names: list, image_size: tuple,
                     min_per_class: int) -> None:
    """One-line DataError unless ``samples`` has images, the real data's classes
    (``class_names``) and image size ``(H, W)``, and more than ``min_per_class`` images of
    every class."""
    if len(samples.labels) == 0:
        raise DataError(f"{path}: the sample set is empty")
    if list(samples.class_names) != list(class_names):
        raise DataError(f"{path}: the samples have the classes {_short(samples.class_names)} but the real data has "
                        f"{_short(class_names)}")
    size = tuple(samples.images.shape[1:])
    if size != tuple(image_size):
        raise DataError(f"{path}: the samples are {'x'.join(map(str, size))} images, the real data's are "
                        f"{'x'.join(map(str, image_size))}; samples are not resized (pixel distances need one size)")
    counts = torch.bincount(samples.labels, minlength=len(class_names))
    fewest = int(counts.argmin())
    if int(counts[fewest]) <= min_per_class:
        raise DataError(f"{path}: class {class_names[fewest]} has {int(counts[fewest])} samples; every class needs "
                        f"more than {min_per_class} (k of precision/recall)")


def read_checked_samples(path: PathLike, sample_format: Optional[str], class_names: list, image_size: tuple,
                         k: int) -> tuple:
    """(images ``(N, C, 32, 32)`` in [-1, 1], uint8 pixels ``(N, H, W)``, labels ``(N,)``,
    description for the report) of the sample set at ``path``, checked by
    :func:`check_sample_set` against the real data's classes and image size."""
    samples, kind = read_sample_set(path, sample_format)
    check_sample_set(samples, path, class_names, image_size, k)
    counts = torch.bincount(samples.labels, minlength=len(class_names)).tolist()
    described = {"path": str(path), "format": kind, "images": int(len(samples.labels)), "counts_per_class": counts}
    return to_model_images(samples.images), samples.images, samples.labels, described


def baseline_size(labels: torch.Tensor, num_classes: int, train: Optional[LabelledImages] = None) -> int:
    """Real images per class of a sample set's baseline row: its smallest class, at most the
    train split's smallest."""
    fewest = int(torch.bincount(labels, minlength=num_classes).min())
    if train is not None:
        fewest = min(fewest, int(torch.bincount(train.labels, minlength=num_classes).min()))
    return fewest


def _both_splits(path: Path, kind: str) -> LabelledImages:
    """All images of a source: its train and test splits (its own, or a seeded hold-out's two
    parts, which together are every image)."""
    return _joined([read_split(path, s, kind) for s in ("train", "test")], None, path)


def _joined(parts: list, names: Optional[list], path: Path) -> LabelledImages:
    names = names or list(parts[0].class_names)
    for part in parts:
        if len(part.class_names) > len(names):
            raise DataError(f"{path}: the splits disagree on the classes")
    sizes = {tuple(p.images.shape[1:]) for p in parts}
    if len(sizes) > 1:
        raise DataError(f"{path}: the splits hold images of different sizes {sorted(sizes)}")
    return LabelledImages(torch.cat([p.images for p in parts]), torch.cat([p.labels for p in parts]), names)


def _dump_manifest(directory: Path) -> Optional[dict]:
    """The dump's manifest (None when there is none or it is not a dump's); its size and depth are
    checked before it is parsed (``read_manifest``), its fields' types after."""
    if not (directory / "manifest.json").is_file():
        return None
    try:
        manifest = read_json_object(directory / "manifest.json", "dump manifest")
    except CheckpointError as e:
        raise DataError(str(e)) from None
    if manifest.get("format") != DUMP_FORMAT:
        return None
    splits, formats, names = manifest.get("splits"), manifest.get("formats", []), manifest.get("class_names")
    if not (isinstance(splits, dict) and all(isinstance(v, dict) for v in splits.values())
            and isinstance(formats, list) and (names is None or isinstance(names, list))):
        raise DataError(f"{directory / 'manifest.json'}: a damaged dump manifest (splits, formats or class names "
                        f"of the wrong type)")
    return manifest


def _short(names: list) -> str:
    names = [str(n) for n in names]
    return ", ".join(names) if len(names) <= 12 else ", ".join(names[:10]) + f", ... ({len(names)} classes)"
