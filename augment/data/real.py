"""``RealMNIST``: the real digits of a data directory as a Dataset, resident on a device, in
the item format of ``SyntheticMNIST`` (``(C, 32, 32)`` float32 in [-1, 1], int label)."""

from __future__ import annotations

import numbers
from typing import Callable, Optional, Sequence, Union

import torch

from augment.checks import item_index
from augment.config import SubsetSpec
from augment.data.mnist import load_split, resolve_data_dir
from augment.data.subsets import infer_num_classes, subset_indices
from augment.device import resolve_device
from augment.errors import ConfigError
from augment.fileio import PathLike
from augment.images import to_model_images


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
