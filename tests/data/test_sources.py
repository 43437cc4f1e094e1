"""Data sources: MNIST, any IDX pair, image folders and npz files through one resolver; their
splits, class names, conversions and bad input."""

import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from augment.config import SubsetSpec
from augment.data.idx import encode_idx
from augment.data.image_folder import ConversionWarning, _grayscale_uint8
from augment.data.real import RealMNIST
from augment.data.sources import (HOLDOUT_FRACTION, dataset_name, describe_source, detect_source_kind, load_labelled,
                                  source_kind)
from augment.errors import ConfigError, DataError
from tests.conftest import bar_digits, write_idx_dir

NAMES = ["ankle boot", "bag", "coat"]


def write_folder(root, per_class=7, size=(28, 28), mode="L", names=NAMES):
    """An image folder of toy bar digits, one folder per class name."""
    images, labels = bar_digits(per_class * 10, seed=4)
    for c, name in enumerate(names):
        (root / name).mkdir(parents=True, exist_ok=True)
        for k, image in enumerate(images[labels == c][:per_class]):
            img = Image.fromarray(image.numpy())
            if size != (28, 28):
                img = img.resize(size)
            img.convert(mode).save(root / name / f"{k:03d}.png")
    return root


def write_npz(path, n=60, names=None, test=False, **extra):
    images, labels = bar_digits(n, seed=5, num_classes=3)
    arrays = {"x": images.numpy(), "y": labels.numpy().astype(np.int64), **extra}
    if names is not None:
        arrays["class_names"] = np.array(names)
    if test:
        x_test, y_test = bar_digits(30, seed=6, num_classes=3)
        arrays.update(x_test=x_test.numpy(), y_test=y_test.numpy().astype(np.int64))
    np.savez(path, **arrays)
    return path


def test_an_image_folder_is_numbered_in_sorted_order_and_held_out_by_class(tmp_path):
    root = write_folder(tmp_path / "clothes")
    train, test = load_labelled(root, "train", "folder"), load_labelled(root, "test", "folder")
    assert train.class_names == test.class_names == sorted(NAMES)
    assert train.images.shape[1:] == (28, 28) and train.images.dtype == torch.uint8
    per_class_test = int(np.ceil(HOLDOUT_FRACTION * 7))
    assert torch.bincount(test.labels).tolist() == [per_class_test] * 3
    assert torch.bincount(train.labels).tolist() == [7 - per_class_test] * 3
    assert train.origin == test.origin == "held out"
    again = load_labelled(root, "test", "folder")  # seeded: the same hold-out every time
    assert torch.equal(again.images, test.images)
    together = torch.cat([train.images, test.images]).flatten(1)
    assert len({tuple(r.tolist()) for r in together}) == 21  # disjoint splits


def test_a_folder_with_train_and_test_keeps_its_own_split(tmp_path):
    write_folder(tmp_path / "d" / "train")
    write_folder(tmp_path / "d" / "test", per_class=2)
    assert len(load_labelled(tmp_path / "d", "test", "folder").labels) == 6
    assert load_labelled(tmp_path / "d", "train", "folder").origin == "own"
    write_folder(tmp_path / "e" / "train")
    write_folder(tmp_path / "e" / "test", names=["bag", "coat", "dress"])
    with pytest.raises(DataError, match="test/ has the classes"):
        load_labelled(tmp_path / "e", "test", "folder")


def test_colour_and_mixed_sizes_are_converted_and_said_so_once(tmp_path):
    root = write_folder(tmp_path / "rgb", mode="RGB")
    with pytest.warns(ConversionWarning, match="RGB images converted to grayscale") as caught:
        images = load_labelled(root, "train", "folder").images
    assert len(caught) == 1 and images.shape[1:] == (28, 28)
    write_folder(tmp_path / "mixed", names=["a", "b"])
    write_folder(tmp_path / "mixed", size=(40, 40), names=["c"])
    with pytest.warns(ConversionWarning, match="resized to 32x32"):
        assert load_labelled(tmp_path / "mixed", "train", "folder").images.shape[1:] == (32, 32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # grayscale of one size: no conversion, no warning
        load_labelled(write_folder(tmp_path / "plain"), "train", "folder")


def test_16_bit_grayscale_keeps_its_top_8_bits_and_wider_pixels_are_refused(tmp_path):
    root = write_folder(tmp_path / "d", names=["a", "b"])
    eight = load_labelled(root, "train", "folder").images
    for path in sorted(root.rglob("*.png")):  # the same images, 16-bit: x * 257 (so x = top 8 bits)
        Image.fromarray(np.asarray(Image.open(path)).astype(np.uint16) * 257).save(path)
    assert Image.open(next(root.rglob("*.png"))).mode == "I;16"
    with pytest.warns(ConversionWarning, match="I;16"):
        assert torch.equal(load_labelled(root, "train", "folder").images, eight)
    path = next(root.rglob("*.png"))  # a float TIFF under a .png name: PIL opens it by its content
    Image.fromarray(np.zeros((28, 28), np.float32)).save(path, format="TIFF")
    with pytest.raises(DataError, match=f"{path}: float pixels have no fixed range"):
        load_labelled(root, "train", "folder")
    with pytest.raises(DataError, match="pixels outside 0..65535"):
        _grayscale_uint8(Image.fromarray(np.full((4, 4), 70000, np.int32)), root / "x.png")


@pytest.mark.parametrize("breakage, match", [
    (lambda root: (root / "bag" / "notes.txt").write_text("hi"), "not an image file"),
    (lambda root: (root / "bag" / "broken.png").write_bytes(b"not a png"), "cannot read the image"),
    (lambda root: (root / "empty").mkdir(), "holds no image"),
    (lambda root: (root / "stray.png").write_bytes(b""), "one folder per class"),
])
def test_a_bad_image_folder_is_a_one_line_error(tmp_path, breakage, match):
    root = write_folder(tmp_path / "d")
    breakage(root)
    with pytest.raises(DataError, match=match):
        load_labelled(root, "train", "folder")


def test_one_class_or_no_folder_is_refused(tmp_path):
    with pytest.raises(DataError, match="at least 2 classes"):
        load_labelled(write_folder(tmp_path / "one", names=["only"]), "train", "folder")
    with pytest.raises(DataError, match="does not exist"):
        load_labelled(tmp_path / "missing", "train", "folder")
    with pytest.raises(ConfigError, match="needs a path"):
        load_labelled(None, "train", "npz")
    (tmp_path / ".hidden").mkdir()  # hidden files and folders are skipped
    write_folder(tmp_path / "h")
    (tmp_path / "h" / "bag" / ".DS_Store").write_bytes(b"\0")
    assert len(load_labelled(tmp_path / "h", "train", "folder").labels) == 18


def test_an_npz_with_class_names_and_its_own_test_split(tmp_path):
    path = write_npz(tmp_path / "d.npz", names=["cat", "dog", "owl"], test=True)
    train, test = load_labelled(path, "train", "npz"), load_labelled(path, "test", "npz")
    assert train.class_names == ["cat", "dog", "owl"] and len(train.labels) == 60 and len(test.labels) == 30
    plain = load_labelled(write_npz(tmp_path / "p.npz"), "test", "npz")  # no names, one split
    assert plain.class_names == ["0", "1", "2"] and plain.origin == "held out"


@pytest.mark.parametrize("arrays, match", [
    (dict(y=np.array([0, 1, 5] * 20)), "labels must be 0..C-1 with every class present"),
    (dict(y=np.array([0, 1, -1] * 20)), r"span \[-1, 1\]; they must lie in 0..1"),
    (dict(class_names=np.array(["a", "b"])), "lie in 0..1"),
    (dict(x=np.zeros((60, 28, 28), dtype=np.float32)), "uint8 images"),
    (dict(y=np.zeros(59, dtype=np.int64)), "60 images in x but 59 labels"),
    (dict(y=np.zeros(60, dtype=np.int64)), "at least 2 classes"),
    (dict(extra=np.zeros(3)), "unexpected arrays"),
    (dict(class_names=np.array([{"pickled": 1}], dtype=object)), "refused"),
])
def test_a_bad_npz_is_a_one_line_error(tmp_path, arrays, match):
    images, labels = bar_digits(60, seed=5, num_classes=3)
    content = {"x": images.numpy(), "y": labels.numpy().astype(np.int64), **arrays}
    np.savez(tmp_path / "bad.npz", **content)
    with pytest.raises(DataError, match=match):
        load_labelled(tmp_path / "bad.npz", "train", "npz")


def test_not_an_npz_file_is_refused(tmp_path):
    (tmp_path / "x.npz").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(DataError, match="not a readable npz file"):
        load_labelled(tmp_path / "x.npz", "train", "npz")


def test_an_idx_pair_without_a_test_split_is_held_out(tmp_path):
    root = write_idx_dir(tmp_path / "idx", n_train=70)
    for name in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        (root / name).unlink()
    test = load_labelled(root, "test", "idx")
    assert test.origin == "held out" and len(test.labels) == 10  # ceil(7 / 7) a class
    assert load_labelled(root, "train", "idx").class_names == [str(c) for c in range(10)]


def test_an_idx_directory_with_an_empty_train_split_names_classes_from_its_test_labels(tmp_path):
    root = write_idx_dir(tmp_path / "d", gz=False)
    (root / "train-images-idx3-ubyte").write_bytes(encode_idx(torch.zeros(0, 28, 28, dtype=torch.uint8)))
    (root / "train-labels-idx1-ubyte").write_bytes(encode_idx(torch.zeros(0, dtype=torch.uint8)))
    assert load_labelled(root, "test", "idx").class_names == [str(c) for c in range(10)]
    with pytest.raises(DataError, match="split 'train' is empty"):
        load_labelled(root, "train", "idx")


def test_real_mnist_and_describe_take_every_source(tmp_path):
    path = write_npz(tmp_path / "d.npz", names=["cat", "dog", "owl"])
    real = RealMNIST(path, dataset="npz", subset=SubsetSpec(n_per_class=3))
    assert real.classes == ["cat", "dog", "owl"] and real.class_to_idx["owl"] == 2 and len(real) == 9
    assert real.data.shape[1:] == (1, 32, 32) and "hold-out" in repr(real)
    info = describe_source(path, "npz")
    assert info["classes"] == ["cat", "dog", "owl"] and info["test_split"] == "held out"
    assert sum(info["examples"].values()) == 60


def test_dataset_names_are_checked():
    assert dataset_name("folder") == "folder"
    with pytest.raises(ConfigError, match="dataset must be one of"):
        dataset_name("csv")


def test_the_kind_of_a_source_is_recognised_from_its_path(tmp_path, monkeypatch):
    npz = write_npz(tmp_path / "digits.npz").rename(tmp_path / "DIGITS.NPZ")
    folder = write_folder(tmp_path / "clothes")
    split_folder = write_folder(tmp_path / "split" / "train")
    write_folder(tmp_path / "split" / "test")
    flat = write_idx_dir(tmp_path / "idx")
    write_idx_dir(tmp_path / "tv" / "MNIST" / "raw")
    kinds = {path: detect_source_kind(path) for path in (npz, folder, tmp_path / "split", flat, tmp_path / "tv")}
    assert list(kinds.values()) == ["npz", "folder", "folder", "idx", "idx"]
    assert split_folder.is_dir() and load_labelled(npz).class_names == ["0", "1", "2"]  # dataset None: recognised
    assert describe_source(folder)["dataset"] == "folder" and RealMNIST(flat, train=False).dataset == "idx"
    assert source_kind(flat, "npz") == "npz"  # a kind given wins
    monkeypatch.setenv("AUGMENT_DATA", str(tmp_path / "tv"))
    assert source_kind(None) == "idx" and len(load_labelled(None, "test").labels) == 40


def test_mnist_is_told_from_another_idx_set_by_its_label_files(tmp_path, shared_mnist):
    from augment.data.idx import find_idx_file

    root = tmp_path / "mnist"
    root.mkdir()
    for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                 "t10k-labels-idx1-ubyte"):
        (root / find_idx_file(shared_mnist, name).name).symlink_to(find_idx_file(shared_mnist, name))
    assert detect_source_kind(shared_mnist) == detect_source_kind(root) == "mnist"
    (root / find_idx_file(root, "t10k-labels-idx1-ubyte").name).unlink()  # not all four: any IDX pair
    assert detect_source_kind(root) == "idx"


@pytest.mark.parametrize("make, says", [
    (lambda d: d / "missing", "data source does not exist"),
    (lambda d: write_npz(d / "digits.npz").rename(d / "digits.zip"), "a data file is an .npz; other sources are"),
    (lambda d: write_idx_dir(d / "i") / "train-labels-idx1-ubyte", "IDX files are read by their directory: pass"),
    (lambda d: write_npz(d / "digits.npz").parent, "it holds digits.npz: pass that file"),
    (lambda d: write_folder(d / "f", names=["a", "b"]) / "a", "no IDX files train-images-idx3-ubyte[.gz]"),
])
def test_a_source_of_no_kind_names_the_option(tmp_path, make, says):
    path = make(tmp_path)
    with pytest.raises(DataError) as e:
        detect_source_kind(path)
    assert says in str(e.value) and "\n" not in str(e.value)
    assert str(e.value).endswith("pass --dataset mnist|idx|folder|npz") or "does not exist" in str(e.value)


def test_describe_reports_an_empty_idx_split_as_0_images(tmp_path):
    root = write_idx_dir(tmp_path / "d", gz=False)
    (root / "t10k-images-idx3-ubyte").write_bytes(encode_idx(torch.zeros(0, 28, 28, dtype=torch.uint8)))
    (root / "t10k-labels-idx1-ubyte").write_bytes(encode_idx(torch.zeros(0, dtype=torch.uint8)))
    info = describe_source(root, "idx")
    assert info["examples"] == {"train": 80, "test": 0} and info["classes"] == [str(c) for c in range(10)]
    with pytest.raises(DataError, match="split 'test' is empty"):
        load_labelled(root, "test", "idx")
