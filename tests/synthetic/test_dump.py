"""`augment dump`: IDX / PNG / npz round trips, byte-identical repeats, atomicity, errors."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from click.testing import CliRunner
from PIL import Image

import augment.cli as cli
from augment.checkpoint import save_generator
from augment.config import ModelConfig
from augment.data.mnist import verify_dir
from augment.data.sources import describe_source
from augment.errors import AugmentError, CheckpointError, ConfigError
from augment.fileio import sha256_file
from augment.gan.models import Generator
from augment.images import to_mnist_uint8
from augment.provenance import DataSignature
from augment.synthetic import dump as D
from augment.synthetic.dataset import SamplingOptions, SyntheticMNIST

TINY = ModelConfig(z_dim=8, embed_dim=4, g_width=8, d_width=8)


@pytest.fixture(scope="module")
def generator_path(tmp_path_factory) -> Path:
    with torch.random.fork_rng():
        torch.manual_seed(0)
        g = Generator(TINY)
    path = tmp_path_factory.mktemp("gen") / "g.safetensors"
    save_generator(path, g)
    return path


def tree(root: Path) -> dict:
    """{relative path: bytes} of every file under root."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def manifest_of(root: Path) -> dict:
    return json.loads((root / "manifest.json").read_text())


def leftovers(parent: Path) -> list:
    return [p.name for p in parent.iterdir() if p.name.startswith(".")]


def test_round_trip_through_torchvision_readers(tmp_path, generator_path):
    out = tmp_path / "out"
    manifest = D.dump_synthetic(out, generator_path, 45, ["idx", "png", "npz"], seed=5, batch_size=16, test_samples=0)
    ds = SyntheticMNIST(generator_path, num_samples=45, seed=5)
    expected = to_mnist_uint8(ds.generate(range(45))[0])
    mnist = torchvision.datasets.MNIST(out, train=True, download=False)
    assert torch.equal(mnist.data, expected) and torch.equal(mnist.targets, ds.targets)
    assert mnist[7][1] == 7 and mnist[7][0].size == (28, 28)
    assert verify_dir(out, dataset="idx") == {"train": 45, "test": 0}  # `augment data verify --any-idx`
    folder = torchvision.datasets.ImageFolder(out / "png" / "train")
    assert len(folder) == 45 and folder.class_to_idx == {str(c): c for c in range(10)}
    for path, label in folder.samples[::7]:
        index = int(Path(path).stem)
        assert label == int(ds.targets[index])
        assert np.array_equal(np.array(folder.loader(path).convert("L")), expected[index].numpy())
    with np.load(out / "train.npz") as npz:
        assert npz["x"].dtype == np.uint8 and npz["y"].dtype == np.int64
        assert np.array_equal(npz["x"], expected.numpy()) and np.array_equal(npz["y"], ds.targets.numpy())
    on_disk = json.loads((out / "manifest.json").read_text())
    assert on_disk == manifest
    assert manifest["seed"] == 5 and manifest["num_samples"] == 45 and manifest["split"] == "train"
    assert manifest["counts_per_class"] == {str(c): 5 if c < 5 else 4 for c in range(10)}
    assert manifest["generator"]["model_config"]["z_dim"] == 8
    assert manifest["generator"]["file_sha256"] == sha256_file(generator_path)
    assert manifest["formats"] == ["idx", "png", "npz"] and manifest["library_version"]
    for name, info in manifest["files"].items():
        if "sha256" in info:
            assert sha256_file(out / name) == info["sha256"]
    assert leftovers(tmp_path) == []


def test_a_dump_is_at_the_size_the_generator_was_trained_at(tmp_path):
    """A generator of 8x8 digits dumps 8x8 images in every format, as its PIL items, and data
    verify reads the dump back at 8x8; image_size overrides (height, width) and a file that does
    not say its size dumps 28x28, as MNIST."""
    with torch.random.fork_rng():
        torch.manual_seed(0)
        g = Generator(TINY)
    small = tmp_path / "small.safetensors"
    save_generator(small, g, DataSignature("npz", tuple(str(c) for c in range(10)), (8, 8)).metadata())
    out = tmp_path / "d8"
    manifest = D.dump_synthetic(out, small, 20, ["idx", "png", "npz"], seed=2, test_samples=5, batch_size=6)
    pil = SyntheticMNIST(small, num_samples=25, seed=2, output="pil")
    expected = np.stack([np.asarray(pil[i][0]) for i in range(25)])
    assert torch.equal(torchvision.datasets.MNIST(out, train=True).data, torch.from_numpy(expected[:20]))
    with np.load(out / "test.npz") as npz:
        assert np.array_equal(npz["x"], expected[20:])
    assert Image.open(next((out / "png" / "train" / "0").iterdir())).size == (8, 8)
    assert manifest["image"]["height"] == manifest["image"]["width"] == 8 and "32->8 " in manifest["image"]["resize"]
    assert describe_source(out, "idx")["image_size"] == [8, 8]
    assert describe_source(out / "train.npz", "npz")["image_size"] == [8, 8]
    wide = D.dump_synthetic(tmp_path / "wide", small, 3, ["npz"], image_size=(6, 10), test_samples=0)
    assert wide["image"]["height"] == 6 and wide["image"]["width"] == 10 and "32->6x10 " in wide["image"]["resize"]
    with np.load(tmp_path / "wide" / "train.npz") as npz:
        assert npz["x"].shape == (3, 6, 10)
    legacy = D.dump_synthetic(tmp_path / "old", Generator(TINY), 3, ["npz"], test_samples=0)
    assert (legacy["image"]["height"], legacy["image"]["resize"].split()[0]) == (28, "32->28")  # as before
    with pytest.raises(ConfigError, match="image_size must be a side or"):
        D.dump_synthetic(tmp_path / "bad", small, 3, image_size=(8, 5000))
    assert not (tmp_path / "bad").exists()


def test_test_split_and_class_subset(tmp_path, generator_path):
    out = tmp_path / "t"
    D.dump_synthetic(out, generator_path, np.int64(12), ["idx", "png"], split="test", classes=[3, 7])
    mnist = torchvision.datasets.MNIST(out, train=False, download=False)
    assert mnist.targets.tolist() == [3, 7] * 6
    assert sorted(p.name for p in (out / "png" / "test").iterdir()) == ["3", "7"]
    assert (out / "MNIST" / "raw" / "train-images-idx3-ubyte").read_bytes()[4:8] == bytes(4)  # 0 items
    assert manifest_of(out)["png_class_folders"].startswith("png/<split>/<class id>/")  # ImageFolder: 3->0, 7->1


def test_train_and_test_splits_in_one_dump(tmp_path, generator_path):
    out = tmp_path / "both"
    manifest = D.dump_synthetic(out, generator_path, 20, ["idx", "png", "npz"], seed=4, test_samples=7,
                                batch_size=6)
    ds = SyntheticMNIST(generator_path, num_samples=27, seed=4)
    expected = to_mnist_uint8(ds.generate(range(27))[0])
    train = torchvision.datasets.MNIST(out, train=True, download=False)
    test = torchvision.datasets.MNIST(out, train=False, download=False)
    assert torch.equal(train.data, expected[:20]) and torch.equal(train.targets, ds.targets[:20])
    assert torch.equal(test.data, expected[20:]) and torch.equal(test.targets, ds.targets[20:])
    assert len(torchvision.datasets.ImageFolder(out / "png" / "test")) == 7
    with np.load(out / "test.npz") as npz:
        assert np.array_equal(npz["x"], expected[20:].numpy())
    assert manifest["num_samples"] == 20 and manifest["counts_per_class"] == {str(c): 2 for c in range(10)}
    assert manifest["splits"]["test"] == {"first_item": 20, "num_samples": 7,
                                          "counts_per_class": {str(c): 1 for c in range(7)}}
    with pytest.raises(ConfigError, match="train split"):
        D.dump_synthetic(tmp_path / "x", generator_path, 5, split="test", test_samples=2)
    with pytest.raises(ConfigError, match="test samples must be"):
        D.dump_synthetic(tmp_path / "x", generator_path, 5, test_samples=-1)
    assert not (tmp_path / "x").exists()


def test_manifest_does_not_depend_on_how_the_generator_path_is_written(tmp_path, generator_path, monkeypatch):
    monkeypatch.chdir(generator_path.parent)
    a = D.dump_synthetic(tmp_path / "a", generator_path, 5)
    b = D.dump_synthetic(tmp_path / "b", generator_path.name, 5)
    assert a == b and a["generator"]["file"] == generator_path.name and "path" not in a["generator"]
    assert tree(tmp_path / "a") == tree(tmp_path / "b")


def test_repeated_dumps_are_byte_identical(tmp_path, generator_path):
    args = dict(generator=generator_path, num_samples=37, formats=["npz", "png", "idx"], seed=9,
                class_weights=[3, 1, 1, 1, 1, 1, 1, 1, 1, 1], test_samples=0)
    D.dump_synthetic(tmp_path / "a", batch_size=8, **args)
    D.dump_synthetic(tmp_path / "b", batch_size=37, **args)
    a, b = tree(tmp_path / "a"), tree(tmp_path / "b")
    assert len(a) == 4 + 1 + 1 + 37 and a == b
    D.dump_synthetic(tmp_path / "c", batch_size=8, **{**args, "seed": 10})
    assert tree(tmp_path / "c")["train.npz"] != a["train.npz"]


def test_existing_output_is_refused_unless_overwrite(tmp_path, generator_path):
    out = tmp_path / "out"
    out.mkdir()
    D.dump_synthetic(out, generator_path, 4, "npz")  # an empty directory is fine
    before = tree(out)
    with pytest.raises(AugmentError, match="not empty"):
        D.dump_synthetic(out, generator_path, 6, "npz")
    assert tree(out) == before
    D.dump_synthetic(out, generator_path, 6, ["idx"], overwrite=True)
    assert "train.npz" not in tree(out) and "MNIST/raw/train-images-idx3-ubyte" in tree(out)
    assert leftovers(tmp_path) == []
    (tmp_path / "file").write_text("x")
    with pytest.raises(AugmentError, match="not a directory"):
        D.dump_synthetic(tmp_path / "file", generator_path, 4, "npz", overwrite=True)


def test_overwrite_replaces_only_a_previous_dump(tmp_path, generator_path):
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "thesis.txt").write_text("years of work")
    (theirs / "manifest.json").write_text('{"format": "something else"}')
    with pytest.raises(AugmentError, match="not a synthetic dump"):
        D.dump_synthetic(theirs, generator_path, 4, "npz", overwrite=True)
    assert (theirs / "thesis.txt").read_text() == "years of work"
    assert leftovers(tmp_path) == []


def test_a_failing_final_flush_fails_the_dump(tmp_path, generator_path, monkeypatch):
    def disk_full(self):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(D.NpzWriter, "close", disk_full)
    with pytest.raises(AugmentError, match="No space left"):
        D.dump_synthetic(tmp_path / "out", generator_path, 4, "npz")
    assert not (tmp_path / "out").exists() and leftovers(tmp_path) == []


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(num_samples=0), ConfigError, "integer >= 1"),
    (dict(num_samples=-2), ConfigError, "integer >= 1"),
    (dict(num_samples=2.0), ConfigError, "integer >= 1"),
    (dict(num_samples=2 ** 32), ConfigError, "IDX file holds at most"),
    (dict(classes=[4, 12]), ConfigError, "unknown class 12"),
    (dict(formats=["idx", "tiff"]), ConfigError, "unknown format 'tiff'"),
    (dict(formats=[]), ConfigError, "no output format"),
    (dict(split="valid"), ConfigError, "unknown split"),
    (dict(batch_size=0), ConfigError, "batch size"),
    (dict(sampling=SamplingOptions(dtype="bfloat16")), ConfigError, "CUDA"),
    (dict(num_samples=None, class_counts=[1, 2]), ConfigError, "2 class weights for 10 classes"),
    (dict(num_samples=None, class_counts=[0] * 10), ConfigError, "empty or all 0"),
    (dict(num_samples=None, class_counts=[1, -1] + [0] * 8), ConfigError, "integer >= 0"),
    (dict(num_samples=None, class_counts=[1] * 10, test_samples=3), ConfigError, "or test samples"),
    (dict(num_samples=None, class_counts=[1] * 10, class_weights=[1] * 10), ConfigError, "not with class weights"),
])
def test_bad_arguments_write_nothing(tmp_path, generator_path, kwargs, error, match):
    args = {"generator": generator_path, "num_samples": 5, "formats": ["idx"], **kwargs}
    with pytest.raises(error, match=match):
        D.dump_synthetic(tmp_path / "out", **args)
    assert list(tmp_path.iterdir()) == []


def test_corrupt_generator_and_unwritable_directory_write_nothing(tmp_path, generator_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"garbage, not safetensors")
    with pytest.raises(CheckpointError):
        D.dump_synthetic(tmp_path / "out", bad, 5)
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where a directory should be")
    with pytest.raises(AugmentError, match="cannot write"):
        D.dump_synthetic(blocker / "out", generator_path, 5)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.safetensors", "blocker"]


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root ignores permissions")
def test_read_only_parent(tmp_path, generator_path):
    parent = tmp_path / "ro"
    parent.mkdir()
    parent.chmod(0o500)
    try:
        with pytest.raises(AugmentError, match="cannot write"):
            D.dump_synthetic(parent / "out", generator_path, 5)
    finally:
        parent.chmod(0o700)


def test_failure_mid_write_leaves_nothing(tmp_path, generator_path, monkeypatch):
    calls = []

    def failing_write(self, images, labels, start):
        calls.append(start)
        if start > 0:
            raise OSError(28, "No space left on device")

    monkeypatch.setattr(D.NpzWriter, "write", failing_write)
    with pytest.raises(AugmentError, match="No space left"):
        D.dump_synthetic(tmp_path / "out", generator_path, 20, ["idx", "npz"], batch_size=8)
    assert calls == [0, 8] and list(tmp_path.iterdir()) == []
    with pytest.raises(AugmentError, match="No space left"):  # parent folders it made go too
        D.dump_synthetic(tmp_path / "new" / "deeper" / "out", generator_path, 20, ["npz"], batch_size=8)
    assert list(tmp_path.iterdir()) == []


def test_idx_is_streamed_batch_by_batch(tmp_path, generator_path, monkeypatch):
    sizes = []
    original = D.IdxWriter.write

    def spy(self, images, labels, start):
        sizes.append(len(images))
        original(self, images, labels, start)

    monkeypatch.setattr(D.IdxWriter, "write", spy)
    D.dump_synthetic(tmp_path / "out", generator_path, 21, ["idx"], batch_size=8, test_samples=0)
    assert sizes == [8, 8, 5]


# ----------------------------------------------------------------------------------- CLI


def test_cli_dump(tmp_path, generator_path):
    out = tmp_path / "cli"
    result = CliRunner().invoke(cli.main, [
        "dump", str(generator_path), "--out", str(out), "-n", "12", "--format", "idx",
        "--format", "npz", "--seed", "2", "--classes", "1,2,3", "--device", "cpu",
        "--batch-size", "5", "--test-samples", "3", "--truncation", "1.5", "--truncation-mode", "clamp",
        "--quiet", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["counts_per_class"] == {"1": 4, "2": 4, "3": 4}
    assert summary["formats"] == ["idx", "npz"]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["seed"] == 2 and manifest["classes"] == [1, 2, 3]
    assert summary["test_samples"] == manifest["splits"]["test"]["num_samples"] == 3
    assert manifest["truncation"] == 1.5 and manifest["truncation_mode"] == "clamp"


@pytest.mark.parametrize("args, code, message", [
    (["-n", "0"], 2, "Invalid value"),
    (["--format", "tiff"], 2, "Invalid value"),
    (["--classes", "1,x"], 2, "comma-separated"),
    (["--classes", "11"], 1, "Error: unknown class 11"),
    (["--dtype", "bfloat16", "--device", "cpu"], 1, "Error: bfloat16 sampling is supported on CUDA"),
])
def test_cli_errors(tmp_path, generator_path, args, code, message):
    result = CliRunner().invoke(cli.main, ["dump", str(generator_path), "--out", str(tmp_path / "o"), "-q", *args])
    assert result.exit_code == code and message in result.output
    assert not (tmp_path / "o").exists()


def test_cli_corrupt_generator(tmp_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a generator")
    result = CliRunner().invoke(cli.main, ["dump", str(bad), "--out", str(tmp_path / "o"), "-q"])
    assert result.exit_code == 1 and result.output.startswith("Error: ")
    assert len(result.output.strip().splitlines()) == 1 and not (tmp_path / "o").exists()


def test_pixels_are_an_antialiased_bilinear_resize_rounded_to_bytes():
    """Checked against PIL, independently of the code under test: PIL's float-image BILINEAR
    resize (antialiased when shrinking) of (x + 1) * 127.5, rounded."""
    assert to_mnist_uint8(torch.stack([torch.full((1, 32, 32), v) for v in (-1.0, 0.0, 1.0)]))[:, 0, 0].tolist() \
        == [0, 128, 255]
    x = torch.rand(3, 1, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1
    expected = [np.clip(np.round(np.asarray(Image.fromarray((img[0].numpy() + 1) * 127.5).resize(
        (28, 28), Image.BILINEAR))), 0, 255).astype(np.uint8) for img in x]
    assert torch.equal(to_mnist_uint8(x), torch.from_numpy(np.stack(expected)))


def test_the_manifest_digests_the_png_tree_in_index_order(tmp_path, generator_path):
    """sha256 over "<class folder>/<file name>:<byte length>:" + bytes of each PNG, by index."""
    out = tmp_path / "p"
    manifest = D.dump_synthetic(out, generator_path, 12, ["png"])
    files = sorted((out / "png" / "train").glob("*/*.png"), key=lambda p: p.name)
    digest = hashlib.sha256()
    for path in files:
        data = path.read_bytes()
        digest.update(f"{path.parent.name}/{path.name}:{len(data)}:".encode() + data)
    assert manifest["files"]["png/train/"] == {"count": 12, "sha256_of_files_in_index_order": digest.hexdigest()}


def test_class_counts_write_exactly_those_counts(tmp_path, generator_path):
    """A long-tailed set's synthetic top-up: exact per-class counts, N their sum."""
    counts = [0, 3, 1, 0, 0, 0, 0, 0, 2, 4]
    manifest = D.dump_synthetic(tmp_path / "out", generator_path, formats=["npz"], class_counts=counts)
    assert manifest["num_samples"] == 10
    y = np.load(tmp_path / "out" / "train.npz")["y"]
    assert np.bincount(y, minlength=10).tolist() == counts
    with pytest.raises(ConfigError, match="class counts sum to 10"):
        D.dump_synthetic(tmp_path / "again", generator_path, num_samples=12, formats=["npz"], class_counts=counts)


def test_a_train_dump_has_a_test_split_torchvision_reads_by_default(tmp_path, generator_path):
    manifest = D.dump_synthetic(tmp_path / "out", generator_path, 60, ["idx"])
    assert manifest["splits"]["test"] == {"first_item": 60, "num_samples": 10,
                                          "counts_per_class": manifest["splits"]["test"]["counts_per_class"]}
    assert len(torchvision.datasets.MNIST(tmp_path / "out", train=False)) == 10  # MNIST's 1 per 6
    with pytest.warns(D.PlaceholderWarning, match=r"MNIST\(root, train=False\) cannot read"):
        D.dump_synthetic(tmp_path / "none", generator_path, 6, ["idx"], test_samples=0)


def test_classes_asked_for_by_name_each_get_an_image(tmp_path, generator_path):
    with pytest.raises(ConfigError, match="leave class 2 without an image"):
        D.dump_synthetic(tmp_path / "out", generator_path, 3, ["npz"], classes=[3, 7, 1, 2])
    assert not (tmp_path / "out").exists()
