"""The memorization audit: do samples copy their generator's training images? Pure maths:
arrays in, numbers out (no files, no model, no global RNG).

Vectors are rows ``(N, D)`` of pixels or features; labels ``(N,)`` ints in [0, C). Nearest
neighbours are searched among the training images *of the same class* (a conditional
generator's copy of a "3" is labelled 3), in Euclidean distance, block by block so memory stays
bounded (``BLOCK_ENTRIES``) whatever the training set (60,000 MNIST images included). Three
statistics, per class and overall:

* ``ct``: the data-copying statistic C_T of Meehan, Chaudhuri & Dasgupta (AISTATS 2020). Each
  class's training vectors are cut into at most ``CELLS_PER_CLASS`` k-means cells; a sample or
  held-out real vector belongs to the cell of its nearest centre. In each cell holding at least
  ``MIN_CELL_SAMPLES`` samples and ``MIN_CELL_HELD_OUT`` held-out vectors, the Mann-Whitney U
  statistic of the samples' distances to their nearest training vector against the held-out
  vectors' distances becomes a z-score, ``(U - mn/2) / sqrt(mn(m+n+1)/12)`` (U: the pairs where
  the sample is farther, ties half). C_T is the mean of those z-scores weighted by each cell's
  share of held-out vectors. About 0: samples lie as far from the training set as fresh real
  data; negative: closer (copying; below about -3 it is no accident); positive: farther.
* ``authenticity`` (Alaa et al., ICML 2022): the share of samples that are *not* closer to their
  nearest training vector than that vector is to its own nearest other training vector. Fresh
  real data does not score 1: ``held_out_authenticity`` is its value, the yardstick.
* ``near_duplicate_fraction``: the share of samples whose nearest-training distance is at most
  their class's threshold, the ``NEAR_DUPLICATE_QUANTILE`` quantile of the held-out vectors'
  nearest-training distances in that class. Calibrated so that fresh real data scores about
  ``NEAR_DUPLICATE_QUANTILE`` (0.01); a copying generator scores near 1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Union

import numpy as np
import torch

ArrayLike = Union[np.ndarray, torch.Tensor]

BLOCK_ENTRIES = 2**22  # entries of one block of squared distances (float32: 16 MiB)
CELLS_PER_CLASS = 10
MIN_CELL_SAMPLES = 20
MIN_CELL_HELD_OUT = 10
NEAR_DUPLICATE_QUANTILE = 0.01
KMEANS_ITERATIONS = 20
KMEANS_MAX_POINTS = 2000
KEYS = ("ct", "authenticity", "near_duplicate_fraction", "held_out_authenticity")


@dataclass
class MemorizationAudit:
    """``summary``: ``{key: float, "per_class": {key: [C floats], "threshold": [C floats]},
    "cells": {"used", "total"}}`` (keys ``KEYS``; NaN where undefined). Per sample ``(N,)``:
    ``nearest_distance`` to its nearest training vector of its class, ``nearest_index`` (a row
    of the training vectors; -1 where its class has none) and ``copy_ratio``, that distance over
    the class's near-duplicate threshold (at most 1: a near duplicate; NaN if undefined)."""

    summary: dict
    nearest_distance: np.ndarray
    nearest_index: np.ndarray
    copy_ratio: np.ndarray


def _vectors(values: ArrayLike) -> torch.Tensor:
    tensor = values if isinstance(values, torch.Tensor) else torch.from_numpy(np.asarray(values))
    return tensor.detach().cpu().reshape(len(tensor), math.prod(tensor.shape[1:])).to(torch.float32)


def _labels(values: ArrayLike) -> torch.Tensor:
    tensor = values if isinstance(values, torch.Tensor) else torch.from_numpy(np.asarray(values))
    return tensor.detach().cpu().long()


def nearest_neighbours(queries: ArrayLike, reference: ArrayLike, k: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``k`` nearest rows of ``reference`` ``(M, D)`` to each row of ``queries`` ``(N, D)``:
    Euclidean distances ``(N, k)`` float32, ascending, and their row indices ``(N, k)`` int64.
    Found block by block (at most ``BLOCK_ENTRIES`` squared distances at a time); the distances
    returned are recomputed exactly from the vectors found."""
    queries, reference = _vectors(queries), _vectors(reference)
    k = min(k, len(reference))
    ref_sq = (reference * reference).sum(1)
    rows = max(1, BLOCK_ENTRIES // max(len(reference), k * reference.shape[1], 1))
    distances = torch.empty((len(queries), k))
    indices = torch.empty((len(queries), k), dtype=torch.long)
    for start in range(0, len(queries), rows):
        block = queries[start:start + rows]
        squared = (block * block).sum(1, keepdim=True) - 2 * block @ reference.T + ref_sq
        found = squared.topk(k, dim=1, largest=False).indices
        exact = (block[:, None, :] - reference[found]).norm(dim=2)
        order = exact.argsort(dim=1)
        distances[start:start + rows], indices[start:start + rows] = exact.gather(1, order), found.gather(1, order)
    return distances, indices


def kmeans_centres(points: ArrayLike, k: int, seed: int = 0, iterations: int = KMEANS_ITERATIONS) -> torch.Tensor:
    """``k`` centres ``(k, D)`` of ``points`` ``(N, D)`` (k <= N): k-means++ seeding from a
    ``torch.Generator`` seeded with ``seed``, then ``iterations`` Lloyd steps (an emptied cell
    keeps its centre), on a seeded subsample of at most ``KMEANS_MAX_POINTS`` points."""
    points = _vectors(points)
    gen = torch.Generator().manual_seed(seed)
    if len(points) > KMEANS_MAX_POINTS:  # the cells of a seeded subsample: the same cells, closely
        points = points[torch.randperm(len(points), generator=gen)[:KMEANS_MAX_POINTS]]
    centres = [points[torch.randint(len(points), (1,), generator=gen)].squeeze(0)]
    closest = ((points - centres[0]) ** 2).sum(1)
    for _ in range(1, k):
        weights = closest if float(closest.sum()) > 0 else torch.ones_like(closest)
        centres.append(points[torch.multinomial(weights, 1, generator=gen)].squeeze(0))
        closest = torch.minimum(closest, ((points - centres[-1]) ** 2).sum(1))
    centres = torch.stack(centres)
    for _ in range(iterations):
        squared = (centres * centres).sum(1) - 2 * points @ centres.T  # + |x|^2, the same for every centre
        members = torch.nn.functional.one_hot(squared.argmin(1), k).T.to(points.dtype)  # (k, N)
        counts = members.sum(1)
        filled = counts > 0
        centres[filled] = (members @ points)[filled] / counts[filled, None]
    return centres


def mann_whitney_z(x: ArrayLike, y: ArrayLike) -> float:
    """z-score of the Mann-Whitney U statistic of ``x`` (m values) against ``y`` (n values): U
    counts the pairs with x > y (ties count half), z = (U - mn/2) / sqrt(mn(m+n+1)/12);
    negative when ``x`` tends to be smaller."""
    x, y = np.asarray(x, dtype=np.float64).ravel(), np.asarray(y, dtype=np.float64).ravel()
    m, n = len(x), len(y)
    _, inverse, counts = np.unique(np.concatenate([x, y]), return_inverse=True, return_counts=True)
    average_rank = np.cumsum(counts) - (counts - 1) / 2  # 1-based, ties share their mean rank
    u = average_rank[inverse[:m]].sum() - m * (m + 1) / 2
    return float((u - m * n / 2) / math.sqrt(m * n * (m + n + 1) / 12))


def audit(train: ArrayLike, train_labels: ArrayLike, held_out: ArrayLike, held_out_labels: ArrayLike,
          samples: ArrayLike, sample_labels: ArrayLike, num_classes: int, seed: int = 0) -> MemorizationAudit:
    """The memorization audit (module docstring) of ``samples`` against ``train``.

    Args:
        train: the generator's training vectors ``(M, ...)`` (flattened to rows), any real dtype.
        train_labels: their classes ``(M,)`` in [0, ``num_classes``).
        held_out: real vectors ``(H, ...)`` of the same space that are not training vectors.
        held_out_labels: their classes ``(H,)``.
        samples: the judged vectors ``(N, ...)``.
        sample_labels: their classes ``(N,)``.
        num_classes: C.
        seed: the k-means of class c is seeded with ``seed + c``.

    Returns:
        A :class:`MemorizationAudit`; NaN where a value is undefined (a class without training
        or held-out vectors, or without a cell holding enough of both).
    """
    train_labels, held_labels, sample_labels = _labels(train_labels), _labels(held_out_labels), _labels(sample_labels)
    n = len(sample_labels)
    nearest_distance = np.full(n, math.nan)
    nearest_index = np.full(n, -1, dtype=np.int64)
    copy_ratio = np.full(n, math.nan)
    authentic = np.full(n, math.nan)
    per_class = {key: [math.nan] * num_classes for key in (*KEYS, "threshold")}
    held_authentic = []  # 0/1 per held-out vector of a class with 2+ training vectors
    cells = []  # (z, held-out count) of every cell used
    total_cells = 0
    for c in range(num_classes):
        rows = (train_labels == c).nonzero().flatten()
        mine = (sample_labels == c).nonzero().flatten()
        theirs = (held_labels == c).nonzero().flatten()
        if len(rows) == 0 or len(theirs) == 0:
            continue
        reference = _vectors(train[rows])
        sample_vectors, held_vectors = _vectors(samples[mine]), _vectors(held_out[theirs])
        d_sample, i_sample = (t[:, 0] for t in nearest_neighbours(sample_vectors, reference))
        d_held, i_held = (t[:, 0] for t in nearest_neighbours(held_vectors, reference))
        threshold = float(torch.quantile(d_held.double(), NEAR_DUPLICATE_QUANTILE))
        nearest_distance[mine] = d_sample.numpy()
        nearest_index[mine] = rows[i_sample].numpy()
        copy_ratio[mine] = d_sample.numpy() / threshold if threshold > 0 else \
            np.where(d_sample.numpy() > 0, math.inf, 0.0)
        per_class["threshold"][c] = threshold
        if len(mine):
            per_class["near_duplicate_fraction"][c] = float((d_sample <= threshold).double().mean())
        if len(rows) > 1:  # each training vector's distance to its nearest other training vector
            used = torch.unique(torch.cat([i_sample, i_held]))
            own = torch.zeros(len(rows))
            own[used] = nearest_neighbours(reference[used], reference, k=2)[0][:, 1]
            authentic[mine] = (d_sample > own[i_sample]).double().numpy()
            held_authentic.append((d_held > own[i_held]).double().numpy())
            per_class["held_out_authenticity"][c] = float(held_authentic[-1].mean())
            if len(mine):
                per_class["authenticity"][c] = float(authentic[mine].mean())
        centres = kmeans_centres(reference, min(CELLS_PER_CLASS, len(rows)), seed + c)
        total_cells += len(centres)
        sample_cell = nearest_neighbours(sample_vectors, centres)[1][:, 0]
        held_cell = nearest_neighbours(held_vectors, centres)[1][:, 0]
        class_cells = []
        for j in range(len(centres)):
            in_sample, in_held = d_sample[sample_cell == j], d_held[held_cell == j]
            if len(in_sample) >= MIN_CELL_SAMPLES and len(in_held) >= MIN_CELL_HELD_OUT:
                class_cells.append((mann_whitney_z(in_sample, in_held), len(in_held)))
        per_class["ct"][c] = _weighted_mean(class_cells)
        cells += class_cells
    defined = ~np.isnan(copy_ratio)
    summary = {
        "ct": _weighted_mean(cells),
        "authenticity": _mean(authentic[~np.isnan(authentic)]),
        "near_duplicate_fraction": _mean(copy_ratio[defined] <= 1),
        "held_out_authenticity": _mean(np.concatenate(held_authentic)) if held_authentic else math.nan,
        "per_class": per_class,
        "cells": {"used": len(cells), "total": total_cells},
    }
    return MemorizationAudit(summary, nearest_distance, nearest_index, copy_ratio)


def _weighted_mean(cells: list) -> float:
    """Mean of the z-scores of ``(z, weight)`` cells weighted by ``weight``; NaN if none."""
    weight = sum(w for _, w in cells)
    return float(sum(z * w for z, w in cells) / weight) if weight else math.nan


def _mean(values) -> float:
    values = np.asarray(values, dtype=np.float64)
    return float(values.mean()) if values.size else math.nan
