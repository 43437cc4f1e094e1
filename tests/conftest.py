"""Shared fixtures: tiny IDX data sets in temp dirs and tiny model/training configs."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import pytest
import torch
from threadpoolctl import threadpool_limits

from augment.config import ModelConfig, TrainConfig
from augment.data.idx import encode_idx
from augment.data.mnist import locate_mnist

SHARED_MNIST = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"
# real MNIST wherever a user keeps it: $AUGMENT_DATA, the fetch cache, else beside the checkout
REAL_MNIST = locate_mnist(SHARED_MNIST)
NUM_CLASSES = 10

# Tiny models and small matrices: one thread (torch and numpy's BLAS) beats two, and stalls
# less on thread barriers when the cores are shared.
torch.set_num_threads(1)
threadpool_limits(limits=1)


def bar_digits(n: int, seed: int = 0, num_classes: int = NUM_CLASSES) -> tuple[torch.Tensor, torch.Tensor]:
    """Toy 28x28 uint8 'digits': class c is a bright vertical bar at column 3 + 2c, with noise.

    Returns images (n, 28, 28) uint8 and labels (n,) uint8, classes balanced (i % C).
    """
    gen = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % num_classes
    images = torch.randint(0, 40, (n, 28, 28), generator=gen, dtype=torch.int64)
    for i, c in enumerate(labels.tolist()):
        col = 3 + 2 * c
        images[i, 4:24, col:col + 2] = 255
    return images.to(torch.uint8), labels.to(torch.uint8)


def write_idx_dir(directory: Path, n_train: int = 80, n_test: int = 40, gz: bool = True) -> Path:
    """An IDX directory with MNIST's file names holding toy data (train images gzipped)."""
    directory.mkdir(parents=True, exist_ok=True)
    for split, n, seed, prefix in (("train", n_train, 0, "train"), ("test", n_test, 1, "t10k")):
        images, labels = bar_digits(n, seed)
        img_bytes = encode_idx(images)
        if gz and split == "train":
            (directory / f"{prefix}-images-idx3-ubyte.gz").write_bytes(gzip.compress(img_bytes, mtime=0))
        else:
            (directory / f"{prefix}-images-idx3-ubyte").write_bytes(img_bytes)
        (directory / f"{prefix}-labels-idx1-ubyte").write_bytes(encode_idx(labels))
    return directory


def script_env(**extra: str) -> dict:
    """The environment for a test script run by path (not ``-m``) in a subprocess: one thread,
    and the repository on PYTHONPATH, so it imports ``augment`` installed or not."""
    root = str(Path(__file__).resolve().parents[1])
    path = os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": path, **extra}


@pytest.fixture
def idx_dir(tmp_path: Path) -> Path:
    """A tiny IDX data set (80 train / 40 test toy digits, 10 classes) in a temp dir."""
    return write_idx_dir(tmp_path / "data")


@pytest.fixture
def tiny_model_config() -> ModelConfig:
    return ModelConfig(num_classes=NUM_CLASSES, z_dim=8, embed_dim=4, g_width=8, d_width=8)


@pytest.fixture
def tiny_train_config(idx_dir: Path, tiny_model_config: ModelConfig) -> TrainConfig:
    """A training config on the tiny data that runs a step in milliseconds."""
    return TrainConfig(model=tiny_model_config, data_dir=str(idx_dir), dataset="idx",
                       batch_size=16, n_critic=2, max_steps=4, log_every=2, sample_every=2,
                       checkpoint_every=2, device="cpu", tensorboard=False)


@pytest.fixture(scope="module")
def generator():
    """A tiny randomly initialised generator (seed 0, 10 classes, z_dim 8), shared by a module."""
    from augment.gan.models import Generator

    with torch.random.fork_rng():
        torch.manual_seed(0)
        return Generator(ModelConfig(z_dim=8, embed_dim=4, g_width=8, d_width=8))


@pytest.fixture
def shared_mnist() -> Path:
    """The directory of real MNIST's IDX files (``REAL_MNIST``; skips when there is none)."""
    if REAL_MNIST is None:
        pytest.skip("real MNIST not found in $AUGMENT_DATA, ~/.cache/augment/mnist or ../shared/data/mnist "
                    "(augment data fetch gets it)")
    return REAL_MNIST


@pytest.fixture
def generator_file(tmp_path: Path, generator) -> Path:
    """``generator`` saved as a generator file (safetensors) in the test's temp dir."""
    from augment.checkpoint import save_generator

    path = tmp_path / "g.safetensors"
    save_generator(path, generator)
    return path


def _snapshot(root: Path) -> dict:
    return {p.relative_to(root).as_posix(): p.stat().st_mtime_ns for p in root.rglob("*")}


def assert_one_line_error(root: Path, args: list, code: int, word: str) -> None:
    """Run ``augment ARGS`` (each ``{tmp}`` in them is ``root``): it must exit with ``code``, print
    exactly one ``Error: ...`` line (short, containing ``word``) and no traceback, and write nothing
    under ``root``. The harness of the bad-input batteries (tests/cli/test_bad_invocations.py,
    tests/test_hostile_files.py)."""
    from click.testing import CliRunner

    from augment.cli import main

    before = _snapshot(root)
    result = CliRunner().invoke(main, [a.format(tmp=root) for a in args])
    assert result.exit_code == code, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    errors = [ln for ln in result.output.splitlines() if ln.startswith("Error")]
    assert len(errors) == 1, result.output
    assert word in errors[0], result.output
    assert result.output.strip() == errors[0]  # one line, usage errors too (no usage block)
    assert len(errors[0]) < 400  # a 5 MB name or a 100,000-deep value is not echoed back
    assert _snapshot(root) == before  # nothing written
