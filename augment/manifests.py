"""Weights that ship inside the package (``augment/weights/``), each with a JSON manifest
beside it recording its SHA-256, bytes and how it was made: the default generator
(``augment.synthetic.shipped``) and the default evaluator (``augment.evaluation.classifier``).
Loading a shipped file checks its checksum against the manifest, so a damaged install fails
loudly."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

from augment.errors import CheckpointError, one_line
from augment.fileio import PathLike, atomic_write_text, sha256_file

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"


def write_manifest(weights: PathLike, info: dict, manifest: Optional[PathLike] = None) -> Path:
    """Write ``weights``' manifest (default: beside it, ``.json``): file name, SHA-256, bytes
    and ``info`` (how it was made, what it scores)."""
    weights = Path(weights)
    manifest = Path(manifest) if manifest is not None else weights.with_suffix(".json")
    body = {"file": weights.name, "sha256": sha256_file(weights), "bytes": weights.stat().st_size, **info}
    atomic_write_text(manifest, json.dumps(body, indent=2, sort_keys=True) + "\n")
    return manifest


MAX_MANIFEST_BYTES = 1 << 20  # a manifest is a few kB of JSON


def read_json_object(path: PathLike, what: str = "manifest") -> dict:
    """A JSON object from a file of at most ``MAX_MANIFEST_BYTES`` (the size checked before it is
    read; deep nesting and bad text refused), or a one-line CheckpointError naming ``what`` it is."""
    path = Path(path)
    try:
        if path.stat().st_size > MAX_MANIFEST_BYTES:
            raise CheckpointError(f"{path}: {path.stat().st_size:,} bytes is no {what} "
                                  f"(at most {MAX_MANIFEST_BYTES:,})")
        body = json.loads(path.read_text())
    except FileNotFoundError:
        raise CheckpointError(f"{what} not found: {path}") from None
    except (OSError, json.JSONDecodeError, UnicodeDecodeError, RecursionError) as e:
        raise CheckpointError(f"{path}: unreadable {what} ({one_line(e)[:200]})") from None
    if not isinstance(body, dict):
        raise CheckpointError(f"{path}: a {what} is a JSON object, not {type(body).__name__}")
    return body


def read_manifest(manifest: PathLike) -> dict:
    """The manifest dict of a weights file (``file``, ``sha256``, ``bytes``, ...): at most
    ``MAX_MANIFEST_BYTES``, checked before it is read; one-line CheckpointError otherwise."""
    body = read_json_object(manifest)
    if not isinstance(body.get("sha256"), str):
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


def matches_manifest(manifest: PathLike, digest: str) -> bool:
    """Whether the weights of SHA-256 ``digest`` are the ones ``manifest`` records (False when
    the install has no such manifest): how the shipped files are recognised."""
    try:
        return read_manifest(manifest)["sha256"] == digest
    except CheckpointError:
        return False
