"""Write synthetic digits to disk as MNIST IDX files, a PNG tree and/or .npz, with a manifest.

Layout of the output directory (each format optional)::

    manifest.json                       generator checksums + config, seed, counts, formats, version
    MNIST/raw/train-images-idx3-ubyte   idx: torchvision's MNIST layout, read unchanged by
    MNIST/raw/train-labels-idx1-ubyte        torchvision.datasets.MNIST(out, train=..., download=False)
    MNIST/raw/t10k-images-idx3-ubyte         (``test_samples`` > 0 writes both splits; otherwise the
    MNIST/raw/t10k-labels-idx1-ubyte          split not dumped is a valid IDX pair of 0 items, which
                                              torchvision needs to exist but cannot load)
    png/<split>/<class>/<index>.png     png: an ImageFolder root, ImageFolder(OUT/png/train) (folder per
                                        class present; an empty folder use-ImageFolder-on-png-train/
                                        beside it makes ImageFolder(OUT) fail, not read 1 class)
    <split>.npz                         npz: x uint8 (N, H, W), y int64 (N,)

The ``split`` holds SyntheticMNIST items ``0 .. N-1``; with ``test_samples=M`` (and split
"train") the test split holds items ``N .. N+M-1`` of the same dataset: same seed, disjoint
latents. Images are written at ``image_size`` H x W: by default the size of the generator's training
data, which its file records (MNIST's, and a file that does not say: 28x28), so a dump matches the
set it augments; resized 32 -> H x W with antialiased bilinear interpolation (half-pixel centres,
as real images are resized to 32x32 for training; the round trip blurs an image slightly, so it
is not an exact inverse), then mapped [-1, 1] -> round((x + 1) * 127.5) in [0, 255].

Same arguments on the same kind of device give byte-identical output (no timestamps; fixed PNG
compression; fixed zip entry dates; images bit-identical whatever ``batch_size``). The output is
built in a temporary directory beside the target, synced, then renamed into place: it appears
complete or not at all. An existing non-empty target is refused unless ``overwrite`` and it is a
previous dump (``not_a_dump``). Images stream to disk one
batch at a time, so memory is bounded by ``batch_size``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import warnings
from pathlib import Path
from typing import Callable, Optional, Sequence, Union

import numpy as np
import torch
from tqdm import tqdm

from augment import __version__, torchrun
from augment.checks import is_integer
from augment.errors import AugmentError, ConfigError
from augment.fileio import PathLike, atomic_directory, check_directory_target
from augment.images import to_uint8_images
from augment.provenance import image_size as checked_image_size
from augment.synthetic.dataset import GeneratorLike, SamplingOptions, SyntheticMNIST
from augment.synthetic.dump_formats import SPLITS, IdxWriter, NpzWriter, PngTreeWriter, check_formats, write_empty_idx

DUMP_FORMAT = "augment.synthetic-dump"
DUMP_FORMAT_VERSION = 1


IMAGE_FOLDER_HINT = "use-ImageFolder-on-png-train"  # an empty folder beside png/ (see _write_all)
IDX_MAX_COUNT = 2 ** 32 - 1  # an IDX header stores each dimension as a 32-bit big-endian count


class PlaceholderWarning(UserWarning):
    """A dump's other split is an empty IDX placeholder that torchvision cannot read."""


# ---------------------------------------------------------------------------------- dump


def _count(value, what: str, minimum: int) -> int:
    """``value`` as an int >= ``minimum`` (Python or numpy integers; not bools or floats)."""
    if not is_integer(value) or value < minimum:
        raise ConfigError(f"{what} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def dump_synthetic(out: PathLike, generator: GeneratorLike = None, num_samples: Optional[int] = None,
                   formats: Sequence[str] = ("idx",), *, seed: int = 0,
                   classes: Optional[Sequence[int]] = None,
                   class_weights: Optional[Sequence[float]] = None, split: str = "train",
                   test_samples: Optional[int] = None, sampling: Optional[SamplingOptions] = None,
                   device="cpu", batch_size: int = 256, overwrite: bool = False, progress: bool = False,
                   class_counts: Optional[Sequence[int]] = None,
                   image_size: Union[int, Sequence[int], None] = None) -> dict:
    """Write SyntheticMNIST items 0..N-1 to ``out`` in ``formats`` as ``split`` (and, with
    ``test_samples`` M > 0 and split "train", items N..N+M-1 as the test split), with a
    manifest.json. Every argument is checked (and the generator loaded) before anything is
    written; the directory appears complete or not at all.

    Under torchrun every rank calls this: each generates a strided share, rank 0 writes (and
    alone returns the manifest; the others return None).

    Args:
        out: the output directory (absent, empty, or with ``overwrite`` an earlier dump).
        generator: a generator or checkpoint file, a ``Generator``, or None (the shipped one).
        num_samples: N, the items of ``split`` (default 60,000; with ``class_counts``, their sum).
        formats: any of "idx" (torchvision's MNIST layout), "png" (an ImageFolder tree), "npz".
        seed: the seed of the per-index latents.
        classes: the class ids drawn (default all).
        class_weights: their relative frequencies (default equal), one per class.
        split: "train" or "test": the file names the items are written under.
        test_samples: M further items written as the test split (with split "train"); default
            ceil(N / 6), MNIST's 10,000 per 60,000 (0 with ``class_counts`` or split "test": the
            test files are then an empty placeholder that torchvision's MNIST cannot read).
        sampling: truncation, quality filter and precision, as for ``SyntheticMNIST``.
        device: where the generator runs ('cpu', 'cuda', 'auto', ...).
        batch_size: items generated and written per step (bounds memory).
        overwrite: replace an earlier dump at ``out``.
        progress: show a progress bar.
        class_counts: exact items per class (of ``classes``, default all, in order), e.g. the
            synthetic top-up of a long-tailed set (``augment.synthetic.mixing.top_up_counts``);
            N is their sum. Not with ``class_weights`` or ``test_samples``.
        image_size: the images' size, a side or (height, width), each 1 to 4096; default the
            generator's training data's (``SyntheticMNIST.trained_on.size``; MNIST: 28x28).

    Returns:
        The manifest (also written as ``out/manifest.json``).
    """
    if class_counts is not None:
        if class_weights is not None or test_samples:
            raise ConfigError("class counts give the exact items per class: not with class weights or test samples")
        counts = [_count(n, "a class count", 0) for n in class_counts]
        if not counts or sum(counts) == 0:
            raise ConfigError("class counts are empty or all 0")
        if num_samples is not None and num_samples != sum(counts):
            raise ConfigError(f"{num_samples} samples asked for, but the class counts sum to {sum(counts)}")
        num_samples, class_weights = sum(counts), counts
    num_samples = 60000 if num_samples is None else num_samples
    if test_samples is None:
        test_samples = -(-num_samples // 6) if split == "train" and class_counts is None and is_integer(num_samples) \
            and num_samples > 0 else 0
    formats = check_formats(formats)
    num_samples = _count(num_samples, "number of samples", 1)
    batch_size = _count(batch_size, "batch size", 1)
    if split not in SPLITS:
        raise ConfigError(f"unknown split {split!r}; expected 'train' or 'test'")
    test_samples = _count(test_samples, "number of test samples", 0)
    if "idx" in formats and max(num_samples, test_samples) > IDX_MAX_COUNT:
        raise ConfigError(f"an IDX file holds at most {IDX_MAX_COUNT:,} items (a 32-bit count)")
    if test_samples and split != "train":
        raise ConfigError("a test split of further items (test samples) goes with the train split, not split 'test'")
    size = None if image_size is None else checked_image_size(image_size)
    parts = [(split, 0, num_samples)] + ([("test", num_samples, test_samples)] if test_samples else [])
    out = Path(out)
    check_directory_target(out, overwrite, not_a_dump)
    if isinstance(device, str):
        device = torchrun.local_device_name(device)
    dataset = SyntheticMNIST(generator, num_samples=num_samples + test_samples, seed=seed, classes=classes,
                             class_weights=class_weights, sampling=sampling, device=device)
    size = dataset.trained_on.size if size is None else size
    if dataset.config.channels != 1:
        raise ConfigError(f"dump writes grayscale digits; this generator makes {dataset.config.channels} channels")
    if "idx" in formats and dataset.config.num_classes > 256:
        raise ConfigError("IDX labels are bytes: at most 256 classes")
    weights = dataset.class_weights or [1.0] * len(dataset.class_ids)
    drawn = torch.bincount(dataset.targets[:num_samples], minlength=dataset.config.num_classes)
    empty = [c for c, w in zip(dataset.class_ids, weights) if w > 0 and drawn[c] == 0]
    if empty and (classes is not None or class_weights is not None):  # classes asked for by name get images
        raise ConfigError(f"{num_samples} samples leave class {empty[0]} without an image (of {len(dataset.class_ids)} "
                          f"classes asked for); ask for more samples or fewer classes")
    if "idx" in formats and len(parts) == 1:
        other = "test" if split == "train" else "train"
        warnings.warn(f"no {other} split: its IDX files are an empty placeholder, which torchvision's "
                      f"MNIST(root, train={other == 'train'}) cannot read"
                      + (" (write one with test samples, --test-samples M)" if split == "train" else ""),
                      PlaceholderWarning, stacklevel=2)
    started_group = torchrun.launched_by_torchrun() and not torch.distributed.is_initialized()
    ctx = torchrun.init_from_env(dataset.device.type) if torchrun.launched_by_torchrun() \
        else torchrun.SINGLE
    try:
        if not ctx.enabled:
            with atomic_directory(out, overwrite, not_a_dump) as tmp:
                return _write_all(tmp, dataset, formats, parts, batch_size, progress, size,
                                  _generated_batches(dataset, size))
        return _sharded_dump(out, overwrite, dataset, formats, parts, batch_size, progress, size, ctx)
    except OSError as e:
        raise AugmentError(f"writing {out} failed: {e.strerror or e}") from None
    finally:
        if started_group:
            torchrun.shutdown()


def not_a_dump(directory: Path) -> Optional[str]:
    """Why ``--overwrite`` must not replace ``directory`` (None for a previous dump of ours)."""
    try:
        manifest = json.loads((directory / "manifest.json").read_text())
    except (OSError, ValueError):
        manifest = None
    if not isinstance(manifest, dict) or manifest.get("format") != DUMP_FORMAT:
        return "it is not a synthetic dump (no augment manifest.json)"
    return None


def _generated_batches(dataset: SyntheticMNIST, size: tuple) -> Callable[[int, int], tuple]:
    """fetch(start, end) -> (uint8 (k, H, W), labels (k,)) of items start..end-1 at ``size`` (H, W)."""
    def fetch(start: int, end: int) -> tuple:
        images, labels = dataset.generate(range(start, end))
        return to_uint8_images(images, size)[:, 0], labels
    return fetch


def _sharded_dump(out: Path, overwrite: bool, dataset: SyntheticMNIST, formats: list, parts: list,
                  batch_size: int, progress: bool, size: tuple, ctx: "torchrun.DistContext") -> dict:
    """Under torchrun: rank r generates items r, r + W, r + 2W, ... into a memory-mapped shard
    beside ``out``; rank 0 then writes the formats from the shards in index order, so the
    result is byte-identical to a single-process dump (items do not depend on the batch)."""
    shards = out.absolute().parent / f".{out.name}.shards"
    n, world = len(dataset), ctx.world_size
    if ctx.is_main:
        shutil.rmtree(shards, ignore_errors=True)
        shards.mkdir(parents=True)
    torchrun.barrier(ctx)
    mine = list(torchrun.strided_indices(n, ctx))
    pixels = np.lib.format.open_memmap(shards / f"rank{ctx.rank}.tmp.npy", mode="w+", dtype=np.uint8,
                                       shape=(len(mine), *size))
    for k in range(0, len(mine), batch_size):
        images, _ = dataset.generate(mine[k:k + batch_size])
        pixels[k:k + len(images)] = to_uint8_images(images, size)[:, 0].numpy()
    pixels.flush()
    del pixels
    os.replace(shards / f"rank{ctx.rank}.tmp.npy", shards / f"rank{ctx.rank}.npy")
    torchrun.barrier(ctx)
    manifest = None
    try:
        if ctx.is_main:
            shard = [np.load(shards / f"rank{r}.npy", mmap_mode="r") for r in range(world)]
            targets = dataset.targets

            def fetch(start: int, end: int) -> tuple:
                rows = np.stack([shard[i % world][i // world] for i in range(start, end)])
                return torch.from_numpy(rows), targets[start:end]

            with atomic_directory(out, overwrite, not_a_dump) as tmp:
                manifest = _write_all(tmp, dataset, formats, parts, batch_size, progress, size, fetch)
    finally:
        torchrun.barrier(ctx)
        if ctx.is_main:
            shutil.rmtree(shards, ignore_errors=True)
    return manifest


def _write_all(root: Path, dataset: SyntheticMNIST, formats: list, parts: list, batch_size: int,
               progress: bool, size: tuple, fetch: Callable[[int, int], tuple]) -> dict:
    """Write each part ``(split, first item, count)`` in every format, images (H, W) ``size``,
    then manifest.json."""
    files: dict = {}
    with tqdm(total=len(dataset), unit="img", desc="dump", file=sys.stderr, disable=not progress,
              dynamic_ncols=True) as bar:
        for split, first, n in parts:
            targets = dataset.targets[first:first + n]
            writers = []
            if "idx" in formats:
                writers.append(IdxWriter(root, split, n, size))
            if "png" in formats:
                writers.append(PngTreeWriter(root, split, n, dataset.config.num_classes, dataset.classes))
            if "npz" in formats:
                writers.append(NpzWriter(root, split, n, targets, size))
            try:
                for start in range(0, n, batch_size):
                    pixels, labels = fetch(first + start, first + min(n, start + batch_size))
                    for w in writers:
                        w.write(pixels, labels, start)
                    bar.update(len(labels))
            except BaseException:
                for w in writers:
                    with contextlib.suppress(Exception):
                        w.close()
                raise
            for w in writers:  # a failing final flush (disk full) must fail the dump, not truncate it
                w.close()
            for w in writers:
                files.update(w.files(root))
    if "idx" in formats:
        for split in SPLITS:
            if split not in {p[0] for p in parts}:
                files.update(write_empty_idx(root, split, size))
    if "png" in formats:
        # ImageFolder(OUT) would take MNIST/ and png/ for two classes; an empty folder makes it fail
        # at once, with this folder's name in its error
        (root / IMAGE_FOLDER_HINT).mkdir()
    manifest = _manifest(dataset, formats, parts, size, dict(sorted(files.items())))
    (root / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return manifest


def _counts(labels: torch.Tensor) -> dict:
    ids, counts = torch.unique(labels, return_counts=True)
    return {str(c): n for c, n in zip(ids.tolist(), counts.tolist())}


def _manifest(dataset: SyntheticMNIST, formats: list, parts: list, size: tuple, files: dict) -> dict:

    split, first, n = parts[0]
    generator = {k: v for k, v in dataset.source.items() if k != "path"}  # the same bytes from any path
    generator["file"] = Path(dataset.source["path"]).name if dataset.source["path"] else None
    return {
        "format": DUMP_FORMAT,
        "format_version": DUMP_FORMAT_VERSION,
        "library_version": __version__,
        "generator": generator,
        "seed": dataset.seed,
        "split": split,
        "num_samples": n,
        "classes": dataset.class_ids,
        "class_weights": dataset.class_weights,
        "counts_per_class": _counts(dataset.targets[first:first + n]),
        "splits": {name: {"first_item": a, "num_samples": k, "counts_per_class": _counts(dataset.targets[a:a + k])}
                   for name, a, k in parts},
        "labels": "item i has the i-th label of the Sainte-Lague sequence over the class weights "
                  "(equal weights: classes[i % K])",
        "class_names": dataset.classes,
        "png_class_folders": "png/<split>/<class id>/ (<class id>_<name>/ when the classes have names): "
                             "ImageFolder numbers the folders present 0..k-1 in sorted order, which equals the "
                             "class id only when every class is present",
        "truncation": dataset.sampling.truncation,
        "quality_filter": None if dataset.sampling.quality is None else dataset.sampling.quality.describe(),
        "truncation_mode": dataset.sampling.truncation_mode,
        "sampling": {"device": dataset.device.type, "dtype": str(dataset.dtype).replace("torch.", ""),
                     "chunk": dataset.chunk,
                     "strategies": list(dataset.generator.strategies),
                     "torch": torch.__version__.split("+")[0]},
        "image": {"height": size[0], "width": size[1], "dtype": "uint8",
                  "resize": f"32->{size[0] if size[0] == size[1] else f'{size[0]}x{size[1]}'} bilinear, antialiased, "
                            f"half-pixel centres",
                  "values": "round((x + 1) * 127.5) for generator output x in [-1, 1]"},
        "formats": formats,
        "files": files,
    }
