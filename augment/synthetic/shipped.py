"""Where a generator comes from: the shipped one (``augment/weights/generator.safetensors``), loaded
only after its SHA-256 and model config match its manifest (``augment.manifests``), a file or a
module (``load_source``), and what it was trained on (``trained_on``): the shipped file predates the ``source_*`` keys
(``augment.provenance``) and is left byte for byte as it is, since its SHA-256 is pinned by its
manifest, its model card and the records of every experiment that used it; it is known by that
SHA-256 to be MNIST's (its manifest's ``train_config.dataset``), 28x28."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Optional, Union

import torch

from augment.checkpoint import generator_trained_on, load_generator, read_generator_file
from augment.config import ModelConfig, config_from_dict
from augment.errors import AugmentError, CheckpointError
from augment.fileio import PathLike, sha256_file
from augment.gan.models import Generator
from augment.manifests import WEIGHTS_DIR, matches_manifest, verify_checksum
from augment.provenance import MNIST, DataSignature, unknown
from augment.synthetic.filtering import weights_digest

GENERATOR_PATH = WEIGHTS_DIR / "generator.safetensors"
GeneratorLike = Union[None, str, os.PathLike, Generator]


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


def is_shipped(digest: str) -> bool:
    """Whether a file of SHA-256 ``digest`` is the shipped generator (its manifest's digest;
    False when the install has no manifest)."""
    return matches_manifest(GENERATOR_PATH.with_suffix(".json"), digest)


def trained_on(path: PathLike, digest: Optional[str] = None) -> DataSignature:
    """What the generator file or checkpoint at ``path`` (of SHA-256 ``digest``, if known) was
    trained on (``augment.checkpoint.generator_trained_on``); the shipped generator: ``MNIST``."""
    recorded = generator_trained_on(path)
    if recorded.kind is None and is_shipped(digest or sha256_file(path)):
        return MNIST
    return recorded


def load_source(generator: GeneratorLike) -> tuple[Generator, dict, DataSignature]:
    """(generator on the CPU or its own device, provenance dict, the data it was trained on) from
    a path, a module (its data unknown: ``augment.provenance.unknown``) or None (the shipped
    default). Raises AugmentError when the default is missing."""
    if generator is None:
        generator = verified_default_generator_path()
    if isinstance(generator, (str, os.PathLike)):
        model, digest = load_generator(generator, "cpu"), sha256_file(generator)
        data = trained_on(generator, digest)
        info = {"path": str(generator), "file_sha256": digest, "class_names": list(data.class_names)}
    elif isinstance(generator, Generator):
        data = unknown(generator.config.num_classes, generator.config.channels)
        model, info = generator, {"path": None, "file_sha256": None, "class_names": list(data.class_names)}
    else:
        raise AugmentError(f"generator must be a file path, a Generator or None, got {type(generator).__name__}")
    info["weights_sha256"] = weights_digest(model)
    info["model_config"] = dataclasses.asdict(model.config)
    return model, info, data
