"""A run's real training images and the order the critic draws them in.

``load_training_data`` reads the train split of the run's data directory, checks it against
the model config and keeps the run's subset (``TrainConfig.subset``). Real batches are a pure
function of (seed, batch counter), so a resumed run needs only its step: ``RealBatches`` draws
every image equally often (seeded, per-epoch shuffled, drop-last passes: the data's own class
frequencies), ``BalancedBatches`` every class equally often (rare images repeat), as
``TrainConfig.real_sampling`` says.
"""

from __future__ import annotations

from dataclasses import replace

import torch

from augment.config import TrainConfig
from augment.data.sources import load_labelled
from augment.data.subsets import check_labels, subset_indices
from augment.errors import TrainingError
from augment.provenance import DataSignature


class RealBatches:
    """Batch ``k`` of a seeded, per-epoch shuffled, drop-last pass over ``n`` examples."""

    def __init__(self, n: int, batch_size: int, seed: int, device: torch.device):
        if n < batch_size:
            raise TrainingError(f"{n} training images are fewer than batch_size={batch_size}")
        self.n, self.batch_size, self.seed, self.device = n, batch_size, seed, device
        self.per_epoch = n // batch_size
        self._epoch, self._perm = -1, None

    def indices(self, k: int) -> torch.Tensor:
        """Indices (batch_size,) on the device of the k-th batch (k >= 0)."""
        epoch, pos = divmod(k, self.per_epoch)
        if epoch != self._epoch:
            gen = torch.Generator().manual_seed(self.seed * 1_000_033 + epoch)
            self._perm = torch.randperm(self.n, generator=gen).to(self.device)
            self._epoch = epoch
        return self._perm[pos * self.batch_size:(pos + 1) * self.batch_size]


class BalancedBatches:
    """Batch ``k`` of a class-balanced stream over ``labels`` (N,): sample t = k * B + j of the
    stream is of class ``t mod C`` (each batch within one of every class's share), and the m-th
    sample of class c is element ``m mod n_c`` of the ``(m div n_c)``-th seeded permutation of
    that class's examples, so rare examples repeat, each once per pass over its class. A pure
    function of (seed, k), like ``RealBatches``; ``per_epoch`` counts batches of N images."""

    def __init__(self, labels: torch.Tensor, batch_size: int, seed: int, device: torch.device):
        if len(labels) < batch_size:
            raise TrainingError(f"{len(labels)} training images are fewer than batch_size={batch_size}")
        labels = labels.cpu()
        self.members = [(labels == c).nonzero().flatten() for c in range(int(labels.max()) + 1)]
        self.members = [m for m in self.members if len(m)]  # classes with no example are not drawn
        self.n, self.batch_size, self.seed, self.device = len(labels), batch_size, seed, device
        self.per_epoch = self.n // batch_size
        self._perms: dict = {}  # (class position, pass) -> permuted examples, the two latest per class

    def _permutation(self, c: int, p: int) -> torch.Tensor:
        key = (c, p)
        if key not in self._perms:
            gen = torch.Generator().manual_seed((self.seed * 1_000_033 + p) * 1_009 + c)
            self._perms = {k: v for k, v in self._perms.items() if k[0] != c or k[1] >= p - 1}
            self._perms[key] = self.members[c][torch.randperm(len(self.members[c]), generator=gen)]
        return self._perms[key]

    def indices(self, k: int) -> torch.Tensor:
        """Indices (batch_size,) on the device of the k-th batch (k >= 0)."""
        classes = len(self.members)
        t = torch.arange(k * self.batch_size, (k + 1) * self.batch_size)
        out = torch.empty(self.batch_size, dtype=torch.long)
        for c in range(classes):
            rows = (t % classes == c).nonzero().flatten()
            m = t[rows] // classes  # the class's m-th samples (increasing)
            size = len(self.members[c])
            for p in (m // size).unique().tolist():  # one or a few passes over the class a batch
                here = m // size == p
                out[rows[here]] = self._permutation(c, p)[m[here] % size]
        return out.to(self.device)


def resolved_real_sampling(cfg: TrainConfig) -> str:
    """``cfg.real_sampling`` with 'auto' resolved: 'balanced' for a long-tailed subset (measured
    better for the rare classes: experiments/results/longtail_cpu/real_sampling.md), else
    'uniform' (the reference loop's)."""
    if cfg.real_sampling != "auto":
        return cfg.real_sampling
    return "balanced" if cfg.subset.is_long_tailed else "uniform"


def _sampling_to_save(cfg: TrainConfig) -> str:
    """What the run's saved config says: 'auto' stays 'auto' where it means 'uniform' for good
    (all or balanced data); for a long-tailed subset it is saved resolved, so that a resumed run
    keeps its sampling whatever a later version's default."""
    return resolved_real_sampling(cfg) if cfg.subset.is_long_tailed else cfg.real_sampling


def load_training_data(cfg: TrainConfig) -> tuple[TrainConfig, torch.Tensor, torch.Tensor, DataSignature]:
    """(cfg with ``num_classes`` resolved from the source, uint8 images, int64 labels, what the
    data is: kind, class names, image size and channels, which the run's files record) of the
    run's training set: the train split of ``cfg.data_dir`` (a source of kind ``cfg.dataset``,
    ``augment.data.sources``), checked against the model config, reduced to ``cfg.subset`` when
    set (and ``real_sampling`` resolved). One-line errors for bad data."""
    source = load_labelled(cfg.data_dir, "train", cfg.dataset)
    images, labels = source.images, source.labels
    if cfg.model.num_classes is None:
        cfg = replace(cfg, model=replace(cfg.model, num_classes=source.num_classes))
    check_labels(labels, cfg.model.num_classes)
    if cfg.model.num_classes > source.num_classes:
        raise TrainingError(f"the data has {source.num_classes} classes but model.num_classes is "
                            f"{cfg.model.num_classes}; set it to {source.num_classes}, or to None (from the data; "
                            f"the CLI's default)")
    keep = subset_indices(labels, cfg.subset, cfg.seed, cfg.model.num_classes)
    if keep is not None:
        images, labels = images[keep], labels[keep]
    if cfg.real_sampling != _sampling_to_save(cfg):
        cfg = replace(cfg, real_sampling=_sampling_to_save(cfg))
    if images.dim() == 3 and cfg.model.channels != 1:
        raise TrainingError(f"grayscale data but model.channels={cfg.model.channels}")
    trained_on = DataSignature.of_images(cfg.dataset, source.class_names, images)
    return cfg, images, labels, trained_on
