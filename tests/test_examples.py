"""examples/ run (at tiny sizes) and hubconf.py's entry points load with torch.hub."""

import subprocess
import sys
from pathlib import Path

import torch

from augment.checkpoint import save_generator
from augment.gan.models import Generator
from augment.synthetic.dump import dump_synthetic
from tests.conftest import script_env, write_idx_dir

ROOT = Path(__file__).resolve().parents[1]


def tiny_generator_file(tmp_path: Path, tiny_model_config) -> Path:
    with torch.random.fork_rng():
        torch.manual_seed(0)
        g = Generator(tiny_model_config)
    save_generator(tmp_path / "g.safetensors", g)
    return tmp_path / "g.safetensors"


def run_example(name: str, *args) -> str:
    r = subprocess.run([sys.executable, str(ROOT / "examples" / name), *map(str, args)], capture_output=True,
                       text=True, env=script_env(), timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    return r.stdout


def test_the_mnist_script_trains_on_real_plus_synthetic_with_workers(tmp_path, tiny_model_config):
    generator = tiny_generator_file(tmp_path, tiny_model_config)
    dump_synthetic(tmp_path / "mnist", generator, 120, ["idx"], seed=7)  # a stand-in for MNIST's files
    out = run_example("mnist_with_synthetic.py", "--mnist-root", tmp_path / "mnist", "--dataset", "idx",
                      "--generator", generator,
                      "--synthetic", 64, "--mode", "mixed", "--max-batches", 2, "--num-workers", 2)
    assert "mixed training set of 184 images, test accuracy" in out


def test_the_long_tail_example_tops_up_the_rare_classes(tmp_path, tiny_model_config):
    generator = tiny_generator_file(tmp_path, tiny_model_config)
    data = write_idx_dir(tmp_path / "data", n_train=300)
    out = run_example("rebalance_long_tailed.py", "--data-dir", data, "--dataset", "idx", "--imbalance-ratio", 4,
                      "--n-max", 16, "--generator", generator, "--steps", 3, "--batch-size", 8)
    assert "long-tailed training set: [16, 14, 12, 10, 9, 7, 6, 5, 5, 4]" in out
    assert "real + synthetic top-up: 160 images, balanced accuracy" in out


def test_torch_hub_loads_the_dataset_and_the_generator(tmp_path, tiny_model_config):
    generator = tiny_generator_file(tmp_path, tiny_model_config)
    data = torch.hub.load(str(ROOT), "synthetic_mnist", source="local", generator=generator, num_samples=8,
                          output="pil", trust_repo=True)
    image, label = data[3]
    assert image.size == (28, 28) and label == 3
    G = torch.hub.load(str(ROOT), "generator", source="local", trust_repo=True)  # the shipped one
    assert G.config.num_classes == 10 and not G.training
