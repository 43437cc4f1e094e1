"""Write synthetic digits to disk as MNIST IDX files, a PNG tree and/or .npz, with a manifest.

Layout of the output directory (each format optional)::

    manifest.json                       generator checksums + config, seed, counts, formats, version
    MNIST/raw/train-images-idx3-ubyte   idx: torchvision's MNIST layout, read unchanged by
    MNIST/raw/train-labels-idx1-ubyte        torchvision.datasets.MNIST(out, train=..., download=False)
    MNIST/raw/t10k-images-idx3-ubyte         (``test_samples`` > 0 writes both splits; otherwise the
    MNIST/raw/t10k-labels-idx1-ubyte          split not dumped is a valid IDX pair of 0 items, which
                                              torchvision needs to exist but cannot load)
    png/<split>/<class>/<index>.png     png: an ImageFolder root (folder per class present)
    <split>.npz                         npz: x uint8 (N, 28, 28), y int64 (N,)

The ``split`` holds SyntheticMNIST items ``0 .. N-1``; with ``test_samples=M`` (and split
"train") the test split holds items ``N .. N+M-1`` of the same dataset: same seed, disjoint
latents. Images are downsampled 32 -> 28 with antialiased bilinear
interpolation (half-pixel centres, as real digits are upsampled 28 -> 32 for training; the round
trip blurs a real digit slightly, so it is not an exact inverse),
then mapped [-1, 1] -> round((x + 1) * 127.5) in [0, 255].

Same arguments on the same kind of device give byte-identical output (no timestamps; fixed PNG
compression; fixed zip entry dates; images bit-identical whatever ``batch_size``). The output is
built in a temporary directory beside the target, synced, then renamed into place: it appears
complete or not at all. An existing non-empty target is refused unless ``overwrite`` and it is a
previous dump (``not_a_dump``). Images stream to disk one
batch at a time, so memory is bounded by ``batch_size``.
"""


from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import shutil
import sys
import zipfile
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from augment import __version__, torchrun
from augment.checks import is_integer
from augment.errors import AugmentError, ConfigError
from augment.fileio import PathLike, atomic_directory, check_directory_target, sha256_file
from augment.images import MNIST_SIZE, to_mnist_uint8
from augment.synthetic.dataset import GeneratorLike, SyntheticMNIST

FORMATS = ("idx", "png", "npz")
SPLITS = {"train": "train", "test": "t10k"}  # split -> IDX file prefix
DUMP_FORMAT = "augment.synthetic-dump"
DUMP_FORMAT_VERSION = 1
IDX_MAX_COUNT = 2 ** 32 - 1  # an IDX header stores each dimension as a 32-bit big-endian count
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)


# ------------------------------------------------------------------------------- writers


class IdxWriter:
    """Streams MNIST/raw/<prefix>-images-idx3-ubyte and -labels-idx1-ubyte (header first)."""

    def __init__(self, root: Path, split: str, num_samples: int):
        raw = root / "MNIST" / "raw"
        raw.mkdir(parents=True, exist_ok=True)
        prefix = SPLITS[split]
        self.paths = [raw / f"{prefix}-images-idx3-ubyte", raw / f"{prefix}-labels-idx1-ubyte"]
        self.images = open(self.paths[0], "wb")
        self.labels = open(self.paths[1], "wb")
        self.images.write(_idx_header((num_samples, MNIST_SIZE, MNIST_SIZE)))
        self.labels.write(_idx_header((num_samples,)))
        self.raw = raw

    def write(self, images: torch.Tensor, labels: torch.Tensor, start: int) -> None:
        self.images.write(images.contiguous().numpy().tobytes())
        self.labels.write(labels.to(torch.uint8).numpy().tobytes())

    def close(self) -> None:
        self.images.close()
        self.labels.close()

    def files(self, root: Path) -> dict:
        return {p.relative_to(root).as_posix(): _file_info(p) for p in self.paths}


def _write_empty_idx(root: Path, split: str) -> dict:
    """A valid IDX pair of 0 items for a split not dumped (torchvision wants all four files)."""
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    images, labels = raw / f"{SPLITS[split]}-images-idx3-ubyte", raw / f"{SPLITS[split]}-labels-idx1-ubyte"
    images.write_bytes(_idx_header((0, MNIST_SIZE, MNIST_SIZE)))
    labels.write_bytes(_idx_header((0,)))
    return {p.relative_to(root).as_posix(): _file_info(p) for p in (images, labels)}


def _idx_header(dims: Sequence[int]) -> bytes:
    return bytes([0, 0, 0x08, len(dims)]) + b"".join(int(d).to_bytes(4, "big") for d in dims)


class PngTreeWriter:
    """png/<split>/<class>/<index>.png, 8-bit grayscale, fixed compression, no metadata."""

    def __init__(self, root: Path, split: str, num_samples: int, num_classes: int):
        self.base = root / "png" / split
        self.width = max(5, len(str(num_samples - 1)))
        self.class_width = len(str(num_classes - 1))
        self.digest = hashlib.sha256()
        self.count = 0

    def class_dir(self, label: int) -> Path:
        return self.base / str(label).zfill(self.class_width)

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


class NpzWriter:
    """<split>.npz with y (labels, written first) and x (images, streamed): np.load reads it."""

    def __init__(self, root: Path, split: str, num_samples: int, labels: torch.Tensor):
        self.path = root / f"{split}.npz"
        self.zip = zipfile.ZipFile(self.path, "w", compression=zipfile.ZIP_STORED, allowZip64=True)
        with self.zip.open(_zip_info("y.npy"), "w", force_zip64=True) as f:
            np.lib.format.write_array(f, labels.numpy().astype("<i8"), version=(1, 0))
        self.x = self.zip.open(_zip_info("x.npy"), "w", force_zip64=True)
        np.lib.format.write_array_header_1_0(
            self.x, {"descr": "|u1", "fortran_order": False, "shape": (num_samples, MNIST_SIZE, MNIST_SIZE)})

    def write(self, images: torch.Tensor, labels: torch.Tensor, start: int) -> None:
        self.x.write(images.contiguous().numpy().tobytes())

    def close(self) -> None:
        self.x.close()
        self.zip.close()

    def files(self, root: Path) -> dict:
        return {self.path.relative_to(root).as_posix(): _file_info(self.path)}


def _zip_info(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=_ZIP_DATE)
    info.compress_type = zipfile.ZIP_STORED
    info.create_system = 3
    info.external_attr = 0o644 << 16
    return info


def _file_info(path: Path) -> dict:
    return {"bytes": path.stat().st_size, "sha256": sha256_file(path)}


# ---------------------------------------------------------------------------------- dump


def _count(value, what: str, minimum: int) -> int:
    """``value`` as an int >= ``minimum`` (Python or numpy integers; not bools or floats)."""
    if not is_integer(value) or value < minimum:
        raise ConfigError(f"{what} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def dump_synthetic(out: PathLike, generator: GeneratorLike = None, num_samples: int = 60000,
                   formats: Sequence[str] = ("idx",), *, seed: int = 0,
                   classes: Optional[Sequence[int]] = None,
                   class_weights: Optional[Sequence[float]] = None, split: str = "train",
                   test_samples: int = 0, device="cpu", batch_size: int = 256, dtype=None,
                   truncation: Optional[float] = None, truncation_mode: str = "resample",
                   overwrite: bool = False, progress: bool = False) -> dict:
    """Write SyntheticMNIST items 0..num_samples-1 to ``out`` in ``formats`` as ``split``
    (and, with ``test_samples`` M > 0 and split "train", items num_samples..num_samples+M-1 as
    the test split); returns the manifest. Every argument is checked (and the generator loaded)
    before anything is written.
    Under torchrun every rank calls this: each generates a strided share, rank 0 writes (and
    alone returns the manifest; the others return None)."""
    formats = _check_formats(formats)
    num_samples = _count(num_samples, "number of samples", 1)
    batch_size = _count(batch_size, "batch size", 1)
    if split not in SPLITS:
        raise ConfigError(f"unknown split {split!r}; expected 'train' or 'test'")
    test_samples = _count(test_samples, "number of test samples", 0)
    if "idx" in formats and max(num_samples, test_samples) > IDX_MAX_COUNT:
        raise ConfigError(f"an IDX file holds at most {IDX_MAX_COUNT:,} items (a 32-bit count)")
    if test_samples and split != "train":
        raise ConfigError("a test split of further items (test samples) goes with the train split, not split 'test'")
    parts = [(split, 0, num_samples)] + ([("test", num_samples, test_samples)] if test_samples else [])
    out = Path(out)
    check_directory_target(out, overwrite, not_a_dump)
    if isinstance(device, str):
        device = torchrun.local_device_name(device)
    dataset = SyntheticMNIST(generator, num_samples=num_samples + test_samples, classes=classes,
                             class_weights=class_weights, seed=seed, device=device, dtype=dtype,
                             truncation=truncation, truncation_mode=truncation_mode)
    if dataset.config.channels != 1:
        raise ConfigError(f"dump writes grayscale digits; this generator makes {dataset.config.channels} channels")
    if "idx" in formats and dataset.config.num_classes > 256:
        raise ConfigError("IDX labels are bytes: at most 256 classes")
    started_group = torchrun.launched_by_torchrun() and not torch.distributed.is_initialized()
    ctx = torchrun.init_from_env(dataset.device.type) if torchrun.launched_by_torchrun() \
        else torchrun.SINGLE
    try:
        if not ctx.enabled:
            with atomic_directory(out, overwrite, not_a_dump) as tmp:
                return _write_all(tmp, dataset, formats, parts, batch_size, progress,
                                  _generated_batches(dataset))
        return _sharded_dump(out, overwrite, dataset, formats, parts, batch_size, progress, ctx)
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


def _generated_batches(dataset: SyntheticMNIST) -> Callable[[int, int], tuple]:
    """fetch(start, end) -> (uint8 (k, 28, 28), labels (k,)) of items start..end-1."""
    def fetch(start: int, end: int) -> tuple:
        images, labels = dataset.generate(range(start, end))
        return to_mnist_uint8(images), labels
    return fetch


def _sharded_dump(out: Path, overwrite: bool, dataset: SyntheticMNIST, formats: list, parts: list,
                  batch_size: int, progress: bool, ctx: "torchrun.DistContext") -> dict:
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
                                       shape=(len(mine), MNIST_SIZE, MNIST_SIZE))
    for k in range(0, len(mine), batch_size):
        images, _ = dataset.generate(mine[k:k + batch_size])
        pixels[k:k + len(images)] = to_mnist_uint8(images).numpy()
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
                manifest = _write_all(tmp, dataset, formats, parts, batch_size, progress, fetch)
    finally:
        torchrun.barrier(ctx)
        if ctx.is_main:
            shutil.rmtree(shards, ignore_errors=True)
    return manifest


def _write_all(root: Path, dataset: SyntheticMNIST, formats: list, parts: list, batch_size: int,
               progress: bool, fetch: Callable[[int, int], tuple]) -> dict:
    """Write each part ``(split, first item, count)`` in every format, then manifest.json."""

    files: dict = {}
    with tqdm(total=len(dataset), unit="img", desc="dump", file=sys.stderr, disable=not progress,
              dynamic_ncols=True) as bar:
        for split, first, n in parts:
            targets = dataset.targets[first:first + n]
            writers = []
            if "idx" in formats:
                writers.append(IdxWriter(root, split, n))
            if "png" in formats:
                writers.append(PngTreeWriter(root, split, n, dataset.config.num_classes))
            if "npz" in formats:
                writers.append(NpzWriter(root, split, n, targets))
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
                files.update(_write_empty_idx(root, split))
    manifest = _manifest(dataset, formats, parts, dict(sorted(files.items())))
    (root / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return manifest


def _counts(labels: torch.Tensor) -> dict:
    ids, counts = torch.unique(labels, return_counts=True)
    return {str(c): n for c, n in zip(ids.tolist(), counts.tolist())}


def _manifest(dataset: SyntheticMNIST, formats: list, parts: list, files: dict) -> dict:

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
        "png_class_folders": "png/<split>/<class id>/: ImageFolder numbers the folders present 0..k-1 in "
                             "sorted order, which equals the class id only when every class is present",
        "truncation": dataset.truncation,
        "truncation_mode": dataset.truncation_mode,
        "sampling": {"device": dataset.device.type, "dtype": str(dataset.dtype).replace("torch.", ""),
                     "chunk": dataset.chunk,
                     "strategies": list(getattr(dataset.generator, "strategies", ())),
                     "torch": torch.__version__.split("+")[0]},
        "image": {"height": MNIST_SIZE, "width": MNIST_SIZE, "dtype": "uint8",
                  "resize": "32->28 bilinear, antialiased, half-pixel centres",
                  "values": "round((x + 1) * 127.5) for generator output x in [-1, 1]"},
        "formats": formats,
        "files": files,
    }


def _check_formats(formats: Sequence[str]) -> list:
    if isinstance(formats, str):
        formats = [formats]
    formats = [str(f).lower() for f in formats]
    if not formats:
        raise ConfigError(f"no output format given; choose from {', '.join(FORMATS)}")
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise ConfigError(f"unknown format {unknown[0]!r}; choose from {', '.join(FORMATS)}")
    return [f for f in FORMATS if f in formats]
