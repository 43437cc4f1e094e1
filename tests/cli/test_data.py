"""``augment data verify``: the same report for every kind of source, and hostile sources as one
``Error:`` line and exit 1 (issue 35), nothing written."""

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from augment.cli import main
from augment.data.idx import encode_idx
from tests.conftest import bar_digits, write_idx_dir


def verify(*args):
    return CliRunner().invoke(main, ["data", "verify", *[str(a) for a in args]])


def test_verify_reports_classes_and_size_for_idx_as_for_npz(tmp_path):
    result = verify(write_idx_dir(tmp_path / "d"), "--dataset", "idx", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["examples"] == {"train": 80, "test": 40} and report["test_split"] == "own"
    assert report["classes"] == [str(c) for c in range(10)] and report["image_size"] == [28, 28]
    images, labels = bar_digits(30, num_classes=3)
    np.savez(tmp_path / "d.npz", x=images.numpy(), y=labels.numpy())
    assert set(json.loads(verify(tmp_path / "d.npz", "--dataset", "npz", "--json").output)) == set(report)


@pytest.mark.parametrize("make, kind", [(lambda d: write_idx_dir(d / "idx"), "idx"),
                                        (lambda d: _npz(d / "d.npz"), "npz")])
def test_the_kind_is_recognised_from_the_path_and_dataset_wins(tmp_path, make, kind):
    path = make(tmp_path)
    result = verify(path, "--json")
    assert result.exit_code == 0 and json.loads(result.output)["dataset"] == kind, result.output
    result = verify(path, "--dataset", "folder")  # read as the kind given, so refused
    assert result.exit_code == 1 and result.output.startswith("Error: ") and "folder" in result.output


def _npz(path):
    images, labels = bar_digits(30, num_classes=3)
    np.savez(path, x=images.numpy(), y=labels.numpy())
    return path


def _labels_0_and_a_billion(tmp_path):
    np.savez(tmp_path / "bad.npz", x=np.zeros((20, 28, 28), np.uint8), y=np.array([0, 10**9] * 10))
    return tmp_path / "bad.npz", "npz", "class 1 has no image"


def _width_0(tmp_path):
    root = write_idx_dir(tmp_path / "bad", gz=False)
    (root / "train-images-idx3-ubyte").write_bytes(encode_idx(torch.zeros(80, 28, 0, dtype=torch.uint8)))
    return root, "idx", "width and height of at least 1"


def _text_named_npz(tmp_path):
    (tmp_path / "bad.npz").write_text("not an array\n")
    return tmp_path / "bad.npz", "npz", "not an npz file"


def _stray_idx_label(tmp_path):
    root = write_idx_dir(tmp_path / "bad", gz=False)
    labels = bar_digits(80)[1]
    labels[0] = 255
    (root / "train-labels-idx1-ubyte").write_bytes(encode_idx(labels))
    return root, "idx", "class 10 has no image"


@pytest.mark.parametrize("make", [_labels_0_and_a_billion, _width_0, _text_named_npz, _stray_idx_label])
def test_a_hostile_source_is_one_error_line(tmp_path, make):
    path, dataset, words = make(tmp_path)
    before = sorted(tmp_path.rglob("*"))
    result = verify(path, "--dataset", dataset)
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    assert result.output.startswith("Error: ") and result.output.count("\n") == 1 and words in result.output
    assert sorted(tmp_path.rglob("*")) == before
