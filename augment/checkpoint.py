"""Checkpoints (full training state) and generator files (weights + config, no pickle).

A checkpoint is one dict saved with ``torch.save`` and loaded with ``weights_only=True``:
``{"format": "augment.checkpoint", "format_version", "train_config", "generator", "critic",
"opt_g", "opt_d", "step", "rng", "elapsed", "log_window", "class_names", "source_kind", "source_size",
"source_channels"}`` plus ``"generator_ema"`` (the weight average) in runs with ``ema_decay``
(elapsed: training wall time in seconds, counted across resumes; log_window: per-step stats not
yet logged, ``{name: (m,)}``; the ``source_*`` keys: the training data's kind, [H, W] and
channels, ``augment.provenance``; older checkpoints lack them); RNG states are uint8 tensors. A
generator file is safetensors whose metadata carries ``format``, ``format_version`` and the
``model_config`` JSON, so it alone rebuilds the generator, and, when its run recorded them, the
``class_names`` and ``source_*`` keys of its training data (``generator_trained_on``: a file
without them was trained at 28x28). Both are written atomically.

Both readers check what they read before anything else uses it, and refuse a bad file in one
line (``CheckpointError``): a generator file's safetensors layer is checked by
``augment.safetensors_files`` (metadata size and depth before parsing, finite weights, digest)
its class names by ``augment.checks.class_names_problem`` and its training data's keys by
``augment.provenance.trained_on_problem``; a checkpoint's ``step``,
``elapsed``, RNG state and state dicts have their types and sizes checked, its nesting is
bounded and its tensors finite, so the trainer never sees a malformed one.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import pickle
import zipfile
from pathlib import Path
from typing import Optional, Union

import torch

from augment.checks import class_names_problem, is_integer, is_real
from augment.config import ModelConfig, TrainConfig, config_from_dict
from augment.device import resolve_device
from augment.errors import AugmentError, CheckpointError, ConfigError, one_line
from augment.fileio import PathLike, atomic_path, write_failed
from augment.gan.ema import decay_at
from augment.gan.models import Generator
from augment.provenance import TRAINED_ON_KEYS, DataSignature, parse_trained_on, signature, trained_on_problem
from augment.safetensors_files import FORMAT_VERSION, existing_file, read_safetensors, write_safetensors

CHECKPOINT_FORMAT = "augment.checkpoint"
GENERATOR_FORMAT = "augment.generator"
_REQUIRED_KEYS = ("train_config", "generator", "critic", "opt_g", "opt_d", "step", "rng")
MAX_STATE_DEPTH = 16  # nesting of a checkpoint's dicts and lists (an optimizer state is 4 deep)
CUDA_RNG_STATE_BYTES = 16  # a CUDA generator's state: Philox seed + offset (8 bytes each)


def save_checkpoint(path: PathLike, state: dict) -> None:
    """Atomically write a training-state dict (``Trainer.state_dict()``; see the module docstring)."""
    payload = {"format": CHECKPOINT_FORMAT, "format_version": FORMAT_VERSION, **state}
    with atomic_path(path) as tmp, open(tmp, "wb") as f:  # a Python file: a full disk is an OSError
        try:
            torch.save(payload, f)
        except RuntimeError as e:  # torch's own writer fails with RuntimeError
            raise write_failed(path, e) from None


def load_checkpoint(path: PathLike, map_location: Union[str, torch.device] = "cpu") -> dict:
    """Load and validate a checkpoint without unpickling code (``weights_only=True``).

    Returns the dict with ``train_config`` rebuilt as a ``TrainConfig``.
    """
    path = existing_file(path)
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
    _check_nesting(path, state)
    if not isinstance(state["train_config"], dict):
        raise CheckpointError(f"{path}: bad training config inside (not a dict)")
    try:
        state["train_config"] = TrainConfig.from_dict(state["train_config"])
    except AugmentError as e:
        raise CheckpointError(f"{path}: bad training config inside ({one_line(e)})") from None
    decay = state["train_config"].ema_decay
    if decay is not None and not isinstance(state.get("generator_ema"), dict):
        raise CheckpointError(f"{path}: trained with ema_decay={decay} but holds no weight average "
                              f"(generator_ema); the file is damaged or was edited")
    problem = _checkpoint_problem(state)
    if problem:
        raise CheckpointError(f"{path}: {problem}; the file is damaged or was edited")
    return state


@functools.lru_cache(maxsize=1)
def rng_state_bytes() -> dict:
    """The sizes of a noise generator's state, {device type: bytes}: MT19937 on the CPU, Philox
    on CUDA (measured when a GPU is present)."""
    cuda = torch.Generator("cuda").get_state().numel() if torch.cuda.is_available() else CUDA_RNG_STATE_BYTES
    return {"cpu": torch.Generator().get_state().numel(), "cuda": cuda}


def _check_nesting(path: Path, state: dict) -> None:
    """Walk the loaded checkpoint without recursion: containers at most ``MAX_STATE_DEPTH`` deep,
    every floating-point tensor finite."""
    todo = [(state, 0)]
    while todo:
        value, depth = todo.pop()
        if depth > MAX_STATE_DEPTH:
            raise CheckpointError(f"{path}: nested deeper than {MAX_STATE_DEPTH} levels; not an augment checkpoint")
        if isinstance(value, dict):
            todo.extend((v, depth + 1) for v in value.values())
        elif isinstance(value, (list, tuple)):
            todo.extend((v, depth + 1) for v in value)
        elif isinstance(value, torch.Tensor) and value.is_floating_point() and not bool(value.isfinite().all()):
            raise CheckpointError(f"{path}: holds weights or statistics that are NaN or infinite")


def _is_state_dict(value) -> bool:
    return isinstance(value, dict) and all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                           for k, v in value.items())


def _checkpoint_problem(state: dict) -> Optional[str]:
    """What is wrong with the parts of a loaded checkpoint that the trainer uses, or None."""
    step = state["step"]
    if not is_integer(step) or step < 0:
        return f"bad step {step!r} (a step is an integer >= 0)"
    elapsed = state.get("elapsed", 0.0)
    if not is_real(elapsed) or not math.isfinite(elapsed) or elapsed < 0:
        return f"bad elapsed {elapsed!r} (training seconds, finite and >= 0)"
    rng = state["rng"]
    noise = rng.get("noise") if isinstance(rng, dict) else None
    sizes = rng_state_bytes()
    if not isinstance(noise, torch.Tensor) or noise.dtype != torch.uint8 or noise.dim() != 1:
        return "bad RNG state (the noise generator's state is a 1-D uint8 tensor)"
    if noise.numel() not in sizes.values():
        shown = " or ".join(f"{n} on {kind}" for kind, n in sizes.items())
        return f"bad RNG state of {noise.numel()} bytes (a noise generator's state has {shown})"
    for key in ("generator", "critic", "generator_ema"):
        if key in state and not _is_state_dict(state[key]):
            return f"bad {key} weights (not a dict of named tensors)"
    for key in ("opt_g", "opt_d"):
        opt = state[key]
        if not (isinstance(opt, dict) and isinstance(opt.get("state"), dict)
                and isinstance(opt.get("param_groups"), list)):
            return f"bad optimizer state {key}"
    window = state.get("log_window", {})
    if not (isinstance(window, dict) and all(isinstance(k, str) and isinstance(v, torch.Tensor) and v.dim() == 1
                                             for k, v in window.items())):
        return "bad log_window (statistics not yet logged: named 1-D tensors)"
    best = state.get("best")
    if best is not None and not (isinstance(best, dict) and is_real(best.get("score"))
                                 and is_integer(best.get("step")) and best.get("weights") in ("live", "average")
                                 and _is_state_dict(best.get("state_dict"))):
        return "bad best generator (score, step, weights, state_dict)"
    names = state.get("class_names")
    if names is not None:
        problem = class_names_problem(names, state["train_config"].model.num_classes)
        if problem:
            return problem
    return trained_on_problem({k: state[k] for k in TRAINED_ON_KEYS if k in state})


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


def read_generator_file(path: PathLike) -> tuple[ModelConfig, dict, dict]:
    """(model config, state dict on CPU, metadata) of a safetensors generator file."""
    tensors, metadata = read_safetensors(path, GENERATOR_FORMAT, "generator")
    try:
        fields = json.loads(metadata["model_config"])
        if not isinstance(fields, dict):
            raise ConfigError(f"a JSON object, not {type(fields).__name__}")
        cfg = config_from_dict(ModelConfig, fields)
    except (KeyError, json.JSONDecodeError, AugmentError) as e:
        raise CheckpointError(f"{path}: bad model config in metadata ({one_line(e)})") from None
    problem = class_names_problem(_metadata_class_names(metadata), cfg.num_classes) \
        if "class_names" in metadata else None
    if problem:
        raise CheckpointError(f"{path}: bad class_names in metadata ({problem})")
    problem = trained_on_problem(parse_trained_on(metadata))
    if problem:
        raise CheckpointError(f"{path}: {problem} in metadata")
    return cfg, tensors, metadata


def _metadata_class_names(metadata: dict):
    """The parsed ``class_names`` of checked metadata (None when it is not JSON)."""
    try:
        return json.loads(metadata["class_names"])
    except json.JSONDecodeError:
        return None


def load_generator(path: PathLike, device: Union[str, torch.device] = "cpu") -> Generator:
    """A generator in eval mode on ``device`` ('cpu', 'cuda', 'cuda:N', 'auto' or a
    ``torch.device``) from a generator file (.safetensors) or a training checkpoint."""
    device = resolve_device(device)
    path = existing_file(path)
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
        **({"class_names": list(names)} if names else {}), **{k: ckpt[k] for k in TRAINED_ON_KEYS if k in ckpt}})


def class_names(metadata: dict, num_classes: int) -> list:
    """The class names a generator or classifier file's metadata records (``class_names``, a
    JSON list of C strings, checked by its reader), else "0".."C-1" (files written before names
    travelled, or names that are not C valid ones)."""
    names = _metadata_class_names(metadata) if "class_names" in metadata else None
    if names is not None and class_names_problem(names, num_classes) is None:
        return names
    return [str(c) for c in range(num_classes)]


def generator_class_names(path: PathLike) -> list:
    """The class names of a generator file or a training checkpoint's run."""
    return list(generator_trained_on(path).class_names)


def generator_trained_on(path: PathLike) -> DataSignature:
    """The data a generator file or a training checkpoint's run was trained on: its kind (None
    where the file does not say), class names, size [H, W] (28x28 where the file does not say)
    and channels (``augment.provenance``)."""
    path = existing_file(path)
    if _is_safetensors(path):
        cfg, _, metadata = read_generator_file(path)
        return signature(parse_trained_on(metadata), class_names(metadata, cfg.num_classes), cfg.channels)
    state = load_checkpoint(path)
    cfg = state["train_config"].model
    names = state.get("class_names")
    return signature({k: state[k] for k in TRAINED_ON_KEYS if k in state},
                     class_names({"class_names": json.dumps(names)} if names else {}, cfg.num_classes), cfg.channels)


def generator_step(path: PathLike) -> Optional[int]:
    """The training step a generator file was saved at (its ``step`` metadata); None when the
    file does not say (written by hand or by an older version)."""
    _, _, metadata = read_generator_file(path)
    if "step" not in metadata:
        return None
    step = metadata["step"]
    if not (step.isascii() and step.isdigit()):
        raise CheckpointError(f"{path}: bad step {step[:40]!r} in metadata (a step is an integer >= 0)")
    return int(step)


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
