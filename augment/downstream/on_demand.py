"""Training images made when a classifier first draws them (``OnDemandImages``), or all at once
(``materialize``): a synthetic batch is one generator forward, and items are pure functions of
their index, so both give a classifier bitwise the same images."""

from __future__ import annotations

import torch

from augment.errors import ConfigError
from augment.synthetic.dataset import collate_batch
from augment.synthetic.mixing import fetch_items


def materialize(dataset, batch_size: int = 2000) -> tuple[torch.Tensor, torch.Tensor]:
    """All items of a map-style dataset as (images (N, C, 32, 32), labels (N,) int64),
    fetched in batches (a synthetic batch is one generator forward)."""
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=False)
    xs, ys = [], []
    for x, y in loader:
        xs.append(x)
        ys.append(torch.as_tensor(y))
    return torch.cat(xs), torch.cat(ys).long()


class OnDemandImages:
    """The images of a map-style dataset, made when first drawn and then kept: ``source[idx]``
    for an int64 index tensor ``(B,)`` gives float32 ``(B, C, 32, 32)`` in [-1, 1] on ``device``.

    The items not yet made are fetched in one ``__getitems__`` call (one generator forward for
    synthetic items), so each item is made at most once and items the classifier never draws
    are never made: 1,000 steps of 128 draw ~114k of the 480k synthetic items of n = all, r = 8.
    Items are pure functions of their index, so a classifier sees bitwise the images that
    ``materialize`` would have given it. Storage is allocated up front but untouched pages of
    a CPU tensor cost no memory."""

    def __init__(self, dataset, device: torch.device | str):
        if len(dataset) == 0:
            raise ConfigError("no training items: the dataset is empty")
        self.dataset, self.device = dataset, torch.device(device)
        first = self._fetch(torch.zeros(1, dtype=torch.long))
        self.images = torch.empty((len(dataset), *first.shape[1:]), dtype=torch.float32, device=self.device)
        self.made = torch.zeros(len(dataset), dtype=torch.bool, device=self.device)
        self.images[0], self.made[0] = first[0], True

    @property
    def shape(self) -> torch.Size:
        return self.images.shape

    def __len__(self) -> int:
        return len(self.images)

    @property
    def count_made(self) -> int:
        """How many items have been made so far."""
        return int(self.made.sum())

    def _fetch(self, idx: torch.Tensor) -> torch.Tensor:

        images = collate_batch(fetch_items(self.dataset, idx.tolist()))[0]
        return images.to(device=self.device, dtype=torch.float32)

    def __getitem__(self, idx: torch.Tensor) -> torch.Tensor:
        idx = idx.to(self.device)
        missing = torch.unique(idx[~self.made[idx]])
        if len(missing):
            self.images[missing] = self._fetch(missing)
            self.made[missing] = True
        return self.images[idx]
