"""What data a model learnt from, as its file records it, and whether a model fits other data.

A generator file, a training checkpoint and a classifier file record the data they were trained on
beside their ``class_names``: ``source_kind`` ('mnist', 'idx', 'folder' or 'npz', the kinds of
``augment.data.sources``), ``source_size`` [H, W] and ``source_channels`` of its images
(``TRAINED_ON_KEYS``). A file written before these keys travelled reads as kind unknown (None),
28x28 and its model's channels; the shipped generator and evaluator are such files, known by their
SHA-256 to be MNIST's (``MNIST``), and are read as such (``augment.synthetic.shipped``,
``augment.evaluation.classifier_files``).

The rule (``fit_problem``): a model fits data when

1. a model of MNIST (kind 'mnist': MNIST's four checksummed files, so MNIST's ten digits at 28x28)
   meets data of kind 'mnist' (or of a kind nobody recorded). The class names "0".."9", ten
   classes and 28x28 do not make data MNIST's: Fashion-MNIST as an IDX pair has all three, and
   only the checksums tell the digits from anything else;
2. both have as many classes;
3. both name their classes alike, where both names mean something (names other than the numbers
   "0".."C-1", or MNIST's digits: an IDX pair's numbers say nothing of what its classes are);
4. both have as many channels.

The image size is no part of the rule: the models take every size at 32x32. It is what dumps and
PIL items of a generator are made at (``augment.synthetic``). ``check_fits`` raises the rule's
one-line refusal with the fix in it: a classifier, or a generator, trained on the data.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Optional, Sequence

from augment.checks import is_integer
from augment.config import DATASETS
from augment.errors import ConfigError

if TYPE_CHECKING:
    import torch

TRAINED_ON_KEYS = ("source_kind", "source_size", "source_channels")
LEGACY_SIZE = (28, 28)  # the size a file without source_size was trained at (MNIST's; every such file so far)
MAX_IMAGE_SIDE = 4096  # pixels: bounds a recorded size and an image_size asked for
ROLES = ("evaluator", "generator", "judge")


def short(name: str, chars: int = 16) -> str:
    """A class name cut to ``chars`` characters for a one-line message."""
    return name if len(name) <= chars else name[:chars - 3] + "..."


def numbered(names: Sequence[str]) -> bool:
    """Whether ``names`` are "0".."C-1", the names of classes nobody named."""
    return list(names) == [str(c) for c in range(len(names))]


@dataclass(frozen=True)
class DataSignature:
    """What kind of data a source holds, or a model was trained on.

    Args:
        kind: 'mnist', 'idx', 'folder' or 'npz'; None where a file does not say.
        class_names: the C class names (numbered "0".."C-1" where the data names none).
        size: the images' (H, W).
        channels: the images' channels.
        where: the source's path, for messages (not compared).
    """

    kind: Optional[str]
    class_names: tuple
    size: tuple = LEGACY_SIZE
    channels: int = 1
    where: str = field(default="", compare=False)

    @classmethod
    def of_images(cls, kind: Optional[str], class_names: Sequence[str], images: torch.Tensor,
                  where: str | os.PathLike = "") -> DataSignature:
        """What ``images``, ``(N, H, W)`` grayscale or ``(N, C, H, W)``, of ``class_names`` from a
        source of ``kind`` at ``where`` are."""
        channels = 1 if images.dim() == 3 else int(images.shape[1])
        return cls(kind, tuple(class_names), tuple(images.shape[-2:]), channels, str(where))

    @property
    def is_mnist(self) -> bool:
        return self.kind == "mnist"

    @property
    def names_mean_something(self) -> bool:
        """Named classes, or MNIST's digits (an unnamed IDX pair's numbers say nothing)."""
        return self.is_mnist or not numbered(self.class_names)

    def describe(self) -> str:
        """E.g. "idx data (10 classes 0..9, 28x28)" (its path is in the fix of a refusal)."""
        names = self.class_names
        more = ", ..." if len(names) > 3 else ""
        shown = f"{names[0]}..{names[-1]}" if numbered(names) else ", ".join(short(n) for n in names[:3]) + more
        kind = "data of unknown kind" if self.kind is None else f"{self.kind} data"
        colour = "" if self.channels == 1 else f"x{self.channels}"
        return f"{kind} ({len(names)} classes {shown}, {self.size[0]}x{self.size[1]}{colour})"

    def metadata(self) -> dict:
        """The ``TRAINED_ON_KEYS`` a model file records of the data it was trained on."""
        return {"source_kind": self.kind, "source_size": list(self.size), "source_channels": self.channels}


MNIST = DataSignature("mnist", tuple(str(c) for c in range(10)), (28, 28), 1)


def unknown(num_classes: int, channels: int) -> DataSignature:
    """The data of a model nobody recorded it of (a module, not a file): ``num_classes``
    numbered classes, kind unknown, 28x28."""
    return DataSignature(None, tuple(str(c) for c in range(num_classes)), LEGACY_SIZE, channels)


def trained_on_problem(values: dict) -> Optional[str]:
    """What is wrong with the ``TRAINED_ON_KEYS`` of ``values`` (parsed from a file; absent
    keys are fine), or None."""
    kind, size, channels = (values.get(k) for k in TRAINED_ON_KEYS)
    if "source_kind" in values and kind is not None and kind not in DATASETS:
        return f"bad source_kind {str(kind)[:40]!r} (one of {', '.join(DATASETS)})"
    if "source_size" in values and not (isinstance(size, list) and len(size) == 2 and all(
            is_integer(s) and 1 <= s <= MAX_IMAGE_SIDE for s in size)):
        return f"bad source_size {str(size)[:40]} ([height, width], each 1..{MAX_IMAGE_SIDE})"
    if "source_channels" in values and not (is_integer(channels) and 1 <= channels <= 4):
        return f"bad source_channels {str(channels)[:40]} (1..4)"
    return None


def parse_trained_on(metadata: dict) -> dict:
    """The ``TRAINED_ON_KEYS`` of a safetensors file's metadata (JSON strings), parsed; a key
    that is not JSON comes back as its text (``trained_on_problem`` refuses it)."""
    values = {}
    for key in TRAINED_ON_KEYS:
        if key in metadata:
            try:
                values[key] = json.loads(metadata[key])
            except json.JSONDecodeError:
                values[key] = metadata[key]
    return values


def signature(values: dict, class_names: Sequence[str], channels: int) -> DataSignature:
    """The data a model was trained on from its checked ``TRAINED_ON_KEYS`` ``values`` (absent:
    kind None, ``LEGACY_SIZE``, the model's ``channels``) and its class names."""
    size = values.get("source_size")
    return DataSignature(values.get("source_kind"), tuple(class_names),
                         tuple(size) if size is not None else LEGACY_SIZE, values.get("source_channels", channels))


def image_size(value, what: str = "image_size") -> tuple:
    """An image size asked for: an int (square) or (height, width), each 1..``MAX_IMAGE_SIDE``,
    as a tuple (H, W); a one-line ConfigError otherwise."""
    sides = [value, value] if is_integer(value) else value
    if not (isinstance(sides, (list, tuple)) and len(sides) == 2
            and all(is_integer(s) and 1 <= s <= MAX_IMAGE_SIDE for s in sides)):
        raise ConfigError(f"{what} must be a side or (height, width), each 1..{MAX_IMAGE_SIDE}, got {value!r}"[:200])
    return int(sides[0]), int(sides[1])


def fit_problem(model: DataSignature, data: DataSignature) -> Optional[str]:
    """Why a model trained on ``model`` does not fit ``data`` (the module docstring's rule), or
    None when it fits."""
    if model.is_mnist and data.kind is not None and not data.is_mnist:
        return "it fits only MNIST's digits (--dataset mnist: MNIST's checksummed files)"
    if len(model.class_names) != len(data.class_names):
        return f"it has {len(model.class_names)} classes"
    if model.names_mean_something and data.names_mean_something and model.class_names != data.class_names:
        differ = next(c for c, (a, b) in enumerate(zip(model.class_names, data.class_names)) if a != b)
        return f"its class {differ} is {short(model.class_names[differ])!r}, not {short(data.class_names[differ])!r}"
    if model.channels != data.channels:
        return f"it takes {model.channels}-channel images"
    return None


def check_fits(role: str, name: str, model: DataSignature, data: DataSignature, how: str) -> None:
    """Raise a one-line ConfigError, with the fix, unless the model ``name`` trained on ``model``
    fits ``data``.

    Args:
        role: 'evaluator' (a classifier that scores ``data``), 'generator' (one that makes images
            of ``data``'s classes) or 'judge' (a quality filter's classifier; ``data`` is then the
            generator's training data).
        name: what the model is, e.g. "the shipped evaluator".
        model: the data the model was trained on.
        data: the data it is used with.
        how: how a user passes another model, FILE standing for its path, e.g. "--classifier FILE".
    """
    if role not in ROLES:
        raise ConfigError(f"role must be one of {', '.join(ROLES)}, got {role!r}")
    problem = fit_problem(model, data)
    if problem is None:
        return
    source = f"--data-dir {data.where or 'DATA'} --dataset {data.kind or 'KIND'}"
    fix = {
        "evaluator": f"train a classifier of it (augment train-classifier {source} -o FILE) and pass it ({how})",
        "generator": f"train a generator of it (augment train {source}) and pass its generator.safetensors ({how})",
        "judge": f"judge with a classifier of the generator's data (augment train-classifier --data-dir DATA -o FILE; "
                 f"{how})",
    }[role]
    used_with = "the generator's training data, " if role == "judge" else ""
    raise ConfigError(f"{name} does not fit {used_with}{data.describe()}: {problem}; {fix}")
