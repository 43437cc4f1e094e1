"""Weights that ship inside the package (``augment/weights/``), each with a JSON manifest
beside it that records its SHA-256: the default generator and the default evaluator.

Loading a shipped file checks its checksum against the manifest, and its config against the
file's own metadata (see ``checkpoint.load_generator``), so a damaged install fails loudly.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional, Union

import torch

from .errors import CheckpointError
from .fileio import PathLike, atomic_write_text, sha256_file

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
GENERATOR_PATH = WEIGHTS_DIR / "generator.safetensors"


def write_manifest(weights: PathLike, info: dict, manifest: Optional[PathLike] = None) -> Path:
    """Write ``weights``' manifest (default: beside it, ``.json``): file name, SHA-256, bytes
    and ``info`` (how it was made, what it scores)."""
    weights = Path(weights)
    manifest = Path(manifest) if manifest is not None else weights.with_suffix(".json")
    body = {"file": weights.name, "sha256": sha256_file(weights), "bytes": weights.stat().st_size, **info}
    atomic_write_text(manifest, json.dumps(body, indent=2, sort_keys=True) + "\n")
    return manifest


def read_manifest(manifest: PathLike) -> dict:
    """The manifest dict of a weights file (``file``, ``sha256``, ``bytes``, ...)."""
    try:
        body = json.loads(Path(manifest).read_text())
    except FileNotFoundError:
        raise CheckpointError(f"manifest not found: {manifest}") from None
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{manifest}: unreadable manifest ({e})") from None
    if not isinstance(body, dict) or not isinstance(body.get("sha256"), str):
        raise CheckpointError(f"{manifest}: manifest lacks a sha256")
    return body


def verify_checksum(weights: PathLike, manifest: Optional[PathLike] = None) -> dict:
    """Raise CheckpointError unless ``weights`` has the SHA-256 its manifest records; returns
    the manifest."""
    weights = Path(weights)
    info = read_manifest(manifest if manifest is not None else weights.with_suffix(".json"))
    if not weights.is_file():
        raise CheckpointError(f"file not found: {weights}")
    if sha256_file(weights) != info["sha256"]:
        raise CheckpointError(f"{weights}: SHA-256 does not match its manifest (damaged or replaced file)")
    return info


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
    import dataclasses

    from .checkpoint import read_generator_file

    recorded = (info.get("train_config") or {}).get("model")
    if recorded is None:
        return
    actual = dataclasses.asdict(read_generator_file(weights)[0])
    if recorded != actual:
        diff = sorted(k for k in set(recorded) | set(actual) if recorded.get(k) != actual.get(k))
        raise CheckpointError(f"{weights}: model config differs from its manifest ({', '.join(diff)})")


def load_default_generator(device: Union[str, torch.device] = "cpu"):
    """The shipped generator (eval mode), its checksum verified against its manifest."""
    from .checkpoint import load_generator

    return load_generator(verified_default_generator_path(), device)
