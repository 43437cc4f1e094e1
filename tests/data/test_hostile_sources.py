"""Hostile data sources (issue 35), one test per class of failure: memory bounded by the budget
(asserted by the refusal, before anything is inflated or decoded), no hang, one-line errors
instead of tracebacks, no silent wrong result, and messages that say what is wrong.

Each case is a tiny file made in a temp dir; add new cases beside those of their class.
"""

import io
import os
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

from augment.data.idx import encode_idx
from augment.data.limits import DEFAULT_MAX_PIXELS, MAX_PIXELS_ENV, max_pixels
from augment.data.sources import READERS, describe_source, load_labelled
from augment.config import DATASETS
from augment.errors import ConfigError, DataError
from tests.conftest import bar_digits, write_idx_dir


def npz_with(path, **arrays):
    """An npz of 30 toy 3-class digits, with ``arrays`` added or replaced."""
    images, labels = bar_digits(30, seed=5, num_classes=3)
    np.savez(path, **{"x": images.numpy(), "y": labels.numpy().astype(np.int64), **arrays})
    return path


def npy_header_only(shape, dtype="<u1") -> bytes:
    """The bytes of an .npy file whose header declares ``shape`` but that holds no data."""
    out = io.BytesIO()
    np.lib.format.write_array_header_1_0(out, {"descr": dtype, "fortran_order": False, "shape": shape})
    return out.getvalue()


def folder_of(root, sizes, names=("a", "b")):
    """An image folder: one PNG of each (W, H) in ``sizes`` in each class folder."""
    for name in names:
        (root / name).mkdir(parents=True, exist_ok=True)
        for k, size in enumerate(sizes):
            Image.new("L", size).save(root / name / f"{k}.png")
    return root


# ------------------------------------------------------------- one budget, checked from headers


def test_the_budget_is_one_number_a_user_can_raise(monkeypatch):
    monkeypatch.delenv(MAX_PIXELS_ENV, raising=False)
    assert max_pixels() == DEFAULT_MAX_PIXELS == 1 << 31
    monkeypatch.setenv(MAX_PIXELS_ENV, "4_000_000_000")
    assert max_pixels() == 4_000_000_000
    for bad in ("-1", "0", "lots", "1e9"):
        monkeypatch.setenv(MAX_PIXELS_ENV, bad)
        with pytest.raises(ConfigError, match="AUGMENT_MAX_PIXELS must be a positive integer"):
            max_pixels()


def test_labels_0_and_a_billion_are_refused_without_a_structure_of_that_size(tmp_path):
    """Formerly: a set of range(10^9 + 1) was built (22 GB). The distinct labels are counted."""
    path = npz_with(tmp_path / "d.npz", y=np.array([0, 10**9] * 15, dtype=np.int64))
    with pytest.raises(DataError, match=r"class 1 has no image \(labels span \[0, 1000000000\], 2 distinct\)"):
        describe_source(path, "npz")


def test_an_npz_member_declaring_more_than_the_budget_is_refused_before_it_is_inflated(tmp_path, monkeypatch):
    with zipfile.ZipFile(tmp_path / "huge.npz", "w") as zf:  # x.npy declares 200000 x 1024 x 1024: 210 GB
        zf.writestr("x.npy", npy_header_only((200000, 1024, 1024)))
        zf.writestr("y.npy", npy_header_only((200000,), "<i8"))
    with pytest.raises(DataError, match=r"x: declares 209,715,200,000 bytes, more than the 2,147,483,648"):
        load_labelled(tmp_path / "huge.npz", "train", "npz")
    path = npz_with(tmp_path / "d.npz")  # a real one, 30 x 28 x 28 = 23,520 pixels, under a lowered budget
    monkeypatch.setenv(MAX_PIXELS_ENV, "20000")
    with pytest.raises(DataError, match="23,520 bytes, more than the 20,000.*raise AUGMENT_MAX_PIXELS"):
        load_labelled(path, "train", "npz")
    monkeypatch.setenv(MAX_PIXELS_ENV, "40000")  # 30 images count as 30 x 32 x 32 = 30,720 pixels
    assert len(load_labelled(path, "train", "npz").labels) == 24  # raised: read (10 a class, 2 held out)


def test_labels_and_class_names_are_held_to_the_budget_too(tmp_path):
    with zipfile.ZipFile(tmp_path / "labels.npz", "w") as zf:
        zf.writestr("x.npy", npy_header_only((1 << 29, 1, 1)))  # 0.5 GB, within the budget
        zf.writestr("y.npy", npy_header_only((1 << 29,), "<i8"))  # 4 GB
    with pytest.raises(DataError, match="y: declares 4,294,967,296 bytes"):
        load_labelled(tmp_path / "labels.npz", "train", "npz")
    npz_with(tmp_path / "names.npz")
    with zipfile.ZipFile(tmp_path / "names.npz", "a") as zf:  # class names declaring 16 GB
        zf.writestr("class_names.npy", npy_header_only((1 << 20,), "<U4096"))
    with pytest.raises(DataError, match="class_names: declares"):
        load_labelled(tmp_path / "names.npz", "train", "npz")


def test_many_tiny_images_count_as_the_models_32x32(tmp_path, monkeypatch):
    """1x1 images count as the models' 32x32 (the copy each gets when it enters a model)."""
    npz_with(tmp_path / "d.npz", x=np.zeros((30, 1, 1), np.uint8), y=(np.arange(30) % 3).astype(np.uint8))
    monkeypatch.setenv(MAX_PIXELS_ENV, "30000")
    with pytest.raises(DataError, match=r"30,720 pixels in all \(each at least 32x32\), more than the 30,000"):
        load_labelled(tmp_path / "d.npz", "train", "npz")
    monkeypatch.setenv(MAX_PIXELS_ENV, "40000")
    assert load_labelled(tmp_path / "d.npz", "train", "npz").images.shape[1:] == (1, 1)


def test_an_image_folder_is_held_to_the_budget_from_the_image_headers(tmp_path, monkeypatch):
    """Formerly: 40 PNGs each declaring 9,000 x 9,000 pixels were decoded (9.6 GB). Their sizes
    are summed from the headers and refused before any is decoded."""
    root = folder_of(tmp_path / "f", [(60, 50)] * 2)  # 2 classes x 2 images x 3,000 pixels (over 32 x 32)
    monkeypatch.setenv(MAX_PIXELS_ENV, "11999")
    decoded = []
    monkeypatch.setattr("augment.data.image_folder._grayscale_uint8", lambda img, path: decoded.append(path))
    with pytest.raises(DataError, match="12,000 pixels in all .*, more than the 11,999"):
        load_labelled(root, "train", "folder")
    assert decoded == []


def test_an_idx_file_is_held_to_the_budget_by_its_header(tmp_path, monkeypatch):
    root = write_idx_dir(tmp_path / "d", gz=False)  # train images: 80 x 28 x 28 + a 16-byte header
    monkeypatch.setenv(MAX_PIXELS_ENV, "60000")
    with pytest.raises(DataError, match="62,736 bytes, more than the 60,000"):
        load_labelled(root, "train", "idx")


# ----------------------------------------------------------------------------------- no hang


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_only_regular_files_are_opened(tmp_path):
    """A FIFO named f.png in a class folder: refused at once, not a blocking open."""
    root = folder_of(tmp_path / "f", [(28, 28)] * 2)
    os.mkfifo(root / "a" / "f.png")
    with pytest.raises(DataError, match="f.png: not a regular file"):
        load_labelled(root, "train", "folder")
    os.mkfifo(tmp_path / "fifo.npz")
    with pytest.raises(DataError, match="npz file is not a file"):
        load_labelled(tmp_path / "fifo.npz", "train", "npz")


# --------------------------------------------------------------- one line, not a traceback


def test_a_decompression_bomb_is_a_one_line_error(tmp_path, monkeypatch):
    root = folder_of(tmp_path / "f", [(28, 28)] * 2)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # 784 pixels > 2 x 100: Pillow's DecompressionBombError
    with pytest.raises(DataError, match="refused by Pillow as a decompression bomb"):
        load_labelled(root, "train", "folder")


def test_a_plain_npy_named_npz_is_a_one_line_error(tmp_path):
    np.save(tmp_path / "x.npy", np.zeros((3, 28, 28), np.uint8))
    os.rename(tmp_path / "x.npy", tmp_path / "x.npz")
    with pytest.raises(DataError, match=r"a single \.npy array, not an \.npz archive"):
        load_labelled(tmp_path / "x.npz", "train", "npz")


@pytest.mark.parametrize("make", [
    lambda p: npz_with(p / "d.npz", x=np.zeros((30, 28, 0), np.uint8)),
    lambda p: npz_with(p / "d.npz", x=np.zeros((30, 0, 28), np.uint8)),
])
def test_images_of_width_or_height_0_are_refused_by_npz(tmp_path, make):
    with pytest.raises(DataError, match="needs a width and height of at least 1"):
        describe_source(make(tmp_path), "npz")


def test_images_of_width_0_are_refused_by_idx(tmp_path):
    root = write_idx_dir(tmp_path / "d")
    (root / "train-images-idx3-ubyte.gz").unlink()
    (root / "train-images-idx3-ubyte").write_bytes(encode_idx(torch.zeros(80, 28, 0, dtype=torch.uint8)))
    with pytest.raises(DataError, match="images of 28x0 pixels"):
        describe_source(root, "idx")


# ----------------------------------------------------------------------- no silent wrong result


def test_one_stray_idx_label_does_not_make_a_256_class_set(tmp_path):
    root = write_idx_dir(tmp_path / "d", gz=False)
    labels = bar_digits(80, 0)[1]
    labels[17] = 255
    (root / "train-labels-idx1-ubyte").write_bytes(encode_idx(labels))
    with pytest.raises(DataError, match="class 10 has no image"):
        load_labelled(root, "train", "idx")


def test_idx_test_labels_must_lie_within_the_training_classes(tmp_path):
    root = write_idx_dir(tmp_path / "d", gz=False)
    labels = bar_digits(40, 1)[1]
    labels[3] = 12
    (root / "t10k-labels-idx1-ubyte").write_bytes(encode_idx(labels))
    assert load_labelled(root, "train", "idx").num_classes == 10
    with pytest.raises(DataError, match=r"test labels span \[0, 12\]; they must lie in 0..9"):
        load_labelled(root, "test", "idx")


def test_the_test_split_of_an_npz_is_refused_when_its_train_split_lacks_a_class(tmp_path):
    x_test, y_test = bar_digits(9, seed=6, num_classes=3)
    path = npz_with(tmp_path / "d.npz", y=np.array([0, 1] * 15), class_names=np.array(["a", "b", "c"]),
                    x_test=x_test.numpy(), y_test=y_test.numpy())
    with pytest.raises(DataError, match="class 2 has no image"):
        load_labelled(path, "test", "npz")


def test_npz_class_names_stored_as_bytes_are_decoded_or_refused(tmp_path):
    path = npz_with(tmp_path / "d.npz", class_names=np.array([b"cat0", b"dog1", b"owl2"]))
    assert load_labelled(path, "train", "npz").class_names == ["cat0", "dog1", "owl2"]
    npz_with(path, class_names=np.array([b"cat0", b"\xff\xfe", b"owl2"]))
    with pytest.raises(DataError, match="not UTF-8 text"):
        load_labelled(path, "train", "npz")


@pytest.mark.parametrize("names, match", [
    (["cat", "dog\nowl", "eel"], "refused"), (["cat", "x" * 5000, "eel"], "refused"), (["cat", "", "eel"], "refused"),
    (["cat", "cat", "eel"], "distinct"),
])
def test_class_names_are_printable_short_and_distinct(tmp_path, names, match):
    with pytest.raises(DataError, match=match):
        load_labelled(npz_with(tmp_path / "d.npz", class_names=np.array(names)), "train", "npz")


# ------------------------------------------------------------------- messages that say what is wrong


def test_a_text_file_named_npz_is_called_what_it_is(tmp_path):
    (tmp_path / "notes.npz").write_text("x,y\n1,2\n")
    with pytest.raises(DataError, match="not an npz file") as caught:
        load_labelled(tmp_path / "notes.npz", "train", "npz")
    assert "pickle" not in str(caught.value)


def test_verify_reports_classes_and_image_size_for_idx(tmp_path):
    info = describe_source(write_idx_dir(tmp_path / "d"), "idx")
    assert info["examples"] == {"train": 80, "test": 40} and info["test_split"] == "own"
    assert info["classes"] == [str(c) for c in range(10)] and info["image_size"] == [28, 28]


def test_each_kind_of_source_is_one_reader():
    assert sorted(READERS) == sorted(DATASETS)
    assert all(READERS[kind].kind == kind for kind in DATASETS)
