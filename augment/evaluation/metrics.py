"""Pure evaluation metrics over feature vectors and class labels.

Every function takes numpy arrays or torch tensors (any device), works on CPU
copies in float64, never reads files and never touches global RNG state:
randomness, where there is any, comes from an explicit ``seed`` argument.

Shapes: features are ``(N, D)`` floats, labels are ``(N,)`` integers in
``[0, num_classes)``. Invalid input raises ``ValueError``.
"""

from __future__ import annotations

import math
from typing import Iterator, Sequence, Union

import numpy as np
import torch

from augment.checks import is_integer

ArrayLike = Union[np.ndarray, torch.Tensor, Sequence]

# Largest number of entries one block of a pairwise distance matrix may hold
# (float64, so 2**22 entries = 32 MiB); bounds memory for large sets.
DISTANCE_BLOCK_ENTRIES = 2**22

PRDC_KEYS = ("precision", "recall", "density", "coverage")


# Input conversion and validation -----------------------------------------------------------


def _to_numpy(values: ArrayLike) -> np.ndarray:
    """Return a numpy array for a tensor (any device/dtype), array or sequence."""
    if isinstance(values, torch.Tensor):
        tensor = values.detach().cpu()
        if tensor.is_floating_point():
            tensor = tensor.to(torch.float64)  # bf16/fp16 have no numpy twin
        return tensor.numpy()
    return np.asarray(values)


def _features(values: ArrayLike, name: str) -> np.ndarray:
    """Validate and return ``(N, D)`` finite features as float64."""
    array = _to_numpy(values)
    if array.ndim != 2:
        raise ValueError(f"{name} must be 2-D (N, D); got shape {tuple(array.shape)}")
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise ValueError(f"{name} must be non-empty; got shape {tuple(array.shape)}")
    if not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)):
        raise ValueError(f"{name} must hold real numbers; got dtype {array.dtype}")
    array = array.astype(np.float64, copy=False)
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return array


def _num_classes(num_classes: int) -> int:
    if not is_integer(num_classes):
        raise ValueError(f"num_classes must be an int; got {type(num_classes).__name__}")
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1; got {num_classes}")
    return int(num_classes)


def _labels(values: ArrayLike, name: str, num_classes: int | None = None) -> np.ndarray:
    """Validate and return ``(N,)`` int64 labels, in ``[0, num_classes)`` when given."""
    array = _to_numpy(values)
    if array.ndim != 1:
        raise ValueError(f"{name} must be 1-D (N,); got shape {tuple(array.shape)}")
    if array.shape[0] == 0:
        raise ValueError(f"{name} must be non-empty")
    if not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"{name} must hold integers; got dtype {array.dtype}")
    array = array.astype(np.int64, copy=False)
    if num_classes is not None:
        low, high = int(array.min()), int(array.max())
        if low < 0 or high >= num_classes:
            raise ValueError(f"{name} must lie in [0, {num_classes}); got values in [{low}, {high}]")
    return array


def _same_length(a: np.ndarray, a_name: str, b: np.ndarray, b_name: str) -> None:
    if a.shape[0] != b.shape[0]:
        raise ValueError(f"{a_name} and {b_name} must have the same length; got {a.shape[0]} and {b.shape[0]}")


def _same_dim(a: np.ndarray, a_name: str, b: np.ndarray, b_name: str) -> None:
    if a.shape[1] != b.shape[1]:
        raise ValueError(
            f"{a_name} and {b_name} must have the same feature dimension; "
            f"got {a.shape[1]} and {b.shape[1]}"
        )


def _labelled_features(
    feats: ArrayLike, feats_name: str, labels: ArrayLike, labels_name: str, num_classes: int
) -> tuple[np.ndarray, np.ndarray]:
    feats_array = _features(feats, feats_name)
    labels_array = _labels(labels, labels_name, num_classes)
    _same_length(feats_array, feats_name, labels_array, labels_name)
    return feats_array, labels_array


def _per_class_sets(
    sets: tuple[ArrayLike, ArrayLike, ArrayLike, ArrayLike], names: tuple[str, str, str, str],
    num_classes: int,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Validate two labelled sets ``(feats_a, labels_a, feats_b, labels_b)`` of ``(N, D)``/``(N,)``
    and ``(M, D)``/``(M,)``; return, for each of the C classes, its rows of a and of b."""
    num_classes = _num_classes(num_classes)
    a, a_labels = _labelled_features(sets[0], names[0], sets[1], names[1], num_classes)
    b, b_labels = _labelled_features(sets[2], names[2], sets[3], names[3], num_classes)
    _same_dim(a, names[0], b, names[2])
    return [(a[a_labels == cls], b[b_labels == cls]) for cls in range(num_classes)]


def _real_fake_classes(real_feats: ArrayLike, real_labels: ArrayLike, fake_feats: ArrayLike,
                       fake_labels: ArrayLike, num_classes: int) -> list[tuple[np.ndarray, np.ndarray]]:
    return _per_class_sets((real_feats, real_labels, fake_feats, fake_labels),
                           ("real_feats", "real_labels", "fake_feats", "fake_labels"), num_classes)


# Classification ----------------------------------------------------------------------------


def accuracy(true: ArrayLike, pred: ArrayLike) -> float:
    """Share of ``pred`` equal to ``true``; both ``(N,)`` ints. Returns a float in [0, 1]."""
    true_labels = _labels(true, "true")
    pred_labels = _labels(pred, "pred")
    _same_length(true_labels, "true", pred_labels, "pred")
    return float(np.mean(true_labels == pred_labels))


def confusion_matrix(true: ArrayLike, pred: ArrayLike, num_classes: int) -> np.ndarray:
    """Counts ``(C, C)`` int64: entry ``[t, p]`` = samples of true class t predicted as p."""
    num_classes = _num_classes(num_classes)
    true_labels = _labels(true, "true", num_classes)
    pred_labels = _labels(pred, "pred", num_classes)
    _same_length(true_labels, "true", pred_labels, "pred")
    flat = np.bincount(true_labels * num_classes + pred_labels, minlength=num_classes**2)
    return flat.reshape(num_classes, num_classes).astype(np.int64)


def classifier_agreement(
    predicted: ArrayLike, conditioned: ArrayLike, num_classes: int
) -> dict:
    """How often a classifier recognises the class a generator was conditioned on.

    ``predicted`` and ``conditioned`` are ``(N,)`` ints in ``[0, num_classes)``.
    Returns ``{"overall": float in [0, 1], "per_class": list of C floats}``;
    ``per_class[c]`` is the agreement among samples conditioned on c, NaN if none.
    """
    num_classes = _num_classes(num_classes)
    predicted_labels = _labels(predicted, "predicted", num_classes)
    conditioned_labels = _labels(conditioned, "conditioned", num_classes)
    _same_length(predicted_labels, "predicted", conditioned_labels, "conditioned")
    agrees = predicted_labels == conditioned_labels
    per_class = []
    for cls in range(num_classes):
        in_class = conditioned_labels == cls
        per_class.append(float(np.mean(agrees[in_class])) if in_class.any() else math.nan)
    return {"overall": float(np.mean(agrees)), "per_class": per_class}


# Frechet distance --------------------------------------------------------------------------


def _psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    """Square root of a symmetric PSD matrix; tiny negative eigenvalues are clipped to 0."""
    eigenvalues, eigenvectors = np.linalg.eigh(matrix)
    roots = np.sqrt(np.clip(eigenvalues, 0.0, None))
    return (eigenvectors * roots) @ eigenvectors.T


def _frechet(a: np.ndarray, b: np.ndarray) -> float:
    mean_a, mean_b = a.mean(axis=0), b.mean(axis=0)
    cov_a = np.atleast_2d(np.cov(a, rowvar=False))
    cov_b = np.atleast_2d(np.cov(b, rowvar=False))
    # Tr((Sa Sb)^1/2) = Tr((Sa^1/2 Sb Sa^1/2)^1/2); the inner matrix is symmetric PSD.
    sqrt_a = _psd_sqrt(cov_a)
    inner = sqrt_a @ cov_b @ sqrt_a
    inner = (inner + inner.T) / 2.0
    trace_sqrt = np.sqrt(np.clip(np.linalg.eigvalsh(inner), 0.0, None)).sum()
    distance = (
        np.sum((mean_a - mean_b) ** 2) + np.trace(cov_a) + np.trace(cov_b) - 2.0 * trace_sqrt
    )
    return float(max(distance, 0.0))  # the exact value is >= 0; drop rounding noise


def frechet_distance(feats_a: ArrayLike, feats_b: ArrayLike) -> float:
    """Frechet distance between Gaussians fitted to ``(N, D)`` and ``(M, D)`` features.

    ``||mu_a - mu_b||^2 + Tr(Sa + Sb - 2 (Sa Sb)^1/2)`` with unbiased (N-1)
    covariances, computed in float64. Needs N, M >= 2. Returns a float >= 0
    (about 0 for a set against itself).
    """
    a = _features(feats_a, "feats_a")
    b = _features(feats_b, "feats_b")
    _same_dim(a, "feats_a", b, "feats_b")
    for array, name in ((a, "feats_a"), (b, "feats_b")):
        if array.shape[0] < 2:
            raise ValueError(f"{name} needs at least 2 samples for a covariance; got 1")
    return _frechet(a, b)


def per_class_frechet(
    feats_a: ArrayLike,
    labels_a: ArrayLike,
    feats_b: ArrayLike,
    labels_b: ArrayLike,
    num_classes: int,
) -> list[float]:
    """Frechet distance per class between ``(N, D)``/``(N,)`` and ``(M, D)``/``(M,)`` sets.

    Returns C floats >= 0; NaN for a class with fewer than 2 samples on either side.
    """
    classes = _per_class_sets((feats_a, labels_a, feats_b, labels_b),
                              ("feats_a", "labels_a", "feats_b", "labels_b"), num_classes)
    return [_frechet(a, b) if len(a) >= 2 and len(b) >= 2 else math.nan for a, b in classes]


# Pairwise distances ------------------------------------------------------------------------


def _distance_blocks(
    rows: torch.Tensor, cols: torch.Tensor
) -> Iterator[tuple[int, torch.Tensor]]:
    """Yield ``(start, block)`` with block = Euclidean distances rows[start:start+r] x cols."""
    block_rows = max(1, DISTANCE_BLOCK_ENTRIES // cols.shape[0])
    for start in range(0, rows.shape[0], block_rows):
        yield start, torch.cdist(rows[start : start + block_rows], cols)


def _kth_neighbour_distances(points: torch.Tensor, k: int) -> torch.Tensor:
    """``(N,)`` distance from each point to its k-th nearest other point."""
    radii = torch.empty(points.shape[0], dtype=points.dtype)
    for start, block in _distance_blocks(points, points):
        # The (k+1)-th smallest distance counts the point itself at distance 0.
        radii[start : start + block.shape[0]] = block.kthvalue(k + 1, dim=1).values
    return radii


def _mean_pairwise(points: torch.Tensor) -> float:
    """Mean Euclidean distance over the N(N-1)/2 distinct pairs of ``(N, D)`` points."""
    total = 0.0
    for start, block in _distance_blocks(points, points):
        # Keep entries with column index > global row index: each pair once, no diagonal.
        total += float(torch.triu(block, diagonal=start + 1).sum())
    count = points.shape[0]
    return total / (count * (count - 1) / 2)


def mean_pairwise_distance(
    feats: ArrayLike, max_samples: int | None = 2000, seed: int = 0
) -> float:
    """Mean Euclidean distance over distinct pairs of ``(N, D)`` features, N >= 2.

    If N > ``max_samples``, a subset of ``max_samples`` rows drawn without
    replacement by ``numpy.random.default_rng(seed)`` is used; ``None`` uses all.
    Returns a float >= 0.
    """
    points = _features(feats, "feats")
    return _subsampled_mean_pairwise(points, "feats", max_samples, seed)


def _subsampled_mean_pairwise(
    points: np.ndarray, name: str, max_samples: int | None, seed: int
) -> float:
    if points.shape[0] < 2:
        raise ValueError(f"{name} needs at least 2 samples for a pairwise distance; got 1")
    if max_samples is not None:
        if max_samples < 2:
            raise ValueError(f"max_samples must be >= 2 or None; got {max_samples}")
        if points.shape[0] > max_samples:
            rng = np.random.default_rng(seed)
            points = points[rng.choice(points.shape[0], size=max_samples, replace=False)]
    return _mean_pairwise(torch.from_numpy(points))


def intra_class_diversity(
    real_feats: ArrayLike,
    real_labels: ArrayLike,
    fake_feats: ArrayLike,
    fake_labels: ArrayLike,
    num_classes: int,
    max_samples: int | None = 2000,
    seed: int = 0,
) -> list[float]:
    """Per class, mean pairwise distance of fake features over that of real ones.

    Features ``(N, D)``/``(M, D)``, labels ``(N,)``/``(M,)``. Returns C floats >= 0:
    1.0 = fakes as varied as reals, about 0 = mode collapse. NaN for a class with
    fewer than 2 samples on either side or with identical real samples.
    ``max_samples`` and ``seed`` are as in :func:`mean_pairwise_distance`.
    """
    ratios = []
    for real_cls, fake_cls in _real_fake_classes(real_feats, real_labels, fake_feats, fake_labels,
                                                 num_classes):
        if len(real_cls) < 2 or len(fake_cls) < 2:
            ratios.append(math.nan)
            continue
        real_spread = _subsampled_mean_pairwise(real_cls, "real_feats", max_samples, seed)
        fake_spread = _subsampled_mean_pairwise(fake_cls, "fake_feats", max_samples, seed)
        ratios.append(fake_spread / real_spread if real_spread > 0 else math.nan)
    return ratios


# Precision, recall, density, coverage (Naeem et al. 2020) ----------------------------------


def _prdc(real: np.ndarray, fake: np.ndarray, k: int, real_radii: torch.Tensor | None = None) -> dict:
    real_points, fake_points = torch.from_numpy(real), torch.from_numpy(fake)
    real_radii = _kth_neighbour_distances(real_points, k) if real_radii is None else real_radii
    fake_radii = _kth_neighbour_distances(fake_points, k)

    fake_in_any_real_ball = torch.zeros(fake.shape[0], dtype=torch.bool)
    real_balls_per_fake = torch.zeros(fake.shape[0], dtype=torch.int64)
    real_in_any_fake_ball = torch.empty(real.shape[0], dtype=torch.bool)
    real_covered = torch.empty(real.shape[0], dtype=torch.bool)
    for start, block in _distance_blocks(real_points, fake_points):
        stop = start + block.shape[0]
        inside_real_ball = block < real_radii[start:stop, None]
        fake_in_any_real_ball |= inside_real_ball.any(dim=0)
        real_balls_per_fake += inside_real_ball.sum(dim=0)
        real_in_any_fake_ball[start:stop] = (block < fake_radii[None, :]).any(dim=1)
        real_covered[start:stop] = block.min(dim=1).values < real_radii[start:stop]

    return {
        "precision": float(fake_in_any_real_ball.double().mean()),
        "recall": float(real_in_any_fake_ball.double().mean()),
        "density": float(real_balls_per_fake.double().mean()) / k,
        "coverage": float(real_covered.double().mean()),
    }


def _check_k(k: int, **sets: np.ndarray) -> int:
    """``k`` as an int >= 1, each named set of ``(N, D)`` features holding more than k."""
    if not is_integer(k) or k < 1:
        raise ValueError(f"k must be an int >= 1; got {k!r}")
    for name, array in sets.items():
        if array.shape[0] <= k:
            raise ValueError(f"{name} needs more than k={k} samples; got {array.shape[0]}")
    return int(k)


def neighbour_radii(feats: ArrayLike, k: int = 5) -> np.ndarray:
    """``(N,)`` distance of each of ``(N, D)`` features to its k-th nearest other one (N > k): the
    balls of :func:`prdc`, for a caller that scores many fake sets against one real set."""
    points = _features(feats, "feats")
    return _kth_neighbour_distances(torch.from_numpy(points), _check_k(k, feats=points)).numpy()


def prdc(real_feats: ArrayLike, fake_feats: ArrayLike, k: int = 5, real_radii: ArrayLike | None = None) -> dict:
    """Precision, recall, density and coverage of fake ``(M, D)`` against real ``(N, D)``.

    Naeem et al. 2020. Each sample's ball has radius = distance to its k-th
    nearest neighbour in its own set (itself excluded); "inside" is strict.
    precision: share of fakes inside any real ball, in [0, 1].
    recall: share of reals inside any fake ball, in [0, 1].
    density: (1 / kM) * sum over fakes of real balls containing it, in [0, N/k]; ~1 when
    fakes are distributed like reals.
    coverage: share of reals whose nearest fake lies inside their own ball, in [0, 1].
    Needs N, M > k. Distances are computed in blocks, so memory stays bounded. ``real_radii``:
    the real balls, ``neighbour_radii(real_feats, k)`` with the same k (most of the work when
    N >> M), where the caller has them.
    """
    real = _features(real_feats, "real_feats")
    fake = _features(fake_feats, "fake_feats")
    _same_dim(real, "real_feats", fake, "fake_feats")
    k = _check_k(k, real_feats=real, fake_feats=fake)
    radii = None if real_radii is None else torch.from_numpy(_to_numpy(real_radii).astype(np.float64))
    if radii is not None and not (radii.shape == (len(real),) and bool((radii.isfinite() & (radii >= 0)).all())):
        raise ValueError(f"real_radii must be ({len(real)},) distances >= 0 and finite, neighbour_radii(real_feats, k) "
                         f"with prdc's k; got shape {tuple(radii.shape)}")
    return _prdc(real, fake, k, radii)


def per_class_prdc(
    real_feats: ArrayLike,
    real_labels: ArrayLike,
    fake_feats: ArrayLike,
    fake_labels: ArrayLike,
    num_classes: int,
    k: int = 5,
) -> list[dict]:
    """:func:`prdc` within each class; returns C dicts with the same four keys.

    A class with k or fewer samples on either side gets NaN for all four values.
    """
    k = _check_k(k)
    results = []
    for real_cls, fake_cls in _real_fake_classes(real_feats, real_labels, fake_feats, fake_labels,
                                                 num_classes):
        if len(real_cls) <= k or len(fake_cls) <= k:
            results.append({key: math.nan for key in PRDC_KEYS})
        else:
            results.append(_prdc(real_cls, fake_cls, k))
    return results
