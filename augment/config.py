"""Frozen configuration dataclasses: one model config, one training config.

The training config holds the model config, flows unchanged from the CLI to the trainer and is
saved inside every checkpoint, so a checkpoint alone rebuilds its models. Field metadata
(``help``, ``min``, ``max``, ``max_open``, ``choices``) is the single source for the CLI's
options.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import numbers
import os
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Optional

from augment.checks import is_integer
from augment.errors import ConfigError

IMAGE_SIZE = 32  # the models' resolution in pixels (square); 28x28 MNIST is resized to it
CRITIC_AUGMENT_POLICIES = ("none", "translation", "cutout", "translation,cutout")
CLASS_ORDERS = ("index", "permuted")
CRITIC_LABELS = ("channels", "projection")
REAL_SAMPLINGS = ("auto", "uniform", "balanced")
KEEP_BEST_METRICS = ("agreement", "class_frechet", "coverage")  # in-training evaluation scores (lower Frechet wins)
DATASETS = ("mnist", "idx", "folder", "npz")  # the kinds of data source (augment.data.sources)
SAMPLE_FORMATS = ("npz", "folder", "idx", "dump")  # what `augment evaluate --samples` reads
LONG_TAIL_N_MAX = 5000  # images of the largest class of a long-tailed subset (MNIST-LT)
# caps that keep a model a file or an option describes within memory (the reference: widths 128/64)
MAX_CLASSES, MAX_WIDTH = 10_000, 1024


def _opt(default: Any, help: str, **bounds: Any) -> Any:
    return field(default=default, metadata={"help": help, **bounds})


@dataclass(frozen=True)
class ModelConfig:
    """Sizes of the generator and the critic; defaults are the reference design.

    Images are ``channels x 32 x 32``. The generator's widths are ``4w, 2w, w`` and the
    critic's ``w, 2w, 4w`` for ``g_width``/``d_width`` ``w``.
    """

    num_classes: Optional[int] = _opt(10, "number of classes (default: from the labels)", min=2, max=MAX_CLASSES)
    z_dim: int = _opt(100, "latent dimension", min=1, max=4096)
    embed_dim: int = _opt(10, "label-embedding dimension", min=1, max=4096)
    channels: int = _opt(1, "image channels", min=1, max=4)
    g_width: int = _opt(128, "generator base width (reference: 128 -> 512/256/128)", min=1, max=MAX_WIDTH)
    d_width: int = _opt(64, "critic base width (reference: 64 -> 64/128/256)", min=1, max=MAX_WIDTH)
    critic_label: str = _opt(
        "channels", "how the critic sees the label: 'channels' (the reference: the label's embedding as extra "
        "input channels) or 'projection' (Miyato & Koyama 2018: the inner product of a label embedding with the "
        "critic's pooled features, added to its score)", choices=CRITIC_LABELS)

    def __post_init__(self) -> None:
        _check_bounds(self)


@dataclass(frozen=True)
class SubsetSpec:
    """Which images of a split per class: all (no option), ``n_per_class`` of each class, a
    long-tailed profile (``imbalance_ratio`` rho: the class of rank r keeps
    ``n_max * rho^(-r/(C-1))`` rounded half up, ranks in class order or a seeded permutation), or explicit
    ``class_counts``. The images are drawn by ``augment.data.subsets.subset_indices``: seeded and nested
    (for one seed, a class's smaller subset is a prefix of its larger one, whatever the option).
    """

    n_per_class: Optional[int] = _opt(None, "train on a seeded subset of N images per class", min=1)
    imbalance_ratio: Optional[float] = _opt(
        None, "train on a seeded long-tailed subset (MNIST-LT): class of rank r keeps "
        "n_max * ratio^(-r/(C-1)) images (rounded half up), so the largest class has ratio times the smallest's",
        min=1.0)
    n_max: int = _opt(LONG_TAIL_N_MAX, "images of the largest class of a long-tailed subset "
                      "(with --imbalance-ratio)", min=1)
    class_counts: Optional[tuple] = _opt(
        None, "train on a seeded subset with these images per class, e.g. 500,300,...,5 (one count "
        "per class, in class order)", kind="int_list", metavar="N,N,...")
    class_order: str = _opt(
        "index", "which classes are frequent in a long-tailed subset: 'index' (class 0 the largest), "
        "'permuted' (a seeded permutation of the classes)", choices=CLASS_ORDERS)

    def __post_init__(self) -> None:
        _check_bounds(self)
        given = [name for name in ("n_per_class", "imbalance_ratio", "class_counts") if getattr(self, name) is not None]
        if len(given) > 1:
            raise ConfigError(f"choose one subset option, not {' and '.join(given)}")
        if self.imbalance_ratio is None and (self.n_max != LONG_TAIL_N_MAX or self.class_order != "index"):
            raise ConfigError("n_max and class_order shape a long-tailed subset: they go with imbalance_ratio")

    @property
    def is_all(self) -> bool:
        return self.n_per_class is None and self.imbalance_ratio is None and self.class_counts is None

    @property
    def is_long_tailed(self) -> bool:
        """Whether its classes have different counts (a long-tailed profile or uneven counts)."""
        if self.imbalance_ratio is not None:
            return self.imbalance_ratio > 1
        return self.class_counts is not None and len(set(self.class_counts)) > 1

    def label(self) -> str:
        """A short name: 'all', 'n100', 'lt100' (rho 100, index order, n_max 5000), 'lt100-n2000-perm',
        'counts-500-300-...'."""
        if self.n_per_class is not None:
            return f"n{self.n_per_class}"
        if self.imbalance_ratio is not None:
            extra = ("" if self.n_max == LONG_TAIL_N_MAX else f"-n{self.n_max}") + \
                ("" if self.class_order == "index" else "-perm")
            return f"lt{self.imbalance_ratio:g}{extra}"
        if self.class_counts is not None:
            return "counts-" + "-".join(str(n) for n in self.class_counts)
        return "all"


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run needs; ``model`` holds the architecture, ``subset`` the training images."""

    model: ModelConfig = field(default_factory=ModelConfig)
    data_dir: Optional[str] = _opt(None, "the data: an IDX directory (default: $AUGMENT_DATA, else "
                                   "~/.cache/augment/mnist), an image folder or an .npz file", metavar="PATH")
    dataset: str = _opt("mnist", "what --data-dir holds: 'mnist' (MNIST's IDX files, SHA-256 checked), 'idx' (any "
                        "IDX pair), 'folder' (a folder per class of PNG/JPEG/BMP), 'npz' (x, y, class_names)",
                        choices=DATASETS)
    subset: SubsetSpec = field(default_factory=SubsetSpec)  # which training images (all by default)
    epochs: int = _opt(100, "passes over the training set", min=1)
    max_steps: Optional[int] = _opt(None, "stop after this many generator steps (overrides epochs)", min=1)
    max_minutes: Optional[float] = _opt(
        None, "also stop once training has run this many minutes of wall time (counted across "
        "resumes; checked after every step)", min=0.0)
    batch_size: int = _opt(64, "images per batch", min=2, max=65_536)
    n_critic: int = _opt(5, "critic steps per generator step", min=1, max=100)
    lr: float = _opt(1e-4, "Adam learning rate (both nets, unless --critic-lr)", min=0.0)
    critic_lr: Optional[float] = _opt(None, "the critic's Adam learning rate (default: --lr); a faster critic "
                                      "(two time-scale update rule) can take fewer critic steps", min=0.0)
    beta1: float = _opt(0.5, "Adam beta1", min=0.0, max=1.0, max_open=True)
    beta2: float = _opt(0.9, "Adam beta2", min=0.0, max=1.0, max_open=True)
    gp_weight: float = _opt(10.0, "gradient-penalty weight lambda", min=0.0)
    ema_decay: Optional[float] = _opt(
        None, "also keep an exponential moving average of the generator's weights with this "
        "decay per generator step (e.g. 0.999; the warm-up min(decay, (1+t)/(10+t)) reaches "
        "0.999 at step 8,990); sample grids and the exported generator use the average",
        min=0.0, max=1.0, max_open=True)
    init_generator: Optional[str] = _opt(
        None, "start the generator from this generator file (.safetensors, e.g. the shipped "
        "augment/weights/generator.safetensors; same model config) instead of a random init; "
        "the critic and both optimizers start fresh. Read once, when the run starts", metavar="FILE")
    critic_warmup: int = _opt(
        0, "generator steps at the start that update only the critic (n_critic updates each; "
        "the generator's weights stay fixed): lets a fresh critic catch up with an "
        "--init-generator", min=0)
    critic_augment: str = _opt(
        "none", "DiffAugment: random differentiable transforms of every image the critic sees "
        "(shifts of up to 1/8 of the side, a half-side cutout), for small training sets",
        choices=CRITIC_AUGMENT_POLICIES)
    real_batches: str = _opt(
        "fresh", "'fresh': a new real batch per critic step (WGAN-GP paper); "
        "'shared': the n_critic steps reuse one batch (reference loop)",
        choices=("fresh", "shared"))
    real_sampling: str = _opt(
        "auto", "how the critic's real batches draw images: 'uniform' (every image equally often: the "
        "data's own class frequencies), 'balanced' (every class equally often; rare images repeat), "
        "'auto' (balanced for a long-tailed subset, where it made far better rare classes; uniform otherwise; "
        "a long-tailed run saves it resolved)", choices=REAL_SAMPLINGS)
    step_impl: str = _opt(
        "auto", "'eager': the reference computation op by op; 'fast': the same function with "
        "batched forwards (and CUDA graphs on a GPU); 'auto': fast on a GPU, eager on a CPU "
        "(where batching measured no faster); 'explicit-gp': the fast step with the penalty's input gradient "
        "written out (one backward, no double backward; see --compile-step)",
        choices=("auto", "eager", "fast", "explicit-gp"))
    compile_step: bool = _opt(
        False, "with --step-impl explicit-gp: compile the critic's and generator's updates with torch.compile "
        "(falls back, with one warning, where compilation is unavailable)")
    seed: int = _opt(0, "seed for data order, noise and initialisation", min=0)
    device: str = _opt("auto", "'auto', 'cpu', 'cuda' or 'cuda:N'", kind="device")
    log_every: int = _opt(50, "generator steps between log lines", min=1)
    sample_every: int = _opt(500, "generator steps between sample grids", min=1)
    checkpoint_every: int = _opt(1000, "generator steps between checkpoints", min=1)
    tensorboard: bool = _opt(True, "also log to TensorBoard when it is installed")
    eval_every: Optional[int] = _opt(
        None, "generator steps between in-training evaluations of the generator (and its weight average): "
        "agreement, per-class Frechet and coverage by a classifier of the data, into metrics.jsonl, "
        "TensorBoard and the progress bar", min=1)
    eval_per_class: int = _opt(100, "samples per class of each in-training evaluation", min=10, max=100_000)
    eval_classifier: Optional[str] = _opt(
        None, "the classifier that judges in-training evaluations (a file from 'augment train-classifier'); "
        "default: the shipped MNIST evaluator on MNIST, else one trained on the run's data when the run "
        "starts (and said so)", metavar="FILE")
    keep_best: Optional[str] = _opt(
        None, "with --eval-every: export the generator (live or average) that scored best by this metric at "
        "an evaluation instead of the last weights (the last stay in generator_last.safetensors)",
        choices=KEEP_BEST_METRICS)

    def __post_init__(self) -> None:
        _check_bounds(self)
        check_device_name(self.device)
        if self.keep_best is not None and self.eval_every is None:
            raise ConfigError("keep_best picks among in-training evaluations: it goes with eval_every")
        if self.step_impl == "explicit-gp" and self.model.critic_label != "channels":
            raise ConfigError("the explicit-gp step writes out the reference critic's input gradient: it goes with "
                              "critic_label 'channels'")
        if self.compile_step and self.step_impl != "explicit-gp":
            raise ConfigError("compile_step compiles the explicit-gp step: it goes with step_impl 'explicit-gp'")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        return config_from_dict(cls, d)


# Named starting points for ``augment train --preset``: settings that replace the defaults (options
# given on the command line still win). 'cpu' is the CPU recipe: the best quality per CPU-minute in
# the trials of experiments/results/cpu_recipe/ at the longest horizon measured for all candidates
# (quarter widths, 2 critic updates per generator update with a 3x faster critic, a weight average,
# in-training evaluation keeping the best weights).
TRAIN_PRESETS = {
    "cpu": {"model": {"g_width": 32, "d_width": 16}, "n_critic": 2, "critic_lr": 3e-4, "ema_decay": 0.999,
            "eval_every": 250, "keep_best": "agreement"},
}


def preset_config(name: str, **overrides: Any) -> TrainConfig:
    """The ``TrainConfig`` of preset ``name`` (``TRAIN_PRESETS``) with ``overrides`` (TrainConfig
    fields; ``model`` and ``subset`` as dicts of their fields, merged into the preset's)."""
    if name not in TRAIN_PRESETS:
        raise ConfigError(f"unknown preset {name!r}; choose from {', '.join(TRAIN_PRESETS)}")
    merged = {**TRAIN_PRESETS[name], **overrides}
    for nested in ("model", "subset"):
        merged[nested] = {**TRAIN_PRESETS[name].get(nested, {}), **overrides.get(nested, {})}
    return config_from_dict(TrainConfig, merged)


def config_from_dict(cls: type, d: dict) -> Any:
    """Rebuild a config dataclass from a dict, refusing unknown keys with a clear error."""
    if not isinstance(d, dict):
        raise ConfigError(f"{cls.__name__} must be a mapping, got {type(d).__name__}")
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - names)
    if unknown:
        raise ConfigError(f"unknown {cls.__name__} field(s): {', '.join(unknown)}")
    kwargs = dict(d)
    for f in dataclasses.fields(cls):  # nested configs (TrainConfig's model and subset) from their dicts
        nested = field_kinds(cls)[f.name][0]
        if dataclasses.is_dataclass(nested) and isinstance(kwargs.get(f.name), dict):
            kwargs[f.name] = config_from_dict(nested, kwargs[f.name])
    try:
        return cls(**kwargs)
    except TypeError as e:
        raise ConfigError(f"invalid {cls.__name__}: {e}") from None


DEVICE_NAMES = "'auto', 'cpu', 'cuda' or 'cuda:N'"


def check_device_name(name: Any) -> str:
    """``name`` if it is one of the device names the library runs on (``DEVICE_NAMES``; an
    integer N >= 0 after 'cuda:'), else ``ConfigError``. Whether CUDA is present is checked
    where a device is used (``augment.device.resolve_device``)."""
    ok = isinstance(name, str) and (name in ("auto", "cpu", "cuda") or (
        name.startswith("cuda:") and name[5:].isdigit() and name[5:].isascii()))
    if not ok:
        raise ConfigError(f"device must be {DEVICE_NAMES}, got {name!r}")
    return name


def _int_tuple(value: Any, name: str) -> tuple:
    """A sequence of integers >= 0 (not bools, not a string) as a tuple of ints; ConfigError otherwise."""
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
        raise ConfigError(f"{name} must be a list of integers, got {value!r}")
    if not value or any(not is_integer(v) or v < 0 for v in value):
        raise ConfigError(f"{name} must be a non-empty list of integers >= 0, got {list(value)!r}")
    return tuple(int(v) for v in value)


_KINDS = {int: (numbers.Integral, "an integer"), float: (numbers.Real, "a number"),
          str: (str, "a string"), bool: (bool, "True or False"), tuple: (tuple, "a list")}


@functools.lru_cache(maxsize=None)
def field_kinds(cls: type) -> dict:
    """The kind of each field, for the checks here and the CLI's option types:
    ``{field name: (type, accepts None)}`` of a config dataclass, from its resolved type hints
    (``Optional[int]``, ``int | None`` and ``int`` alike), never from the annotation's text."""
    kinds = {}
    for name, hint in typing.get_type_hints(cls).items():
        args = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else (hint,)
        base = [a for a in args if a is not type(None)]
        if len(base) != 1:
            raise TypeError(f"{cls.__name__}.{name}: a config field has one type (and maybe None), not {hint}")
        kinds[name] = (base[0], len(base) < len(args))
    return kinds


def _check_bounds(cfg: Any) -> None:
    """Each field's type from its type hint (ints as int, numbers as finite floats, paths as str;
    bools are not numbers; nested configs as themselves), then its ``min``/``max``/``choices``;
    a ``ConfigError`` naming the field otherwise. Values are stored canonical (plain JSON-able)."""
    for f in dataclasses.fields(cfg):
        kind, optional = field_kinds(type(cfg))[f.name]
        value = getattr(cfg, f.name)
        if value is None:
            if not optional:
                raise ConfigError(f"{f.name} must be given (None is not a value of it)")
            continue
        if dataclasses.is_dataclass(kind):
            if not isinstance(value, kind):
                raise ConfigError(f"{f.name} must be a {kind.__name__}, got {type(value).__name__}")
            continue
        if f.metadata.get("kind") == "int_list":
            object.__setattr__(cfg, f.name, _int_tuple(value, f.name))
            continue
        accepted, words = _KINDS[kind]
        if kind is str and isinstance(value, os.PathLike):
            value = os.fspath(value)
        if not isinstance(value, accepted) or (isinstance(value, bool) and kind is not bool):
            raise ConfigError(f"{f.name} must be {words}, got {value!r}")
        value = kind(value)  # e.g. numpy ints, Paths: plain JSON-able values
        if kind is float and not math.isfinite(value):
            raise ConfigError(f"{f.name} must be a finite number, got {value!r}")
        object.__setattr__(cfg, f.name, value)
        lo, hi = f.metadata.get("min"), f.metadata.get("max")
        choices, hi_open = f.metadata.get("choices"), f.metadata.get("max_open", False)
        if lo is not None and value < lo or hi is not None and (value >= hi if hi_open else value > hi):
            raise ConfigError(f"{f.name}={value!r} is outside [{lo}, {hi}{')' if hi_open else ']'}")
        if choices is not None and value not in choices:
            raise ConfigError(f"{f.name}={value!r} is not one of {', '.join(choices)}")
