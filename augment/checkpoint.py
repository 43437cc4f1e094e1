"""Checkpoints (full training state) and generator files (weights + config, no pickle).

A checkpoint is one dict saved with ``torch.save`` and loaded with ``weights_only=True``:
``{"format": "augment.checkpoint", "format_version", "train_config", "generator", "critic",
"opt_g", "opt_d", "step", "rng", "elapsed", "log_window", "class_names"}`` plus ``"generator_ema"`` (the
weight average) in runs with ``ema_decay`` (elapsed: training wall time in seconds, counted
across resumes; log_window: per-step stats not yet logged, ``{name: (m,)}``; older
checkpoints lack both); RNG states are uint8 tensors. A generator file is
safetensors whose metadata carries ``format``, ``format_version`` and the ``model_config``
JSON, so it alone rebuilds the generator. Both are written atomically.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import pickle
import zipfile
from pathlib import Path
from typing import Optional, Union

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save

from augment.config import ModelConfig, TrainConfig, config_from_dict
from augment.device import resolve_device
from augment.errors import AugmentError, CheckpointError, ConfigError, one_line
from augment.fileio import PathLike, atomic_path, sha256_file
from augment.gan.ema import decay_at
from augment.gan.models import Generator

CHECKPOINT_FORMAT = "augment.checkpoint"
GENERATOR_FORMAT = "augment.generator"
FORMAT_VERSION = 1
DATA_DIGEST_KEY = "data_sha256"  # safetensors metadata: SHA-256 of the tensor data (checked on read)
_REQUIRED_KEYS = ("train_config", "generator", "critic", "opt_g", "opt_d", "step", "rng")


def save_checkpoint(path: PathLike, state: dict) -> None:
    """Atomically write a training-state dict (``Trainer.state_dict()``; see the module docstring)."""
    payload = {"format": CHECKPOINT_FORMAT, "format_version": FORMAT_VERSION, **state}
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load_checkpoint(path: PathLike, map_location: Union[str, torch.device] = "cpu") -> dict:
    """Load and validate a checkpoint without unpickling code (``weights_only=True``).

    Returns the dict with ``train_config`` rebuilt as a ``TrainConfig``.
    """
    path = _existing_file(path)
    if not zipfile.is_zipfile(path):
        raise CheckpointError(f"{path}: not an augment checkpoint (not a torch.save zip archive)")
    try:  # torch.load does not check the archive's CRCs: a flipped bit would load silently
        with zipfile.ZipFile(path) as archive:
            damaged = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as e:
        raise CheckpointError(f"{path}: not a readable checkpoint ({type(e).__name__})") from None
    if damaged is not None:
        raise CheckpointError(f"{path}: corrupt checkpoint (CRC mismatch in {damaged})")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError:
        raise CheckpointError(f"{path}: refused to load: it holds objects other than tensors and "
                              f"plain data (unsafe, or not an augment checkpoint)") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError, KeyError) as e:
        raise CheckpointError(f"{path}: not a readable checkpoint ({type(e).__name__})") from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path}: not an augment checkpoint")
    version = state.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise CheckpointError(f"{path}: checkpoint format version {version!r} is newer than this "
                              f"library's ({FORMAT_VERSION})")
    missing = [k for k in _REQUIRED_KEYS if k not in state]
    if missing:
        raise CheckpointError(f"{path}: checkpoint lacks {', '.join(missing)}")
    try:
        state["train_config"] = TrainConfig.from_dict(state["train_config"])
    except AugmentError as e:
        raise CheckpointError(f"{path}: bad training config inside ({e})") from None
    decay = state["train_config"].ema_decay
    if decay is not None and not isinstance(state.get("generator_ema"), dict):
        raise CheckpointError(f"{path}: trained with ema_decay={decay} but holds no weight average "
                              f"(generator_ema); the file is damaged or was edited")
    return state


def save_generator(path: PathLike, generator: Generator, extra: dict | None = None) -> str:
    """Atomically write the generator's weights and config as safetensors (``write_safetensors``);
    returns its SHA-256."""
    if not isinstance(generator, Generator):
        raise ConfigError(f"save_generator takes an augment Generator, got {type(generator).__name__}")
    metadata = {
        "format": GENERATOR_FORMAT,
        "format_version": str(FORMAT_VERSION),
        "model_config": json.dumps(dataclasses.asdict(generator.config), sort_keys=True),
    }
    for k, v in (extra or {}).items():
        metadata[k] = v if isinstance(v, str) else json.dumps(v, sort_keys=True)
    return write_safetensors(path, generator.state_dict(), metadata)


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
    path = _existing_file(path)
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            metadata = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
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
    return tensors, metadata


def _data_sha256(path: Path) -> str:
    """SHA-256 of a safetensors file's tensor data: everything after the 8-byte length and the
    JSON header."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        f.seek(8 + int.from_bytes(f.read(8), "little"))
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def read_generator_file(path: PathLike) -> tuple[ModelConfig, dict, dict]:
    """(model config, state dict on CPU, metadata) of a safetensors generator file."""
    tensors, metadata = read_safetensors(path, GENERATOR_FORMAT, "generator")
    try:
        cfg = config_from_dict(ModelConfig, json.loads(metadata["model_config"]))
    except (KeyError, json.JSONDecodeError, AugmentError) as e:
        raise CheckpointError(f"{path}: bad model config in metadata ({one_line(e)})") from None
    return cfg, tensors, metadata


def load_generator(path: PathLike, device: Union[str, torch.device] = "cpu") -> Generator:
    """A generator in eval mode on ``device`` ('cpu', 'cuda', 'cuda:N', 'auto' or a
    ``torch.device``) from a generator file (.safetensors) or a training checkpoint."""
    device = resolve_device(device)
    path = _existing_file(path)
    if _is_safetensors(path):
        cfg, state, _ = read_generator_file(path)
    else:
        ckpt = load_checkpoint(path)
        cfg, state = ckpt["train_config"].model, checkpoint_generator_state(ckpt)
    return _build_generator(path, cfg, state).to(device).eval()


def checkpoint_generator_state(ckpt: dict, averaged: bool = True) -> dict:
    """The generator weights of a loaded checkpoint: the weight average when the run kept one
    (``ema_decay``) and ``averaged``, else the live generator's."""
    return ckpt["generator_ema"] if averaged and "generator_ema" in ckpt else ckpt["generator"]


def _build_generator(path: Path, cfg: ModelConfig, state: dict) -> Generator:
    with torch.device("meta"):  # shapes only: a config edited to absurd sizes allocates nothing
        expected = {k: tuple(v.shape) for k, v in Generator(cfg).state_dict().items()}
    got = {k: tuple(v.shape) for k, v in state.items()}
    if got != expected:
        wrong = sorted(set(got) ^ set(expected)) or [k for k in expected if got[k] != expected[k]]
        raise CheckpointError(f"{path}: weights do not fit the model config ({len(wrong)} tensors missing, "
                              f"extra or of another shape, e.g. {wrong[0]})")
    generator = Generator(cfg)
    try:
        generator.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise CheckpointError(f"{path}: weights do not fit the model config ({one_line(e)[:200]})") from None
    return generator


def export_generator(checkpoint: PathLike, out: PathLike, averaged: bool = True) -> str:
    """Write the generator of a training checkpoint as a generator file; returns its SHA-256.

    A run with ``ema_decay`` exports its weight average unless ``averaged`` is False."""
    ckpt = load_checkpoint(checkpoint)
    averaged = averaged and "generator_ema" in ckpt
    generator = _build_generator(Path(checkpoint), ckpt["train_config"].model,
                                 checkpoint_generator_state(ckpt, averaged))
    names = ckpt.get("class_names")
    return save_generator(out, generator, {"step": ckpt["step"], **weights_metadata(
        ckpt["train_config"].ema_decay if averaged else None, ckpt["step"]),
        **({"class_names": list(names)} if names else {})})


def class_names(metadata: dict, num_classes: int) -> list:
    """The class names a generator or classifier file's metadata records (``class_names``, a
    JSON list of C strings), else "0".."C-1" (files written before names travelled)."""
    try:
        names = json.loads(metadata.get("class_names", "null"))
    except (TypeError, json.JSONDecodeError):
        names = None
    if isinstance(names, list) and len(names) == num_classes and all(isinstance(n, str) for n in names):
        return names
    return [str(c) for c in range(num_classes)]


def generator_class_names(path: PathLike) -> list:
    """The class names of a generator file or a training checkpoint's run."""
    path = _existing_file(path)
    if _is_safetensors(path):
        cfg, _, metadata = read_generator_file(path)
        return class_names(metadata, cfg.num_classes)
    state = load_checkpoint(path)
    names = state.get("class_names")
    return class_names({"class_names": json.dumps(names)} if names else {}, state["train_config"].model.num_classes)


def generator_step(path: PathLike) -> Optional[int]:
    """The training step a generator file was saved at (its ``step`` metadata); None when the
    file does not say (written by hand or by an older version)."""
    _, _, metadata = read_generator_file(path)
    try:
        return int(metadata["step"])
    except (KeyError, ValueError):
        return None


def weights_metadata(ema_decay: float | None, step: int) -> dict:
    """Generator-file metadata saying which weights it holds: 'live', or 'average' with its
    ``ema_decay`` and the decay in use at ``step`` (lower during the warm-up)."""
    if ema_decay is None:
        return {"weights": "live"}
    return {"weights": "average", "ema_decay": ema_decay, "ema_decay_at_step": round(decay_at(step, ema_decay), 6)}


def _is_safetensors(path: Path) -> bool:
    """A safetensors header (8-byte length, then JSON), or a name that says safetensors (so
    that a damaged generator file is reported as one, not as a damaged checkpoint)."""
    with open(path, "rb") as f:
        head = f.read(9)
    return (len(head) == 9 and head[8:9] == b"{") or path.suffix.lower() == ".safetensors"


def _existing_file(path: PathLike) -> Path:
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"file not found: {path}")
    if not path.is_file():
        raise CheckpointError(f"not a file: {path}")
    return path
