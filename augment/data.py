"""IDX files, MNIST checksums, device tensors, per-class subsets, the real-MNIST Dataset (fetching
MNIST: ``augment.fetch``).

IDX (LeCun's format): 2 zero bytes, a type code (0x08 = uint8), the number of dimensions, one
big-endian int32 per dimension, then the data. Files may be gzip-compressed (detected by their
magic bytes, not their name).
"""

from __future__ import annotations

import gzip
import math
import numbers
import operator
import os
import zlib
from pathlib import Path
from typing import Callable, Optional, Sequence, Union

import torch
import torch.nn.functional as F

from .config import IMAGE_SIZE, LONG_TAIL_N_MAX, SubsetSpec
from .errors import ConfigError, DataError
from .fileio import PathLike

BACKGROUND = -1.0  # the value of an empty (black) pixel in the model range [-1, 1]

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

_IDX_DTYPE = 0x08  # unsigned byte; the only type MNIST-style data uses
_CLASS_ORDER_SALT = 0x5EED_C1A55  # the class permutation of a long-tailed subset: its own stream


# ---------------------------------------------------------------------------------------- IDX


def parse_idx(raw: bytes, name: str = "<bytes>") -> torch.Tensor:
    """Parse the (uncompressed) bytes of an IDX file into a uint8 tensor of its dimensions."""
    if len(raw) < 4:
        raise DataError(f"{name}: not an IDX file (only {len(raw)} bytes)")
    if raw[0] != 0 or raw[1] != 0:
        raise DataError(f"{name}: not an IDX file (bad magic number {raw[:4].hex()})")
    if raw[2] != _IDX_DTYPE:
        raise DataError(f"{name}: unsupported IDX element type 0x{raw[2]:02x} (only uint8 0x08)")
    ndim = raw[3]
    if not 1 <= ndim <= 4:
        raise DataError(f"{name}: IDX file with {ndim} dimensions is not supported")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{name}: truncated IDX header ({len(raw)} bytes)")
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    expected = header
    count = 1
    for d in dims:
        count *= d
    expected += count
    if len(raw) != expected:
        kind = "truncated" if len(raw) < expected else "has trailing bytes"
        raise DataError(f"{name}: IDX file {kind}: header {dims} needs {expected} bytes, "
                        f"file has {len(raw)}")
    data = torch.frombuffer(bytearray(raw[header:]), dtype=torch.uint8) if count else \
        torch.empty(0, dtype=torch.uint8)
    return data.reshape(dims)


def read_file_bytes(path: PathLike) -> bytes:
    """Bytes of a file, gunzipped if it starts with the gzip magic."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"file not found: {path}") from None
    except IsADirectoryError:
        raise DataError(f"expected a file, found a directory: {path}") from None
    except OSError as e:
        raise DataError(f"cannot read {path}: {e.strerror}") from None
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as e:
            raise DataError(f"{path}: corrupt gzip data ({e})") from None
    return raw


def read_idx(path: PathLike) -> torch.Tensor:
    """Read an IDX file (raw or gzip) into a uint8 tensor, validating its header and size."""
    return parse_idx(read_file_bytes(path), str(path))


def encode_idx(array: torch.Tensor) -> bytes:
    """The IDX bytes of a uint8 tensor of 1 to 4 dimensions."""
    if array.dtype != torch.uint8 or not 1 <= array.dim() <= 4:
        raise DataError("encode_idx needs a uint8 tensor of 1 to 4 dimensions")
    header = bytes([0, 0, _IDX_DTYPE, array.dim()])
    header += b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return header + array.contiguous().cpu().numpy().tobytes()


# ------------------------------------------------------------------------- locating, verifying


def find_idx_file(directory: Path, name: str) -> Optional[Path]:
    """``directory/name`` or ``directory/name.gz``, whichever exists (raw first)."""
    for candidate in (directory / name, directory / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


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
    import hashlib

    size, digest = MNIST_FILES[name]
    if len(raw) != size or hashlib.sha256(raw).hexdigest() != digest:
        raise DataError(f"{where}: SHA-256 does not match MNIST's {name} (corrupt, or not MNIST: "
                        f"for other IDX data, use --dataset idx, or --any-idx with 'augment data verify')")


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


def infer_num_classes(labels: torch.Tensor) -> int:
    """Number of classes as max(label) + 1 (labels are 0-based integers)."""
    return int(labels.max()) + 1


def check_labels(labels: torch.Tensor, num_classes: int) -> None:
    if len(labels) and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
        raise DataError(f"labels span [{int(labels.min())}, {int(labels.max())}] but num_classes is "
                        f"{num_classes}; labels must lie in [0, {num_classes})")


def to_model_images(images: torch.Tensor, device: Union[str, torch.device] = "cpu",
                    size: int = IMAGE_SIZE, chunk: int = 8192) -> torch.Tensor:
    """uint8 ``(N, H, W)`` or ``(N, C, H, W)`` in [0, 255] -> float32 ``(N, C, size, size)`` in [-1, 1].

    Bilinear resize (half-pixel centres, as torchvision's Resize) done once, on ``device``.
    """
    if images.dim() == 3:
        images = images.unsqueeze(1)
    out = torch.empty((images.shape[0], images.shape[1], size, size), device=device)
    for start in range(0, len(images), chunk):
        x = images[start:start + chunk].to(device=device, dtype=torch.float32)
        if x.shape[-2:] != (size, size):
            x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False,
                              antialias=True)
        out[start:start + chunk] = (x / 127.5 - 1.0).clamp_(-1.0, 1.0)
    return out


def to_uint8_images(images: torch.Tensor) -> torch.Tensor:
    """float ``(N, C, H, W)`` in [-1, 1] -> uint8 in [0, 255] (round to nearest), on the CPU."""
    return ((images.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round_().to(torch.uint8)


def per_class_subset(labels: torch.Tensor, n_per_class: int, seed: int = 0,
                     num_classes: Optional[int] = None) -> torch.Tensor:
    """Sorted indices of ``n_per_class`` examples of each class, drawn by a seeded permutation."""
    num_classes = num_classes or infer_num_classes(labels)
    return draw_per_class(labels, [n_per_class] * num_classes, seed)


def draw_per_class(labels: torch.Tensor, counts: Sequence[int], seed: int = 0) -> torch.Tensor:
    """Sorted indices of ``counts[c]`` examples of each class c: the first ``counts[c]`` of a
    seeded permutation of the class's examples. The permutation of a class depends only on the
    seed and the class sizes, not on the counts, so subsets are nested: for one seed, a smaller
    count of a class is a prefix of a larger one (a long-tailed subset holds the balanced subsets
    of its counts, and rho = 10 holds rho = 100)."""
    gen = torch.Generator().manual_seed(seed)
    chosen = []
    for c, n in enumerate(counts):
        idx = (labels == c).nonzero().flatten()
        if len(idx) < n:
            asked = f"n_per_class={n}" if len(set(counts)) == 1 else f"the {n} the subset asks for"
            raise DataError(f"class {c} has {len(idx)} examples, fewer than {asked}")
        chosen.append(idx[torch.randperm(len(idx), generator=gen)[:n]])
    return torch.cat(chosen).sort().values


def long_tail_counts(num_classes: int, imbalance_ratio: float, n_max: int = LONG_TAIL_N_MAX,
                     class_order: str = "index", seed: int = 0) -> list[int]:
    """Images per class (in class order) of the MNIST-LT profile: the class of rank r keeps
    ``floor(n_max * rho^(-r/(C-1)) + 0.5)``; rank r is class r (``"index"``) or the r-th class of
    a permutation seeded with ``seed`` (``"permuted"``). A count that rounds to 0 is an error."""
    ranked = [math.floor(n_max * imbalance_ratio ** (-r / (num_classes - 1)) + 0.5) for r in range(num_classes)]
    if ranked[-1] < 1:
        raise ConfigError(f"imbalance ratio {imbalance_ratio:g} with n_max={n_max} leaves the rarest class no image "
                          f"(n_max / ratio must be at least 0.5)")
    if class_order == "index":
        return ranked
    order = torch.randperm(num_classes, generator=torch.Generator().manual_seed(seed + _CLASS_ORDER_SALT)).tolist()
    counts = [0] * num_classes
    for rank, c in enumerate(order):
        counts[c] = ranked[rank]
    return counts


def subset_counts(spec: SubsetSpec, num_classes: int, seed: int = 0) -> Optional[list[int]]:
    """Images per class (in class order) that ``spec`` keeps, or None for all of them."""
    if spec.is_all:
        return None
    if spec.n_per_class is not None:
        return [spec.n_per_class] * num_classes
    if spec.imbalance_ratio is not None:
        return long_tail_counts(num_classes, spec.imbalance_ratio, spec.n_max, spec.class_order, seed)
    if len(spec.class_counts) != num_classes:
        raise ConfigError(f"{len(spec.class_counts)} class counts for {num_classes} classes")
    if sum(spec.class_counts) == 0:
        raise ConfigError("class counts are all 0")
    return list(spec.class_counts)


def subset_indices(labels: torch.Tensor, spec: SubsetSpec, seed: int = 0,
                   num_classes: Optional[int] = None) -> Optional[torch.Tensor]:
    """Sorted indices of the examples ``spec`` keeps of ``labels`` (None: all), drawn with
    ``seed`` by ``draw_per_class``."""
    counts = subset_counts(spec, num_classes or infer_num_classes(labels), seed)
    return None if counts is None else draw_per_class(labels, counts, seed)


# ------------------------------------------------------------------------------------ Dataset


def item_index(index, owner: str) -> int:
    """``index`` of a dataset's ``__getitem__`` as an int: an int, numpy integer or 0-d integer
    tensor, not a list (a batch goes through ``__getitems__``); TypeError naming ``owner``."""
    try:
        return operator.index(index)
    except TypeError:
        raise TypeError(f"{owner} indices must be integers (a batch goes through __getitems__), "
                        f"got {type(index).__name__}") from None


class RealMNIST(torch.utils.data.Dataset):
    """Real IDX digits, resident on ``device``, as ``(image, label)`` items.

    image: ``(C, 32, 32)`` float32 in [-1, 1]; label: int in [0, num_classes). The same item
    format as ``SyntheticMNIST`` so the two mix in one DataLoader. ``__getitems__`` gathers a
    whole batch with one index operation. ``transform`` gets that tensor, not a PIL image.
    """

    def __init__(self, root: Optional[PathLike] = None, train: bool = True,
                 device: Union[str, torch.device] = "cpu", mnist: bool = True,
                 n_per_class: Optional[int] = None, seed: int = 0,
                 transform: Optional[Callable] = None, target_transform: Optional[Callable] = None,
                 subset: Optional[SubsetSpec] = None):
        from .device import resolve_device

        if n_per_class is not None and (isinstance(n_per_class, bool) or not isinstance(n_per_class, numbers.Integral)
                                        or n_per_class < 1):
            raise ConfigError(f"n_per_class must be a positive integer (or None for all), got {n_per_class!r}")
        if subset is not None and not isinstance(subset, SubsetSpec):
            raise ConfigError(f"subset must be a SubsetSpec, got {type(subset).__name__}")
        if subset is not None and n_per_class is not None:
            raise ConfigError("give n_per_class or subset, not both")
        subset = subset if subset is not None else SubsetSpec(n_per_class=n_per_class)
        device = resolve_device(device)
        self.root = resolve_data_dir(root)
        self.train = train
        images, labels = load_split(self.root, "train" if train else "test", mnist=mnist)
        self.num_classes = infer_num_classes(labels)
        keep = subset_indices(labels, subset, seed, self.num_classes)
        if keep is not None:
            images, labels = images[keep], labels[keep]
        self.subset = subset
        self.data = to_model_images(images, device)
        self.targets = labels.to(device)
        self.classes = [str(c) for c in range(self.num_classes)]
        self.transform = transform
        self.target_transform = target_transform

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int):
        """(image (1, 32, 32) float32 in [-1, 1], a copy, so in-place transforms leave the data
        alone; int label)."""
        index = item_index(index, type(self).__name__)
        img, target = self.data[index].clone(), int(self.targets[index])
        if self.transform is not None:
            img = self.transform(img)
        if self.target_transform is not None:
            target = self.target_transform(target)
        return img, target

    def __getitems__(self, indices: Sequence[int]) -> list:
        if self.transform is not None or self.target_transform is not None:
            return [self[i] for i in indices]
        idx = torch.as_tensor(indices, device=self.targets.device)
        return list(zip(self.data[idx], self.targets[idx].tolist()))

    def extra_repr(self) -> str:
        return f"Split: {'Train' if self.train else 'Test'}\nRoot: {self.root}"

    def __repr__(self) -> str:
        lines = [f"Number of datapoints: {len(self)}", *self.extra_repr().splitlines()]
        return "\n".join([f"Dataset {type(self).__name__}"] + ["    " + ln for ln in lines])
