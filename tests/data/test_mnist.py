"""MNIST's files: loading a split, checksums, where the data directory is, verifying it."""


import pytest
import torch

from augment.data.idx import encode_idx
from augment.data.mnist import load_split, resolve_data_dir, verify_dir
from augment.errors import DataError
from tests.conftest import write_idx_dir


def test_load_split_validates_counts(idx_dir):
    images, labels = load_split(idx_dir, "train", dataset="idx")
    assert images.shape == (80, 28, 28) and labels.dtype == torch.int64
    (idx_dir / "train-labels-idx1-ubyte").write_bytes(encode_idx(torch.zeros(79, dtype=torch.uint8)))
    with pytest.raises(DataError, match="80 images but 79 labels"):
        load_split(idx_dir, "train", dataset="idx")


def test_missing_file_and_directory(tmp_path, idx_dir):
    with pytest.raises(DataError, match="does not exist"):
        resolve_data_dir(tmp_path / "nope")
    (tmp_path / "d.npz").write_bytes(b"")
    with pytest.raises(DataError, match="is not a directory: .*d.npz; for another kind of data, leave out --dataset"):
        resolve_data_dir(tmp_path / "d.npz")
    with pytest.raises(DataError, match="no IDX files .* leave out --dataset to have it recognised$"):
        resolve_data_dir(tmp_path)
    (idx_dir / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(DataError, match="missing t10k-labels"):
        load_split(idx_dir, "test", dataset="idx")


def test_mnist_checksum_catches_non_mnist(idx_dir):
    with pytest.raises(DataError, match="SHA-256"):
        load_split(idx_dir, "train", dataset="mnist")


def test_data_dir_resolution(tmp_path, monkeypatch):
    tv_root = tmp_path / "root"
    write_idx_dir(tv_root / "MNIST" / "raw")
    assert resolve_data_dir(tv_root) == tv_root / "MNIST" / "raw"
    monkeypatch.setenv("AUGMENT_DATA", str(tv_root))
    assert resolve_data_dir() == tv_root / "MNIST" / "raw"
    monkeypatch.setenv("AUGMENT_DATA", str(tmp_path / "empty"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="augment data fetch"):
        resolve_data_dir()


def test_real_mnist_is_located_in_the_env_then_the_fetch_cache_then_the_places_given(tmp_path, monkeypatch,
                                                                                     shared_mnist):
    from augment.data.mnist import fetch_cache_dir, locate_mnist

    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("AUGMENT_DATA", str(write_idx_dir(tmp_path / "other")))  # IDX files, not MNIST's
    assert fetch_cache_dir() == tmp_path / "home" / ".cache" / "augment" / "mnist"
    assert locate_mnist() is None and locate_mnist(tmp_path / "nowhere", shared_mnist) == shared_mnist
    fetch_cache_dir().parent.mkdir(parents=True)
    fetch_cache_dir().symlink_to(shared_mnist)
    assert locate_mnist(tmp_path / "nowhere") == fetch_cache_dir()
    monkeypatch.setenv("AUGMENT_DATA", str(tmp_path / "tv"))
    (tmp_path / "tv" / "MNIST").mkdir(parents=True)
    (tmp_path / "tv" / "MNIST" / "raw").symlink_to(shared_mnist)
    assert locate_mnist() == tmp_path / "tv" / "MNIST" / "raw"


def test_verify_dir_reports_counts(idx_dir):
    assert verify_dir(idx_dir, dataset="idx") == {"train": 80, "test": 40}
