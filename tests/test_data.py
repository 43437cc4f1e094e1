import gzip

import numpy as np
import pytest
import torch

from augment.data.idx import encode_idx, parse_idx, read_idx
from augment.data.mnist import load_split, resolve_data_dir, verify_dir
from augment.data.real import RealMNIST
from augment.data.subsets import per_class_subset
from augment.errors import ConfigError, DataError
from augment.images import to_model_images, to_uint8_images

from .conftest import bar_digits


def test_idx_round_trip_raw_and_gzip(tmp_path):
    images, _ = bar_digits(7)
    raw = encode_idx(images)
    (tmp_path / "a").write_bytes(raw)
    (tmp_path / "b.gz").write_bytes(gzip.compress(raw))
    assert torch.equal(read_idx(tmp_path / "a"), images)
    assert torch.equal(read_idx(tmp_path / "b.gz"), images)


@pytest.mark.parametrize("mutate, message", [
    (lambda b: b[:-5], "truncated"),
    (lambda b: b + b"\0", "trailing"),
    (lambda b: b"\x01" + b[1:], "magic"),
    (lambda b: b[:1] + b"\x01" + b[2:], "magic"),  # both zero bytes of the magic are checked
    (lambda b: b[:2] + b"\x0d" + b[3:], "element type"),
    (lambda b: b[:6], "truncated IDX header"),
    (lambda b: b[:2], "not an IDX"),
])
def test_malformed_idx_is_refused(mutate, message):
    raw = encode_idx(bar_digits(3)[0])
    with pytest.raises(DataError, match=message):
        parse_idx(mutate(raw))


def test_corrupt_gzip_is_refused(tmp_path):
    blob = gzip.compress(encode_idx(bar_digits(30)[0]))
    (tmp_path / "x.gz").write_bytes(blob[: len(blob) // 2])
    with pytest.raises(DataError, match="corrupt gzip"):
        read_idx(tmp_path / "x.gz")


def test_load_split_validates_counts(idx_dir):
    images, labels = load_split(idx_dir, "train", mnist=False)
    assert images.shape == (80, 28, 28) and labels.dtype == torch.int64
    (idx_dir / "train-labels-idx1-ubyte").write_bytes(encode_idx(torch.zeros(79, dtype=torch.uint8)))
    with pytest.raises(DataError, match="80 images but 79 labels"):
        load_split(idx_dir, "train", mnist=False)


def test_missing_file_and_directory(tmp_path, idx_dir):
    with pytest.raises(DataError, match="does not exist"):
        resolve_data_dir(tmp_path / "nope")
    (idx_dir / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(DataError, match="missing t10k-labels"):
        load_split(idx_dir, "test", mnist=False)


def test_mnist_checksum_catches_non_mnist(idx_dir):
    with pytest.raises(DataError, match="SHA-256"):
        load_split(idx_dir, "train", mnist=True)


def test_data_dir_resolution(tmp_path, monkeypatch):
    from .conftest import write_idx_dir

    tv_root = tmp_path / "root"
    write_idx_dir(tv_root / "MNIST" / "raw")
    assert resolve_data_dir(tv_root) == tv_root / "MNIST" / "raw"
    monkeypatch.setenv("AUGMENT_DATA", str(tv_root))
    assert resolve_data_dir() == tv_root / "MNIST" / "raw"
    monkeypatch.setenv("AUGMENT_DATA", str(tmp_path / "empty"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="augment data fetch"):
        resolve_data_dir()


def test_model_images_range_shape_and_inverse():
    images, _ = bar_digits(5)
    x = to_model_images(images)
    assert x.shape == (5, 1, 32, 32) and x.dtype == torch.float32
    assert x.min() >= -1 and x.max() <= 1
    flat = torch.full((1, 28, 28), 255, dtype=torch.uint8)
    assert torch.all(to_model_images(flat) == 1.0)
    assert torch.equal(to_uint8_images(to_model_images(images, size=28)), images.unsqueeze(1))


def test_per_class_subset_is_seeded_and_balanced():
    labels = torch.arange(100) % 10
    a, b = per_class_subset(labels, 3, seed=1), per_class_subset(labels, 3, seed=1)
    assert torch.equal(a, b)
    assert torch.equal(torch.bincount(labels[a]), torch.full((10,), 3))
    assert torch.equal(a, a.sort().values)  # sorted, as documented: the subset keeps the file's order
    assert not torch.equal(a, per_class_subset(labels, 3, seed=2))
    with pytest.raises(DataError, match="fewer than"):
        per_class_subset(labels, 11)


def test_real_mnist_dataset(idx_dir):
    ds = RealMNIST(idx_dir, train=False, mnist=False)
    assert len(ds) == 40 and ds.classes == [str(c) for c in range(10)]
    img, label = ds[3]
    assert img.shape == (1, 32, 32) and isinstance(label, int) and label == 3
    batch = ds.__getitems__([0, 5, 7])
    assert [lbl for _, lbl in batch] == [0, 5, 7]
    loader = torch.utils.data.DataLoader(ds, batch_size=8, shuffle=False)
    x, y = next(iter(loader))
    assert x.shape == (8, 1, 32, 32) and y.tolist() == list(range(8))
    sub = RealMNIST(idx_dir, train=True, mnist=False, n_per_class=2)
    assert len(sub) == 20
    assert "Split: Test" in repr(ds)


def test_real_mnist_items_are_copies_and_lists_are_not_indices(idx_dir):
    def negate_in_place(img):
        return img.neg_()

    ds = RealMNIST(idx_dir, train=False, mnist=False, transform=negate_in_place)
    first, again = ds[0][0], ds[0][0]
    assert torch.equal(first, again)  # the transform did not change the stored image
    assert ds[np.int64(2)][1] == ds[torch.tensor(2)][1] == 2
    with pytest.raises(TypeError, match="indices must be integers"):
        ds[[1, 2]]


def test_verify_dir_reports_counts(idx_dir):
    assert verify_dir(idx_dir, mnist=False) == {"train": 80, "test": 40}


def test_real_mnist_checksums(shared_mnist):
    assert verify_dir(shared_mnist) == {"train": 60000, "test": 10000}
    _, labels = load_split(shared_mnist, "test")
    assert torch.bincount(labels).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


@pytest.mark.parametrize("n, match", [(0, "positive integer"), (-1, "positive integer"), (1.5, "positive integer"),
                                      ("5", "positive integer"), (True, "positive integer")])
def test_real_mnist_refuses_a_subset_size_that_is_not_a_positive_integer(idx_dir, n, match):
    with pytest.raises(ConfigError, match=match):
        RealMNIST(idx_dir, mnist=False, n_per_class=n)


def test_real_mnist_refuses_devices_it_cannot_run_on(idx_dir):
    with pytest.raises(ConfigError, match="device must be"):
        RealMNIST(idx_dir, mnist=False, device="gpu")


def test_model_images_are_torchvision_resize_scaled_to_minus_one_one():
    """Checked against torchvision's Resize (bilinear, antialias, half-pixel centres), not
    against the code under test; the texture makes a corner convention show."""
    import torchvision.transforms.functional as TF

    images, _ = bar_digits(20, 3)
    images[:, ::3, ::2] = 200
    expected = TF.resize(images.unsqueeze(1).float(), [32, 32], antialias=True) / 127.5 - 1
    torch.testing.assert_close(to_model_images(images), expected, rtol=0, atol=1e-5)
