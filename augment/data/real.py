"""``RealMNIST``: the real images of a data source (MNIST, any IDX pair, an image folder, an
npz; ``augment.data.sources``) as a Dataset, in the item format of ``SyntheticMNIST``:
``(C, 32, 32)`` float32 in [-1, 1] resident on a device, or (``output="pil"``) what
``torchvision.datasets.MNIST`` yields."""

from __future__ import annotations

from typing import Callable, Optional, Sequence, Union

import torch
from PIL import Image
from torchvision.datasets import VisionDataset

from augment.checks import item_index
from augment.config import SubsetSpec
from augment.data.sources import load_labelled, source_kind, source_path
from augment.data.subsets import subset_indices
from augment.device import resolve_device
from augment.errors import ConfigError
from augment.fileio import PathLike
from augment.images import to_model_images

OUTPUTS = ("tensor", "pil")  # the item formats, as SyntheticMNIST's


class RealMNIST(VisionDataset):
    """Real images of a source, as ``(image, label)`` items, like torchvision's ``MNIST`` but
    read wherever the library finds the data (flat or ``MNIST/raw``, raw or gzipped, an image
    folder, an npz) and, by default, in the models' format.

    ``output="tensor"``: item i is ``(image (C, 32, 32) float32 in [-1, 1], label int in [0,
    num_classes))`` on ``device``, the format of ``SyntheticMNIST``'s tensor items, so the two
    mix in one DataLoader; ``__getitems__`` gathers a whole batch with one index operation; the
    images are resized and scaled once, when the dataset is built
    (``augment.images.to_model_images``). ``output="pil"``: item i is what
    ``torchvision.datasets.MNIST`` yields, ``(PIL.Image of mode 'L' at the source's size (MNIST:
    28x28), int)``, beside ``SyntheticMNIST(output="pil")`` in a torchvision script.

    Args:
        root: the data: an IDX directory (default ``$AUGMENT_DATA``, else
            ``~/.cache/augment/mnist``), an image folder or an ``.npz`` file, as ``dataset`` says.
        train: the train split (True) or the test split.
        subset: which images per class (``augment.config.SubsetSpec``: ``n_per_class``,
            long-tailed or explicit counts); None: all.
        seed: the seed of the subset's draw (the same seed draws the same images as a
            training run's ``TrainConfig.seed``).
        dataset: the kind of source, 'mnist', 'idx', 'folder' or 'npz'
            (``augment.data.sources``); None: recognised from ``root``. A source with one split
            is split by a seeded, stratified hold-out.
        device: where the image tensors live ('cpu', 'cuda', 'cuda:N', 'auto' or a
            ``torch.device``); PIL images live on the CPU.
        output: the item format, "tensor" or "pil" (see above).
        transform: applied to each image: a tensor (use tensor transforms), or with
            ``output="pil"`` a PIL image (e.g. ``ToTensor()``).
        target_transform: applied to each int label.
    """

    def __init__(self, root: Optional[PathLike] = None, train: bool = True, subset: Optional[SubsetSpec] = None,
                 seed: int = 0, dataset: Optional[str] = None, device: Union[str, torch.device] = "cpu",
                 transform: Optional[Callable] = None, target_transform: Optional[Callable] = None,
                 output: str = "tensor"):
        if subset is not None and not isinstance(subset, SubsetSpec):
            raise ConfigError(f"subset must be a SubsetSpec (or None for all), got {type(subset).__name__}")
        if output not in OUTPUTS:
            raise ConfigError(f"output must be one of {', '.join(OUTPUTS)}, got {output!r}")
        subset = subset if subset is not None else SubsetSpec()
        device = resolve_device(device)
        if output == "pil" and device.type != "cpu":
            raise ConfigError(f"output='pil' makes PIL images, which live on the CPU; device {str(device)!r} is "
                              f"for output='tensor'")
        self.dataset = source_kind(root, dataset)
        source = load_labelled(root, "train" if train else "test", self.dataset)
        super().__init__(source_path(root, self.dataset), transform=transform, target_transform=target_transform)
        self.train, self.split_origin = train, source.origin
        images, labels = source.images, source.labels
        self.num_classes = source.num_classes
        keep = subset_indices(labels, subset, seed, self.num_classes)
        if keep is not None:
            images, labels = images[keep], labels[keep]
        self.subset, self.output = subset, output
        # (N, C, 32, 32) in [-1, 1]; for PIL items the source's (N, H, W) uint8
        self.data = to_model_images(images, device) if output == "tensor" else images
        self.targets = labels.to(device)  # (N,) int64
        self.classes = list(source.class_names)
        self.class_to_idx = {name: c for c, name in enumerate(self.classes)}

    def __len__(self) -> int:
        return len(self.targets)

    @property
    def value_range(self) -> Optional[tuple]:
        """(-1.0, 1.0), the range of the image tensors before transforms; None for PIL output."""
        return (-1.0, 1.0) if self.output == "tensor" else None

    def __getitem__(self, index: int):
        """(image (1, 32, 32) float32 in [-1, 1], a copy, so in-place transforms leave the data
        alone, or a PIL image of mode 'L'; int label)."""
        index = item_index(index, type(self).__name__)
        img, target = self.data[index], int(self.targets[index])
        img = img.clone() if self.output == "tensor" else Image.fromarray(img.numpy(), mode="L")
        return self.transforms(img, target) if self.transforms is not None else (img, target)

    def __getitems__(self, indices: Sequence[int]) -> list:
        if self.transforms is not None or self.output == "pil":
            return [self[i] for i in indices]
        idx = torch.as_tensor(indices, device=self.targets.device)
        return list(zip(self.data[idx], self.targets[idx].tolist()))

    def extra_repr(self) -> str:
        held = " (seeded hold-out of a one-split source)" if self.split_origin == "held out" else ""
        return f"Split: {'Train' if self.train else 'Test'}{held}\nDataset: {self.dataset}\nOutput: {self.output}"
