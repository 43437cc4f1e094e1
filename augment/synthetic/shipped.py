"""The shipped generator (``augment/weights/generator.safetensors``): where it is, and loading
it only after its SHA-256 and model config match its manifest (``augment.manifests``)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Union

import torch

from augment.checkpoint import load_generator, read_generator_file
from augment.config import ModelConfig, config_from_dict
from augment.errors import CheckpointError
from augment.fileio import PathLike
from augment.manifests import WEIGHTS_DIR, verify_checksum

GENERATOR_PATH = WEIGHTS_DIR / "generator.safetensors"


def default_generator_path() -> Path:
    """Where the shipped default generator lives (``augment/weights/generator.safetensors``)."""
    return GENERATOR_PATH


def verified_default_generator_path() -> Path:
    """The shipped generator's path, after checking it is there and matches its manifest:
    SHA-256, and the model config the manifest records (``train_config.model``) against the
    one inside the file."""
    if not GENERATOR_PATH.is_file():
        raise CheckpointError(f"no shipped generator at {GENERATOR_PATH}; pass a generator file")
    info = verify_checksum(GENERATOR_PATH)
    verify_model_config(GENERATOR_PATH, info)
    return GENERATOR_PATH


def verify_model_config(weights: PathLike, info: dict) -> None:
    """Raise CheckpointError when the manifest ``info`` records a model config
    (``train_config.model``) other than the generator file's own."""
    recorded = (info.get("train_config") or {}).get("model")
    if recorded is None:
        return
    actual = read_generator_file(weights)[0]
    if config_from_dict(ModelConfig, recorded) != actual:  # as configs: a field added since takes its default
        recorded, actual = dataclasses.asdict(config_from_dict(ModelConfig, recorded)), dataclasses.asdict(actual)
        diff = sorted(k for k in set(recorded) | set(actual) if recorded.get(k) != actual.get(k))
        raise CheckpointError(f"{weights}: model config differs from its manifest ({', '.join(diff)})")


def load_default_generator(device: Union[str, torch.device] = "cpu"):
    """The shipped generator (eval mode), its checksum verified against its manifest."""
    return load_generator(verified_default_generator_path(), device)
