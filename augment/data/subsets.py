"""Which examples of a split a run uses: seeded per-class subsets (balanced ``n_per_class``,
the MNIST-LT long-tailed profile, explicit counts), and label checks.

Every subset draws class c's examples as a prefix of one seeded permutation of that class
(``draw_per_class``), so subsets of one seed are nested whatever their option: the rho = 10
subset of a class holds its rho = 100 subset, and a long-tailed subset holds the balanced
subset of each of its counts. ``SubsetSpec`` (``augment.config``) says which subset.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence

import torch

from augment.config import LONG_TAIL_N_MAX, SubsetSpec
from augment.errors import ConfigError, DataError

_CLASS_ORDER_SALT = 0x5EED_C1A55  # the class permutation of a long-tailed subset: its own stream


def per_class_subset(labels: torch.Tensor, n_per_class: int, seed: int = 0,
                     num_classes: Optional[int] = None) -> torch.Tensor:
    """Sorted indices of ``n_per_class`` examples of each class, drawn by a seeded permutation."""
    num_classes = num_classes or infer_num_classes(labels)
    return draw_per_class(labels, [n_per_class] * num_classes, seed)


def class_permutations(labels: torch.Tensor, num_classes: int, seed: int = 0) -> list[torch.Tensor]:
    """For each class c < ``num_classes``, its examples' indices in a seeded random order: one
    ``torch.Generator`` seeded with ``seed`` permutes class 0, then class 1, ... The order of a
    class depends only on the seed and the class sizes."""
    gen = torch.Generator().manual_seed(seed)
    out = []
    for c in range(num_classes):
        idx = (labels == c).nonzero().flatten()
        out.append(idx[torch.randperm(len(idx), generator=gen)])
    return out


def draw_per_class(labels: torch.Tensor, counts: Sequence[int], seed: int = 0) -> torch.Tensor:
    """Sorted indices of ``counts[c]`` examples of each class c: the first ``counts[c]`` of the
    class's seeded permutation (``class_permutations``). The permutation does not depend on the
    counts, so subsets are nested: for one seed, a smaller count of a class is a prefix of a
    larger one (a long-tailed subset holds the balanced subsets of its counts, and rho = 10
    holds rho = 100)."""
    chosen = []
    for c, (n, order) in enumerate(zip(counts, class_permutations(labels, len(counts), seed))):
        if len(order) < n:
            asked = f"n_per_class={n}" if len(set(counts)) == 1 else f"the {n} the subset asks for"
            raise DataError(f"class {c} has {len(order)} examples, fewer than {asked}")
        chosen.append(order[:n])
    return torch.cat(chosen).sort().values


def long_tail_counts(num_classes: int, imbalance_ratio: float, n_max: int = LONG_TAIL_N_MAX,
                     class_order: str = "index", seed: int = 0) -> list[int]:
    """Images per class (in class order) of the MNIST-LT profile: the class of rank r keeps
    ``floor(n_max * rho^(-r/(C-1)) + 0.5)``; rank r is class r (``"index"``) or the r-th class of
    a permutation seeded with ``seed`` (``"permuted"``). A count that rounds to 0 is an error."""
    if num_classes < 2:
        raise ConfigError(f"a long-tailed subset needs at least 2 classes, the data has {num_classes}")
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


def infer_num_classes(labels: torch.Tensor) -> int:
    """Number of classes as max(label) + 1 (labels are 0-based integers)."""
    return int(labels.max()) + 1


def check_labels(labels: torch.Tensor, num_classes: int) -> None:
    if len(labels) and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
        raise DataError(f"labels span [{int(labels.min())}, {int(labels.max())}] but num_classes is "
                        f"{num_classes}; labels must lie in [0, {num_classes})")


def held_out_per_class(labels: torch.Tensor, n_per_class: int, seed: int = 0, skip: int = LONG_TAIL_N_MAX,
                       num_classes: Optional[int] = None) -> torch.Tensor:
    """Sorted indices of ``n_per_class`` examples of each class that no subset of at most
    ``skip`` images per class (same seed) contains: positions ``skip .. skip + n - 1`` of the
    class's seeded permutation. A validation set for tuning on the train split."""
    chosen = []
    for c, order in enumerate(class_permutations(labels, num_classes or infer_num_classes(labels), seed)):
        if len(order) < skip + n_per_class:
            raise DataError(f"class {c} has {len(order)} examples, fewer than the {skip + n_per_class} a held-out "
                            f"set of {n_per_class} beyond {skip} needs")
        chosen.append(order[skip:skip + n_per_class])
    return torch.cat(chosen).sort().values
