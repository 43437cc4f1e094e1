"""Fixtures of the downstream tests."""

import pytest
import torch

from augment.checkpoint import save_generator
from augment.evaluation.classifier import ClassifierConfig, build_classifier
from augment.evaluation.classifier_files import save_classifier
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


@pytest.fixture
def tiny_evaluator(tmp_path):
    """A classifier file of 10 numbered classes (random weights) for the diversity table of a grid
    on toy IDX digits: the shipped evaluator fits only MNIST's checksummed files."""
    path = tmp_path / "judge.safetensors"
    save_classifier(path, build_classifier(ClassifierConfig(num_classes=10, widths=(4, 8)), seed=0))
    return path
