"""SyntheticMNIST: item i = f(generator, seed, i), batched fetch, torchvision conventions.

Latents and labels are pure functions of (seed, i): see ``augment.synthetic.latents``.

Images. Item i is ``generator(latent(i), label(i))``. Every forward has exactly ``chunk`` rows
(the last one padded), so an image is computed in a batch of the same shape whatever batch
asked for it; samples never interact (no batch statistics), and BLAS/conv kernels reduce in
an order set by the shapes, so item i is bit-identical across batch sizes, orders, samplers,
Subset/ConcatDataset and worker processes on a given device (tested on the CPU). The options
that change the images (truncation, a quality filter, bfloat16) are one ``SamplingOptions``;
``device`` and ``chunk`` only say where and in what forwards they are computed.

Workers. ``DataLoader(num_workers > 0)`` works for a CPU dataset: each worker process holds its
own CPU copy of the ``FastGenerator`` and, since items are pure functions of the index, yields
the same images as ``num_workers=0``. A CUDA dataset must use ``num_workers=0`` (one batched
forward per batch already keeps the GPU busy); a worker raises a clear error otherwise.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import warnings
from collections.abc import Mapping
from collections.abc import Sequence as SequenceABC
from dataclasses import dataclass
from typing import Callable, Optional, Sequence, Union

import torch
from PIL import Image
from torch.utils.data import default_collate, get_worker_info
from torchvision.datasets import VisionDataset

from augment.checks import check_class_ids, class_ids, is_integer, is_real, item_index
from augment.device import resolve_device
from augment.errors import AugmentError, ConfigError
from augment.images import to_uint8_images
from augment.provenance import check_fits, image_size as checked_image_size
from augment.synthetic.fast_generator import DTypeLike, FastGenerator, resolve_dtype
from augment.synthetic.filtering import QualityFilter, attempt_seed, filtered_images
from augment.synthetic.latents import index_latents, stratified_labels
from augment.synthetic.shipped import GeneratorLike, load_source

OUTPUTS = ("tensor", "pil")


class RandomAccessWarning(UserWarning):
    """A SyntheticMNIST is read item by item in random order: a chunk forward per item."""


# --------------------------------------------------------------------------------- dataset


_INDEX_DTYPES = (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)


def index_tensor(indices, length: int) -> torch.Tensor:
    """Indices into ``length`` items (an int, or a sequence, array or tensor of integers; negative
    ones count from the end) as a flat int64 CPU tensor in [0, length). Other element types are a
    TypeError, an index out of range an IndexError, as for a list."""
    try:
        idx = torch.as_tensor(indices).reshape(-1).cpu()
    except ValueError:  # an int beyond int64
        raise IndexError(f"indices out of range: {indices!r}"[:200]) from None
    except (TypeError, RuntimeError):  # a str, a slice, ...
        raise TypeError(f"indices must be integers, got {indices!r}"[:200]) from None
    if len(idx) and idx.dtype not in _INDEX_DTYPES:
        raise TypeError(f"indices must be integers of at most 64 bits, got {idx.dtype}")
    idx = idx.long()
    if len(idx) and (int(idx.min()) < -length or int(idx.max()) >= length):
        raise IndexError(f"index out of range for a dataset of {length} items")
    return torch.where(idx < 0, idx + length, idx)


class SampleBatch(SequenceABC):
    """A fetched batch that indexes like a list of ``(image, int label)`` items but keeps the
    tensors whole: ``images`` (B, C, 32, 32) on the dataset's device, ``labels`` (B,) int64 CPU.
    ``collate_batch`` turns it into ``[images, labels]`` without touching single items."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor):
        self.images, self.labels = images, labels
        self._labels_list: Optional[list] = None

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, k):
        if isinstance(k, slice):
            return [self[j] for j in range(*k.indices(len(self)))]
        if self._labels_list is None:
            self._labels_list = self.labels.tolist()
        return self.images[k], self._labels_list[k]


def collate_batch(batch):
    """collate_fn: ``[images, labels]`` straight from a SampleBatch (no per-item work), else
    ``default_collate`` (same result for a list of items)."""
    if isinstance(batch, SampleBatch):
        return [batch.images, batch.labels]
    return default_collate(batch)


@dataclass(frozen=True)
class SamplingOptions:
    """How item i's image is made from its latent, beyond (generator, seed, i). Each option
    changes the images themselves (the device and ``chunk`` change at most their last bits).

    Args:
        truncation: latent components beyond +-t are redrawn (``truncation_mode="resample"``)
            or clamped ("clamp"): fidelity over diversity. None (default): no truncation.
        truncation_mode: "resample" or "clamp".
        quality: a ``QualityFilter``: keep only items a judge classifier labels as their class
            with probability >= its ``min_confidence``, redrawing the others' latents
            deterministically (``augment.synthetic.filtering``; ``augment.quality_filter(p)``
            builds one around the shipped evaluator). None (default): no filter.
        dtype: the generator's precision, "float32" (default) or "bfloat16" (CUDA only).
    """

    truncation: Optional[float] = None
    truncation_mode: str = "resample"
    quality: Optional[QualityFilter] = None
    dtype: DTypeLike = None

    def __post_init__(self) -> None:
        if self.truncation is not None and (not is_real(self.truncation) or not self.truncation > 0):
            raise ConfigError(f"truncation must be a positive number, got {self.truncation!r}")
        if self.truncation_mode not in ("resample", "clamp"):
            raise ConfigError(f"truncation_mode must be 'resample' or 'clamp', got {self.truncation_mode!r}")
        if self.quality is not None and not isinstance(self.quality, QualityFilter):
            raise ConfigError(f"quality must be a QualityFilter (augment.quality_filter(p)), got "
                              f"{type(self.quality).__name__}")
        resolve_dtype(self.dtype, "cuda")  # a known name; the device is checked by the dataset


class SyntheticMNIST(VisionDataset):
    """Map-style dataset of generated images: item i = ``(image, label)``, a pure function of
    (generator, seed, i) -- whatever the batch, order, sampler, worker or process.

    With ``output="tensor"`` (default) image is ``(C, 32, 32)`` float32 in [-1, 1] on ``device``,
    the models' format, whatever the size of the training data: the item format of
    ``RealMNIST``'s tensor items, which are resized to 32x32 alike, so the two mix in one
    DataLoader. With ``output="pil"`` it is what ``torchvision.datasets.MNIST`` yields: a
    ``PIL.Image`` of mode 'L' at ``image_size`` (default the size of the generator's training
    data, which its file records; MNIST's, and a file that does not say: 28x28), made as a dump
    writes it (32 -> H x W with antialiased bilinear, then ``round((x + 1) * 127.5)``), so an MNIST
    training script runs unchanged with ``ToTensor()``/``Normalize`` and mixes it with
    torchvision's MNIST, or ``RealMNIST(output="pil")``, in a ``BatchedConcatDataset``.
    ``targets`` is ``(N,)`` int64 on the CPU; ``classes``/``class_to_idx`` carry the generator
    file's class names; ``trained_on`` what it was trained on (``augment.provenance``).

    Args:
        generator: None (the shipped generator), a generator or checkpoint file, or a
            ``Generator`` (not modified).
        num_samples: N, the number of items.
        seed: the seed of the per-index latents, in [0, 2**64).
        classes: the class ids drawn (default all).
        class_weights: their relative frequencies (default equal: exactly balanced; integer
            weights summing to N give exactly those counts), or a {class: weight} mapping.
        output: the item format, "tensor" or "pil" (see above).
        image_size: with ``output="pil"``, the items' size: a side, or (height, width), each 1
            to 4096; default the generator's training data's (``trained_on.size``).
        transform: applied to each image (a tensor, or with ``output="pil"`` a PIL image).
        target_transform: applied to each int label.
        sampling: truncation, quality filter and precision (``SamplingOptions``; default none,
            none, float32).
        device: where the generator runs; default the module's device, else the CPU; 'auto' =
            CUDA if present.
        chunk: rows of every generator forward (default 64 on CPU, 1024 on CUDA); a batch of B
            items is ceil(B / chunk) forwards, the last one padded, so item i is computed in a
            forward of the same shape whatever batch requests it. On a GPU set it to the
            DataLoader's batch size: one batch is then one forward.
    """

    def __init__(self, generator: GeneratorLike = None, num_samples: int = 60000, seed: int = 0, *,
                 classes: Optional[Sequence[int]] = None,
                 class_weights: Union[Sequence[float], Mapping[int, float], None] = None,
                 output: str = "tensor", image_size: Union[int, Sequence[int], None] = None,
                 transform: Optional[Callable] = None,
                 target_transform: Optional[Callable] = None, sampling: Optional[SamplingOptions] = None,
                 device: Union[str, torch.device, None] = None, chunk: Optional[int] = None):
        if not is_integer(num_samples) or num_samples <= 0:
            raise ConfigError(f"num_samples must be a positive integer, got {num_samples!r}")
        if not is_integer(seed) or not 0 <= seed < 2 ** 64:
            raise ConfigError(f"seed must be an integer in [0, 2**64), got {seed!r}")
        if chunk is not None and (not is_integer(chunk) or chunk <= 0):
            raise ConfigError(f"chunk must be a positive integer, got {chunk!r}")
        if output not in OUTPUTS:
            raise ConfigError(f"output must be one of {', '.join(OUTPUTS)}, got {output!r}")
        if output == "tensor" and _has_to_tensor(transform):
            raise ConfigError("transform has ToTensor, which takes PIL images: pass output='pil' (items as "
                              "torchvision's MNIST yields them), or use tensor transforms")
        sampling = SamplingOptions() if sampling is None else sampling
        if not isinstance(sampling, SamplingOptions):
            raise ConfigError(f"sampling must be a SamplingOptions, got {type(sampling).__name__}")
        if image_size is not None and output != "pil":
            raise ConfigError("image_size is the size of PIL items (output='pil'); tensor items are the models' "
                              "(C, 32, 32), as RealMNIST's")
        model, self.source, self.trained_on = load_source(generator)
        self.config = model.config
        if output == "pil" and self.config.channels != 1:
            raise ConfigError(f"output='pil' makes grayscale images; this generator makes "
                              f"{self.config.channels} channels")
        self.image_size = self.trained_on.size if image_size is None else checked_image_size(image_size)
        self.output, self.sampling = output, sampling
        self.device = next(model.parameters()).device if device is None else resolve_device(device)
        self.class_ids, self.class_weights = _check_classes(classes, class_weights, self.config.num_classes)
        self.num_samples, self.seed = int(num_samples), int(seed)
        super().__init__(None, transform=transform, target_transform=target_transform)
        self.chunk = int(chunk) if chunk else (1024 if self.device.type == "cuda" else 64)
        self.generator = FastGenerator(model, device=self.device, dtype=sampling.dtype)
        self.dtype = self.generator.dtype
        try:
            self.targets = stratified_labels(self.num_samples, self.class_ids, self.class_weights)
        except (MemoryError, RuntimeError) as e:
            if isinstance(e, RuntimeError) and "allocate" not in str(e):
                raise
            raise ConfigError(f"num_samples {num_samples:,} is too many: their labels alone (8 bytes an "
                              f"item) do not fit in this machine's memory") from None
        self._cached: Optional[tuple] = None  # (start, images) of the last chunk __getitem__ made
        self._chunk_misses = 0  # single-item reads that each made a whole chunk for one item
        self._cached_used = 0  # items read from the cached chunk
        self._warned_random_access = False
        self._quality = None if sampling.quality is None else self._judge_on_device(sampling.quality)
        self.classes = list(self.source["class_names"])  # from the generator file (else "0".."C-1")
        self.class_to_idx = {name: c for c, name in enumerate(self.classes)}

    def _judge_on_device(self, quality: QualityFilter) -> QualityFilter:
        """``quality`` with a frozen copy of its classifier on the dataset's device, checked to
        fit the generator's training data (``augment.provenance.check_fits``, when the judge's is
        known) and to tell the generator's classes."""
        if quality.trained_on is not None:
            check_fits("judge", f"the quality filter's classifier ({quality.name})", quality.trained_on,
                       self.trained_on, "--filter-classifier FILE, or quality_filter(p, FILE)")
        judge = copy.deepcopy(quality.classifier).to(self.device).eval().requires_grad_(False)
        with torch.inference_mode():
            logits = judge(torch.zeros(1, self.config.channels, 32, 32, device=self.device))
        if logits.dim() != 2 or logits.shape[1] != self.config.num_classes:
            raise ConfigError(f"the quality filter's classifier tells {logits.shape[-1]} classes, the generator "
                              f"makes {self.config.num_classes}: judge with a classifier of the same classes")
        return dataclasses.replace(quality, classifier=judge)

    def __len__(self) -> int:
        return self.num_samples

    @property
    def value_range(self) -> Optional[tuple]:
        """(-1.0, 1.0), the range of the image tensors before transforms; None for PIL output."""
        return (-1.0, 1.0) if self.output == "tensor" else None

    def latents(self, indices) -> torch.Tensor:
        """Latents (B, z_dim) float32 on the dataset's device of items ``indices``."""
        return self._latents(self.seed, index_tensor(indices, self.num_samples).to(self.device))

    def _latents(self, seed: int, idx: torch.Tensor) -> torch.Tensor:
        return index_latents(seed, idx, self.config.z_dim, self.sampling.truncation, self.sampling.truncation_mode)

    def generate(self, indices) -> tuple[torch.Tensor, torch.Tensor]:
        """(images (B, C, 32, 32) float32 on the device, labels (B,) int64 CPU) of ``indices``
        (a sequence, range or 1-D tensor), before ``output`` and transforms. Forwards always
        have exactly ``chunk`` rows (the last padded), so an image does not depend on the batch
        it was requested in; with a quality filter, failing items are redrawn."""
        if self.device.type == "cuda" and get_worker_info() is not None:
            raise AugmentError("a SyntheticMNIST on CUDA cannot run in DataLoader worker processes; "
                               "use num_workers=0 or device='cpu'")
        idx = index_tensor(indices, self.num_samples)
        labels = self.targets[idx]
        if self._quality is None or not len(idx):
            return self._render(self.seed, idx, labels), labels
        images = filtered_images(lambda a, rows: self._render(attempt_seed(self.seed, a), idx[rows], labels[rows]),
                                 labels, self._quality, self.chunk)
        return images, labels

    def _render(self, seed: int, idx: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Images (B, C, 32, 32) of items ``idx`` from the latents of ``seed``, in forwards of
        exactly ``chunk`` rows."""
        chunks = []
        for start in range(0, len(idx), self.chunk):
            part = idx[start:start + self.chunk].to(self.device)
            z = self._latents(seed, part)
            y = labels[start:start + self.chunk].to(self.device)
            pad = self.chunk - len(part)
            if pad:
                z = torch.cat([z, z.new_zeros((pad, z.shape[1]))])
                y = torch.cat([y, y[:1].expand(pad)])
            chunks.append(self.generator(z, y)[:len(part)])
        if not chunks:
            return torch.empty((0, self.config.channels, 32, 32), device=self.device)
        return chunks[0] if len(chunks) == 1 else torch.cat(chunks)

    def __getitems__(self, indices: Sequence[int]):
        images, labels = self.generate(indices)
        if self.output == "tensor" and self.transforms is None:
            return SampleBatch(images, labels)
        return [self._item(img, int(y)) for img, y in zip(self._output_images(images), labels.tolist())]

    def __getitem__(self, index: int):
        """One item. Computes (and keeps) the whole aligned chunk holding it, so sequential
        single-item access costs one forward per chunk; shuffled single-item access (e.g. a
        plain ConcatDataset under a shuffling DataLoader) costs a chunk per item, and says so
        once: combine datasets with ``augment.BatchedConcatDataset`` instead, which fetches
        whole batches, or use ``chunk=1``."""
        i = int(index_tensor(item_index(index, type(self).__name__), self.num_samples))
        start = i - i % self.chunk
        if self._cached is None or self._cached[0] != start:
            self._note_chunk_miss()
            images, _ = self.generate(range(start, min(start + self.chunk, self.num_samples)))
            self._cached, self._cached_used = (start, images), 0
        self._cached_used += 1
        return self._item(self._output_images(self._cached[1][i - start:i - start + 1])[0], int(self.targets[i]))

    def _note_chunk_miss(self) -> None:
        """Warn once when single items keep missing the chunk made for the last one: each of
        the last 8 reads made a whole chunk (of more than one row) and used one item of it."""
        used = self._cached_used if self._cached is not None else None
        self._chunk_misses = self._chunk_misses + 1 if used == 1 and self.chunk > 1 else 0
        if self._chunk_misses == 8 and not self._warned_random_access:
            self._warned_random_access = True
            warnings.warn(f"SyntheticMNIST is read one item at a time in random order (e.g. under torch's "
                          f"ConcatDataset with shuffle=True): each item costs a forward of {self.chunk} images. "
                          f"Combine datasets with augment.BatchedConcatDataset, or pass chunk=1", RandomAccessWarning,
                          stacklevel=3)

    def _output_images(self, images: torch.Tensor) -> list:
        """(C, 32, 32) tensors (copies) or, with ``output="pil"``, PIL images of mode 'L' at ``image_size``."""
        if self.output == "pil":
            return [Image.fromarray(row, mode="L") for row in to_uint8_images(images, self.image_size)[:, 0].numpy()]
        return [img.clone() for img in images]

    def _item(self, img, target: int):
        return self.transforms(img, target) if self.transforms is not None else (img, target)

    def class_rows(self, per_class: int) -> torch.Tensor:
        """Images (K * per_class, C, 32, 32) in [-1, 1]: the first ``per_class`` items of each
        of the K classes, a class per row in ``class_ids`` order (a sample grid)."""
        rows = [(self.targets == c).nonzero().flatten()[:per_class] for c in self.class_ids]
        if any(len(r) < per_class for r in rows):
            raise ConfigError(f"fewer than {per_class} items of some class among the {self.num_samples}")
        return self.generate(torch.cat(rows))[0]

    def counts_per_class(self) -> dict:
        """{class id: number of items} over the whole dataset."""
        counts = torch.bincount(self.targets, minlength=self.config.num_classes)
        return {c: int(counts[c]) for c in self.class_ids if counts[c] > 0}

    def extra_repr(self) -> str:
        src = self.source["path"] or "<Generator module>"
        weights = "equal" if self.class_weights is None else list(self.class_weights)
        return (f"Generator: {src} (weights sha256 {self.source['weights_sha256'][:12]})\n"
                f"Classes: {self.class_ids}, weights: {weights}\nSeed: {self.seed}, truncation: "
                f"{self.sampling.truncation} ({self.sampling.truncation_mode})\nDevice: {self.device}, dtype: "
                f"{str(self.dtype).replace('torch.', '')}\nOutput: {self.output}"
                + (f" ({self.image_size[0]}x{self.image_size[1]})" if self.output == "pil" else "")
                + ("" if self._quality is None else f"\nQuality filter: {self._quality.describe()}"))


def _has_to_tensor(transform) -> bool:
    """Whether ``transform`` is, or composes, torchvision's ``ToTensor`` (or v2's ``ToImage``)."""
    if transform is None:
        return False
    if type(transform).__name__ in ("ToTensor", "ToImage", "PILToTensor"):
        return True
    return any(_has_to_tensor(t) for t in getattr(transform, "transforms", ()) if t is not transform)


def _check_classes(classes, weights, num_classes: int) -> tuple[list, Optional[list]]:
    if isinstance(weights, Mapping):  # {class: weight}: the classes are its keys
        if classes is not None and list(class_ids(classes)) != list(class_ids(weights)):
            raise ConfigError("give the classes either as class_weights' keys or as classes, not both")
        classes, weights = list(weights), list(weights.values())
    ids = check_class_ids(classes, num_classes)
    if weights is None:
        return ids, None
    try:
        weights = [float(w) for w in weights]
    except (TypeError, ValueError):
        raise ConfigError(f"class_weights must be a sequence of numbers, got {weights!r}") from None
    if len(weights) != len(ids):
        raise ConfigError(f"{len(weights)} class weights for {len(ids)} classes")
    if any(not math.isfinite(w) or w < 0 for w in weights) or sum(weights) <= 0:
        raise ConfigError("class weights must be finite, non-negative and not all zero")
    return ids, weights
