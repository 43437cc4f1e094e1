"""Safetensors model files (generator and classifier files): written with deterministic bytes
and a ``data_sha256`` of the tensor data; read with every check a hostile file needs before any
value is used: the kind of file (a pickle or a zip archive is named as such, never unpickled),
each metadata string's size (``MAX_METADATA_CHARS``) and JSON nesting (``MAX_METADATA_DEPTH``)
before it is parsed, the format and its version, the digest, finite weights. Errors are one-line
``CheckpointError``s."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Optional

from safetensors import SafetensorError, safe_open
from safetensors.torch import save

from augment.errors import CheckpointError, one_line
from augment.fileio import PathLike, atomic_path, sha256_file

FORMAT_VERSION = 1  # the newest format version of augment's model files that this library reads
DATA_DIGEST_KEY = "data_sha256"  # safetensors metadata: SHA-256 of the tensor data (checked on read)
MAX_METADATA_CHARS = 2 << 20  # one metadata string: room for 10,000 class names of 100 characters
MAX_METADATA_DEPTH = 16  # JSON nesting of a metadata string (the library writes flat lists and dicts)
_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"')


def write_safetensors(path: PathLike, state: dict, metadata: dict) -> str:
    """Atomically write a state dict and string ``metadata`` as safetensors; returns the file's
    SHA-256. The same tensors and metadata give the same bytes in any process: the
    safetensors library writes the metadata map in a per-process random order, so the header is
    rewritten with the metadata keys sorted (tensor entries and data untouched). The metadata
    also gets ``data_sha256``, the SHA-256 of the tensor data, which ``read_safetensors`` checks:
    safetensors itself has no checksum, so a flipped bit in a weight would load silently."""
    tensors = {k: v.detach().cpu().contiguous() for k, v in state.items()}
    raw = save(tensors, metadata=metadata)
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + n])
    digest = hashlib.sha256(memoryview(raw)[8 + n:]).hexdigest()
    header["__metadata__"] = dict(sorted({**header.get("__metadata__", {}), DATA_DIGEST_KEY: digest}.items()))
    text = json.dumps({"__metadata__": header.pop("__metadata__"), **header}, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # the data stays 8-byte aligned, as the library writes it
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(len(text).to_bytes(8, "little") + text)
        f.write(memoryview(raw)[8 + n:])
    return sha256_file(path)


def read_safetensors(path: PathLike, expected_format: str, what: str) -> tuple[dict, dict]:
    """(state dict on the CPU, metadata) of a safetensors file whose metadata ``format`` is
    ``expected_format`` and whose ``format_version`` this library reads; one-line
    CheckpointError otherwise (``what`` names the kind of file in messages)."""
    path = existing_file(path)
    kind = _other_kind(path)
    if kind:
        raise CheckpointError(f"{path}: {kind}, not a safetensors {what} file (augment reads only safetensors "
                              f"model files, which hold no code)")
    if not _has_safetensors_header(path):
        raise CheckpointError(f"{path}: not a readable safetensors file (no JSON header after its 8-byte length)")
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            metadata = f.metadata() or {}
            _check_metadata(path, metadata)
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except CheckpointError:
        raise
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"{path}: not a readable safetensors file ({one_line(e)[:200]})") from None
    if metadata.get("format") != expected_format:
        raise CheckpointError(f"{path}: not an augment {what} file")
    if DATA_DIGEST_KEY in metadata and _data_sha256(path) != metadata[DATA_DIGEST_KEY]:
        raise CheckpointError(f"{path}: corrupt {what} file (its tensor data does not match the SHA-256 "
                              f"written with it)")
    try:
        version = int(metadata.get("format_version", "0"))
    except ValueError:
        raise CheckpointError(f"{path}: bad {what} format version {metadata['format_version']!r}") from None
    if version > FORMAT_VERSION:
        raise CheckpointError(f"{path}: {what} format version {metadata['format_version']} is "
                              f"newer than this library's ({FORMAT_VERSION})")
    bad = [k for k, v in tensors.items() if v.is_floating_point() and not bool(v.isfinite().all())]
    if bad:
        raise CheckpointError(f"{path}: {len(bad)} of its {len(tensors)} weight tensors hold NaN or infinity "
                              f"(e.g. {bad[0]}); a {what} file needs finite weights")
    return tensors, metadata


def _other_kind(path: Path) -> Optional[str]:
    """What a model file that is not safetensors is, told by its first bytes: a pickle or a zip
    archive (a ``torch.save`` file); None otherwise."""
    with open(path, "rb") as f:
        head = f.read(4)
    if head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        return "a Python pickle"
    if head == b"PK\x03\x04":
        return "a zip archive (e.g. a torch.save file)"
    return None


def _has_safetensors_header(path: Path) -> bool:
    """An 8-byte little-endian length that fits the file, followed by a JSON object."""
    with open(path, "rb") as f:
        head = f.read(9)
    return len(head) == 9 and head[8:9] == b"{" and int.from_bytes(head[:8], "little") <= path.stat().st_size - 8


def _check_metadata(path: Path, metadata: dict) -> None:
    """Every metadata value is a string of at most ``MAX_METADATA_CHARS`` characters whose JSON
    nesting (brackets outside string literals) is at most ``MAX_METADATA_DEPTH`` deep: checked
    before any of them is parsed."""
    for key, value in metadata.items():
        if not isinstance(value, str):
            raise CheckpointError(f"{path}: metadata {key!r} is not a string")
        if len(value) > MAX_METADATA_CHARS:
            raise CheckpointError(f"{path}: metadata {key!r} is {len(value):,} characters long "
                                  f"(at most {MAX_METADATA_CHARS:,})")
        depth = 0
        for c in re.sub(r"[^\[\]{}]", "", _JSON_STRING.sub("", value)):
            depth += 1 if c in "[{" else -1
            if depth > MAX_METADATA_DEPTH:
                raise CheckpointError(f"{path}: metadata {key!r} is nested deeper than {MAX_METADATA_DEPTH} "
                                      f"levels")


def _data_sha256(path: Path) -> str:
    """SHA-256 of a safetensors file's tensor data: everything after the 8-byte length and the
    JSON header."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        f.seek(8 + int.from_bytes(f.read(8), "little"))
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def existing_file(path: PathLike) -> Path:
    """``path`` as a Path, or a one-line CheckpointError when it is missing or not a file."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"file not found: {path}")
    if not path.is_file():
        raise CheckpointError(f"not a file: {path}")
    return path
