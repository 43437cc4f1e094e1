"""Fixtures of the downstream tests."""

import pytest
import torch

from augment.checkpoint import save_generator
from augment.gan.models import Generator


@pytest.fixture
def tiny_generator(tmp_path, tiny_model_config):
    """A tiny randomly initialised generator (seed 0) saved as a generator file in the temp dir."""
    with torch.random.fork_rng():
        torch.manual_seed(0)
        g = Generator(tiny_model_config)
    path = tmp_path / "g.safetensors"
    save_generator(path, g)
    return path
