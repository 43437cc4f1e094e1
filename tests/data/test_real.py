"""RealMNIST: items, copies, checksums and bad arguments."""


import numpy as np
import pytest
import torch

from augment.data.mnist import load_split, verify_dir
from augment.config import SubsetSpec
from augment.data.real import RealMNIST
from augment.errors import ConfigError


def test_real_mnist_dataset(idx_dir):
    ds = RealMNIST(idx_dir, train=False, dataset="idx")
    assert len(ds) == 40 and ds.classes == [str(c) for c in range(10)]
    img, label = ds[3]
    assert img.shape == (1, 32, 32) and isinstance(label, int) and label == 3
    batch = ds.__getitems__([0, 5, 7])
    assert [lbl for _, lbl in batch] == [0, 5, 7]
    loader = torch.utils.data.DataLoader(ds, batch_size=8, shuffle=False)
    x, y = next(iter(loader))
    assert x.shape == (8, 1, 32, 32) and y.tolist() == list(range(8))
    sub = RealMNIST(idx_dir, train=True, subset=SubsetSpec(n_per_class=2), dataset="idx")
    assert len(sub) == 20
    assert "Split: Test" in repr(ds)


def test_real_mnist_items_are_copies_and_lists_are_not_indices(idx_dir):
    def negate_in_place(img):
        return img.neg_()

    ds = RealMNIST(idx_dir, train=False, dataset="idx", transform=negate_in_place)
    first, again = ds[0][0], ds[0][0]
    assert torch.equal(first, again)  # the transform did not change the stored image
    assert ds[np.int64(2)][1] == ds[torch.tensor(2)][1] == 2
    with pytest.raises(TypeError, match="indices must be integers"):
        ds[[1, 2]]


def test_pil_items_are_torchvision_mnists(idx_dir, monkeypatch):
    from PIL import Image
    from torchvision import transforms

    ds = RealMNIST(idx_dir, train=False, output="pil")
    image, label = ds[3]
    assert isinstance(image, Image.Image) and image.mode == "L" and image.size == (28, 28) and label == 3
    images, _ = load_split(idx_dir, "test", dataset="idx")
    assert np.array_equal(np.asarray(image), images[3].numpy()) and ds.value_range is None
    to_tensor = RealMNIST(idx_dir, train=False, output="pil", transform=transforms.ToTensor())
    x, y = next(iter(torch.utils.data.DataLoader(to_tensor, batch_size=4)))
    assert x.shape == (4, 1, 28, 28) and y.tolist() == [0, 1, 2, 3] and "Output: pil" in repr(to_tensor)
    with pytest.raises(ConfigError, match="output must be one of tensor, pil"):
        RealMNIST(idx_dir, output="PIL")
    monkeypatch.setattr("augment.data.real.resolve_device", lambda device: torch.device("cuda"))
    with pytest.raises(ConfigError, match="live on the CPU; device 'cuda' is for output='tensor'"):
        RealMNIST(idx_dir, output="pil", device="cuda")


def test_real_mnist_checksums(shared_mnist):
    assert verify_dir(shared_mnist) == {"train": 60000, "test": 10000}
    _, labels = load_split(shared_mnist, "test")
    assert torch.bincount(labels).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


@pytest.mark.parametrize("n", [0, -1, 1.5, "5", True])
def test_a_subset_size_that_is_not_a_positive_integer_is_refused(idx_dir, n):
    with pytest.raises(ConfigError, match="n_per_class"):
        RealMNIST(idx_dir, dataset="idx", subset=SubsetSpec(n_per_class=n))


def test_real_mnist_takes_one_subset_spec(idx_dir):
    long_tailed = RealMNIST(idx_dir, subset=SubsetSpec(class_counts=tuple(range(8, 0, -1)) + (1, 1)), seed=3,
                            dataset="idx")
    assert torch.bincount(long_tailed.targets).tolist() == [8, 7, 6, 5, 4, 3, 2, 1, 1, 1]
    assert len(RealMNIST(idx_dir, dataset="idx", subset=None)) == 80
    with pytest.raises(ConfigError, match="subset must be a SubsetSpec"):
        RealMNIST(idx_dir, dataset="idx", subset=5)


def test_real_mnist_refuses_devices_it_cannot_run_on(idx_dir):
    with pytest.raises(ConfigError, match="device must be"):
        RealMNIST(idx_dir, dataset="idx", device="gpu")
