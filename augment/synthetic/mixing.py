"""Real and synthetic data in one training set: at a synthetic:real ratio per class, or every
class topped up to one count (rebalancing a long-tailed set).

``mix_real_synthetic(real, generator, ratio)`` adds ``round(ratio * n_c)`` synthetic items to
each class c that has n_c real items (``ratio=math.inf``: synthetic only) and returns a
``MixedDataset``: a ``BatchedConcatDataset`` (a ConcatDataset with ``targets`` whose batched
fetch makes one generator forward per batch; use it, not a plain ConcatDataset, to combine
other datasets with a SyntheticMNIST). ``synthetic_only`` gives exact per-class counts without real data.
"""

from __future__ import annotations

import math
from typing import Mapping, Optional, Sequence, Union

import torch
from torch.utils.data import ConcatDataset, Dataset, Subset
from torchvision.datasets import MNIST

from augment.checks import class_ids, is_integer, is_real
from augment.config import DATASETS
from augment.errors import ConfigError
from augment.provenance import DataSignature, check_fits
from augment.synthetic.dataset import GeneratorLike, SampleBatch, SyntheticMNIST, index_tensor
from augment.synthetic.shipped import load_source


def dataset_targets(dataset: Dataset) -> torch.Tensor:
    """Labels (N,) int64 on the CPU of a dataset with ``targets``, a Subset or ConcatDataset of
    such, or (slowly) any dataset of (image, label) items."""
    if isinstance(dataset, Subset):
        return dataset_targets(dataset.dataset)[torch.as_tensor(list(dataset.indices), dtype=torch.long)]
    if isinstance(dataset, ConcatDataset):
        return torch.cat([dataset_targets(d) for d in dataset.datasets])
    if getattr(dataset, "targets", None) is not None:
        return torch.as_tensor(dataset.targets).long().cpu()
    return torch.tensor([int(dataset[i][1]) for i in range(len(dataset))], dtype=torch.long)


def class_counts(dataset: Dataset) -> dict:
    """{class id: number of items} of a dataset (see ``dataset_targets``)."""
    labels, counts = torch.unique(dataset_targets(dataset), return_counts=True)
    return dict(zip(labels.tolist(), counts.tolist()))


def fetch_items(dataset: Dataset, indices: Sequence[int]):
    """The items at ``indices``, fetched the way a DataLoader does: one ``__getitems__`` call
    where the dataset has one (a SampleBatch from SyntheticMNIST), else item by item."""
    getitems = getattr(dataset, "__getitems__", None)
    return getitems(indices) if callable(getitems) else [dataset[i] for i in indices]


class BatchedConcatDataset(ConcatDataset):
    """``ConcatDataset`` with batched fetch and ``targets``: a batch calls each part's
    ``__getitems__`` once (so a SyntheticMNIST part is one generator forward per batch, where a
    plain ConcatDataset asks it for one item at a time) and reassembles the items in order, as a
    SampleBatch when every item is a same-shape tensor image. Items equal ConcatDataset's."""

    def __init__(self, datasets: Sequence[Dataset]):
        datasets = list(datasets)
        if not datasets:
            raise ConfigError("a concatenated dataset needs at least one dataset")
        super().__init__(datasets)
        check_compatible_items(datasets)
        self.targets = torch.cat([dataset_targets(d) for d in datasets])

    def __getitems__(self, indices: Sequence[int]):
        idx = index_tensor(indices, len(self))
        ends = torch.tensor(self.cumulative_sizes)
        part = torch.searchsorted(ends, idx, right=True)
        results, positions = [], []
        for k, dataset in enumerate(self.datasets):
            where = (part == k).nonzero().flatten()
            if len(where) == 0:
                continue
            local = (idx[where] - (ends[k - 1] if k else 0)).tolist()
            results.append(fetch_items(dataset, local))
            positions.append(where)
        return _assemble(results, positions, len(idx))


def check_compatible_items(datasets: Sequence[Dataset]) -> None:
    """Refuse parts whose items a DataLoader could not batch together, or could batch silently
    wrong: a PIL image beside a tensor, tensors of other shapes, dtypes or devices, or tensors on
    another value scale than the models' [-1, 1] beside a part known to be on it (``RealMNIST``
    and a tensor ``SyntheticMNIST`` without transforms): e.g. a ``Normalize``d real set,
    background -0.42, or ``ToTensor``'s [0, 1]. Judged from each part's first item; one line
    naming them."""
    seen = []
    for k, dataset in enumerate(datasets):
        if len(dataset) == 0:
            continue
        image = dataset[0][0]
        tensor = isinstance(image, torch.Tensor)
        scale = None
        if tensor:
            x = image.detach().float()
            scale = (float(x.min()), float(x.max()))
        seen.append({"part": k, "name": type(dataset).__name__, "kind": "tensor" if tensor else type(image).__name__,
                     "shape": tuple(image.shape) if tensor else getattr(image, "size", None),
                     "dtype": str(image.dtype).replace("torch.", "") if tensor else None, "range": scale,
                     "device": str(image.device) if tensor else None,
                     "model_range": tensor and _on_model_range(dataset)})
    if len({(p["kind"], p["shape"], p["dtype"], p["device"]) for p in seen}) > 1:
        parts = "; ".join(f"part {p['part']} ({p['name']}): {p['kind']} {p['shape'] or ''} {p['dtype'] or ''} "
                          f"{p['device'] or ''}".strip() for p in seen)
        raise ConfigError(f"the parts' items differ, so their batches would not stack: {parts}; give every part "
                          f"the same item format (e.g. SyntheticMNIST(output='pil', transform=...) beside "
                          f"torchvision's MNIST)")
    if any(p["model_range"] for p in seen):
        off = [p for p in seen if p["range"] is not None and not p["model_range"]
               and (p["range"][0] < -1.001 or p["range"][1] > 1.001 or p["range"][0] >= 0.0)]
        if off:
            p = off[0]
            low, high = p["range"]
            raise ConfigError(f"part {p['part']} ({p['name']}) has images in [{low:.2f}, {high:.2f}], not the "
                              f"[-1, 1] of the other parts: their backgrounds would differ; apply the same "
                              f"transform to every part (or none)")


def _on_model_range(dataset: Dataset) -> bool:
    """A part whose tensor images are in [-1, 1] by construction (``value_range``: RealMNIST,
    a tensor SyntheticMNIST), without transforms."""
    if isinstance(dataset, Subset):
        return _on_model_range(dataset.dataset)
    if isinstance(dataset, ConcatDataset):
        return all(_on_model_range(d) for d in dataset.datasets)
    return getattr(dataset, "value_range", None) == (-1.0, 1.0) and getattr(dataset, "transforms", None) is None


class MixedDataset(BatchedConcatDataset):
    """The real and synthetic parts of a training set as one ``BatchedConcatDataset``;
    ``real``/``synthetic`` name the parts (None when absent)."""

    def __init__(self, real: Optional[Dataset], synthetic: Optional[SyntheticMNIST]):
        parts = [d for d in (real, synthetic) if d is not None]
        if not parts:
            raise ConfigError("a mixed dataset needs real or synthetic data")
        super().__init__(parts)
        self.real, self.synthetic = real, synthetic


def _count(n) -> int:
    """A per-class count: an integer (2.0 is 2), never a silently truncated 2.7."""
    if not is_real(n) or not math.isfinite(n) or int(n) != n:
        raise ConfigError(f"per-class counts must be whole numbers, got {n!r}")
    return int(n)


def _positive_count(n) -> int:
    """``per_class`` given as one count for every class: a positive whole number."""
    if not is_real(n) or not math.isfinite(n) or n <= 0:
        raise ConfigError(f"per_class must be a positive integer, got {n!r}")
    return _count(n)


def _assemble(results: list, positions: list, n: int):
    parts = []
    for res in results:
        if isinstance(res, SampleBatch):
            parts.append((res.images, res.labels))
        elif res and all(isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], torch.Tensor)
                         and is_integer(item[1]) for item in res) \
                and len({x.shape for x, _ in res}) == 1:
            parts.append((torch.stack([x for x, _ in res]), torch.tensor([int(y) for _, y in res])))
        else:
            parts = None
            break
    if parts and len({(p[0].shape[1:], p[0].dtype, p[0].device) for p in parts}) == 1:
        images = parts[0][0].new_empty((n, *parts[0][0].shape[1:]))
        labels = torch.empty(n, dtype=torch.long)
        for (imgs, lbls), where in zip(parts, positions):
            images[where.to(images.device)] = imgs
            labels[where] = lbls
        return SampleBatch(images, labels)
    items: list = [None] * n
    for res, where in zip(results, positions):
        for item, pos in zip(res, where.tolist()):
            items[pos] = item
    return items


def mix_real_synthetic(real: Optional[Dataset], generator: GeneratorLike = None, ratio: float = 1.0,
                       seed: int = 0, *, per_class: Union[None, int, Mapping[int, int]] = None,
                       classes: Optional[Sequence[int]] = None, **synthetic_kwargs) -> MixedDataset:
    """A training set of real and synthetic items, at a synthetic:real ratio per class.

    The synthetic items are one ``SyntheticMNIST`` with exactly the per-class counts asked for
    (``top_up_real_synthetic`` fills every class up to a target count instead).

    Args:
        real: a dataset of (image, label) items with ``targets`` (e.g. ``RealMNIST``), a
            Subset/ConcatDataset of such, or None for synthetic only.
        generator: a generator file, a ``Generator``, or None for the shipped one.
        ratio: r adds ``floor(r * n_c + 0.5)`` synthetic items to each class c with n_c real
            items (rounded half up); ``math.inf`` gives synthetic only.
        seed: the seed of the synthetic items' latents.
        per_class: with ``ratio=math.inf``, items per class: an int, or {class: count}
            (default: the real counts).
        classes: restricts the synthetic classes (default: the real ones, else all).
        **synthetic_kwargs: passed on to ``SyntheticMNIST`` (``device`` defaults to the real
            images' device; ``sampling``, ``chunk``, ``output``, ...).

    Returns:
        A ``MixedDataset`` (``.real``, ``.synthetic``, ``.targets``), fetched a batch at a time.
    """
    if not is_real(ratio) or not ratio >= 0:
        raise ConfigError(f"ratio must be a number >= 0 (or math.inf for synthetic only), got {ratio!r}")
    synthetic_kwargs = _matching_items(real, synthetic_kwargs)
    if per_class is not None and not isinstance(per_class, Mapping):
        _positive_count(per_class)
    if per_class is not None and math.isfinite(ratio):
        raise ConfigError("per_class applies to synthetic-only data (ratio=math.inf)")
    real_counts = class_counts(real) if real is not None else {}
    if math.isfinite(ratio):
        wanted = {c: math.floor(ratio * n + 0.5) for c, n in sorted(real_counts.items())}
    elif isinstance(per_class, Mapping):
        wanted = {int(c): _count(n) for c, n in per_class.items()}
    elif per_class is not None:
        ids = sorted(real_counts) if real_counts else classes
        if ids is None:
            ids = range(load_source(generator)[0].config.num_classes)
        wanted = {int(c): _count(per_class) for c in ids}
    elif real_counts:
        wanted = dict(sorted(real_counts.items()))
    else:
        raise ConfigError("synthetic-only data without real data needs per_class")
    wanted = _only_classes(wanted, classes, "has nothing to mix")
    if any(n < 0 for n in wanted.values()):
        raise ConfigError("per-class counts must be non-negative")
    return _with_synthetic(real if math.isfinite(ratio) else None, generator, wanted, seed, synthetic_kwargs)


def top_up_counts(real_counts: Mapping[int, int], target: Optional[int] = None) -> dict:
    """{class: synthetic items} that bring every class of ``real_counts`` ({class: n_c}) up to
    ``target`` items (default: the largest class's count); a class already there gets 0."""
    if not real_counts:
        raise ConfigError("no real items to top up")
    goal = max(real_counts.values()) if target is None else _count(target)
    if goal < 0:
        raise ConfigError(f"target must be >= 0, got {target!r}")
    return {int(c): max(goal - int(n), 0) for c, n in sorted(real_counts.items())}


def top_up_real_synthetic(real: Dataset, generator: GeneratorLike = None, target: Optional[int] = None,
                          seed: int = 0, *, classes: Optional[Sequence[int]] = None,
                          **synthetic_kwargs) -> MixedDataset:
    """A class-balanced training set from an imbalanced one: every class of ``real`` is
    topped up to ``target`` items with synthetic items of that class (``top_up_counts``).

    Args:
        real: the real (e.g. long-tailed) dataset, as for ``mix_real_synthetic``.
        generator: a generator file, a ``Generator``, or None for the shipped one.
        target: items per class after the top-up (default: the largest class's count); a
            class with at least that many real items gets no synthetic one.
        seed: the seed of the synthetic items' latents.
        classes: top up only these classes (default: every class of ``real``).
        **synthetic_kwargs: passed on to ``SyntheticMNIST``.

    Returns:
        A ``MixedDataset`` of all real items and the synthetic top-up.
    """
    synthetic_kwargs = _matching_items(real, synthetic_kwargs)
    wanted = top_up_counts(class_counts(real), target)
    wanted = _only_classes(wanted, classes, "has no real item to top up")
    return _with_synthetic(real, generator, wanted, seed, synthetic_kwargs)


def _only_classes(wanted: dict, classes: Optional[Sequence[int]], absent_means: str) -> dict:
    """``wanted`` ({class: count}) kept to ``classes`` (all when None); a class it lacks is an error."""
    if classes is None:
        return wanted
    keep = class_ids(classes)
    absent = [c for c in keep if c not in wanted]
    if absent:
        raise ConfigError(f"class {absent[0]} {absent_means}: the classes here are {sorted(wanted)}")
    return {c: n for c, n in wanted.items() if c in set(keep)}


RESERVED = ("num_samples", "classes", "class_weights", "seed")


def _matching_items(real: Optional[Dataset], synthetic_kwargs: dict) -> dict:
    """``synthetic_kwargs`` checked (the counts and classes are the mixing's own) and, for a real
    part that yields PIL images before its transform (torchvision's MNIST and its subclasses,
    also under a ``Subset``, or any part whose items are PIL images), completed so that the
    synthetic part yields the same items: ``output="pil"`` and the real part's
    ``transform``/``target_transform`` (e.g. ``ToTensor()``, ``Normalize``)."""
    taken = sorted(set(synthetic_kwargs) & set(RESERVED))
    if taken:
        raise ConfigError(f"the mixing sets {', '.join(taken)} of the synthetic part itself (from the real counts "
                          f"and ratio); use synthetic_only or SyntheticMNIST directly to choose them")
    if real is None or len(real) == 0 or "output" in synthetic_kwargs:
        return synthetic_kwargs
    base = _innermost(real)
    if not isinstance(base, MNIST) and getattr(base, "output", None) != "pil" \
            and isinstance(real[0][0], torch.Tensor):
        return synthetic_kwargs
    matched = {"output": "pil", **synthetic_kwargs}
    for name in ("transform", "target_transform"):
        if getattr(base, name, None) is not None:
            matched.setdefault(name, getattr(base, name))
    return matched


def _innermost(dataset: Dataset) -> Dataset:
    """The dataset under any ``Subset`` wrappers."""
    while isinstance(dataset, Subset):
        dataset = dataset.dataset
    return dataset


def _images_device(dataset: Optional[Dataset]) -> Optional[torch.device]:
    """The device of a part's image tensor (``.data``, under Subset/ConcatDataset: the first part
    that has one); None for images that are not a tensor."""
    if isinstance(dataset, ConcatDataset):
        return next((d for d in map(_images_device, dataset.datasets) if d is not None), None)
    data = getattr(_innermost(dataset), "data", None) if dataset is not None else None
    return data.device if isinstance(data, torch.Tensor) else None


def _with_synthetic(real: Optional[Dataset], generator: GeneratorLike, wanted: dict, seed: int,
                    synthetic_kwargs: dict) -> MixedDataset:
    """``real`` plus one SyntheticMNIST with exactly ``wanted`` ({class: count}) items."""
    wanted = {c: n for c, n in wanted.items() if n > 0}
    synthetic = None
    if wanted:
        device = _images_device(real)
        if device is not None and "device" not in synthetic_kwargs and synthetic_kwargs.get("output") != "pil":
            synthetic_kwargs["device"] = device
        synthetic = SyntheticMNIST(generator, num_samples=sum(wanted.values()), classes=list(wanted),
                                   class_weights=list(wanted.values()), seed=seed, **synthetic_kwargs)
        _check_generator_fits(real, synthetic)
    return MixedDataset(real, synthetic)


def _check_generator_fits(real: Optional[Dataset], synthetic: SyntheticMNIST) -> None:
    """For a real part that says what data it holds (a ``RealMNIST``: its ``dataset`` kind and
    ``classes``), refuse a generator trained on other data (``augment.provenance``'s rule): the
    shipped generator's digits are no t-shirts."""
    base = _innermost(real) if real is not None else None
    kind, names = getattr(base, "dataset", None), getattr(base, "classes", None)
    if kind not in DATASETS or not names:
        return
    data = DataSignature(kind, tuple(names), synthetic.trained_on.size, synthetic.trained_on.channels,
                         where=str(getattr(base, "root", "")))
    name = f"the generator {synthetic.source['path'] or '(a Generator module)'}"
    check_fits("generator", name, synthetic.trained_on, data,
               "generator=FILE, one trained on this data")


def synthetic_only(generator: GeneratorLike = None, per_class: Union[int, Mapping[int, int]] = 1000, seed: int = 0,
                   classes: Optional[Sequence[int]] = None, **synthetic_kwargs) -> SyntheticMNIST:
    """A SyntheticMNIST with exactly ``per_class`` items of each class: an int for every class
    in ``classes`` (default all, balanced as ``classes[i % K]``), or {class: count}. The
    generator defaults to the shipped one, as for ``SyntheticMNIST``."""
    if isinstance(per_class, Mapping):
        if classes is not None:
            raise ConfigError("give the classes either as per_class's keys or as classes, not both")
        try:
            classes = class_ids(per_class)
        except ConfigError:
            raise ConfigError(f"per_class's keys must be class ids (integers), got {list(per_class)!r}") from None
        counts = [_count(n) for n in per_class.values()]
        if any(n < 0 for n in counts) or sum(counts) <= 0:
            raise ConfigError("per_class counts must be non-negative and not all zero")
        return SyntheticMNIST(generator, num_samples=sum(counts), classes=classes,
                              class_weights=counts, seed=seed, **synthetic_kwargs)
    per_class = _positive_count(per_class)
    if classes is None:
        classes = range(load_source(generator)[0].config.num_classes)
    classes = list(classes)
    return SyntheticMNIST(generator, num_samples=int(per_class) * len(classes), classes=classes,
                          seed=seed, **synthetic_kwargs)
