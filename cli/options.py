"""Click options generated from the config dataclasses, so the CLI never restates defaults."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any, Callable

import click

from augment.config import DATASETS, TrainConfig, check_device_name, field_kinds
from augment.errors import ConfigError
from augment.provenance import image_size


class DeviceName(click.ParamType):
    """'auto', 'cpu', 'cuda' or 'cuda:N' (``augment.config.check_device_name``); anything else is
    a usage error. Whether CUDA is present is the library's check, when the device is used."""

    name = "DEVICE"

    def convert(self, value: Any, param: Any, ctx: Any) -> str:
        try:
            return check_device_name(value)
        except ConfigError as e:
            self.fail(str(e).replace("device must be", "must be"), param, ctx)


DEVICE = DeviceName()


class IntList(click.ParamType):
    """'5000,3000,5' -> (5000, 3000, 5): integers >= 0, comma-separated; anything else is a usage error."""

    name = "N,N,..."

    def convert(self, value: Any, param: Any, ctx: Any) -> tuple:
        if isinstance(value, tuple):
            return value
        try:
            numbers = tuple(int(t) for t in str(value).split(",") if t.strip())
        except ValueError:
            self.fail(f"{value!r} is not a comma-separated list of integers", param, ctx)
        if not numbers or any(n < 0 for n in numbers):
            self.fail(f"{value!r} must list integers >= 0", param, ctx)
        return numbers


INT_LIST = IntList()


class Count(click.ParamType):
    """A count >= ``minimum``: '60000', '60_000' or '6e4' (a number that is a whole count)."""

    name = "N"

    def __init__(self, minimum: int = 1):
        self.minimum = minimum

    def convert(self, value: Any, param: Any, ctx: Any) -> int:
        if isinstance(value, int) and not isinstance(value, bool):
            n = value
        else:
            text = str(value).replace("_", "").strip()
            try:
                n = int(text)
            except ValueError:
                try:
                    f = float(text)
                except ValueError:
                    self.fail(f"{value!r} is not a count", param, ctx)
                if not f.is_integer():
                    self.fail(f"{value!r} is not a whole count", param, ctx)
                n = int(f)
        if n < self.minimum:
            self.fail(f"{value!r} is below {self.minimum}", param, ctx)
        return n


class ImageSize(click.ParamType):
    """'28' (square) or '64x48' (height x width) -> (H, W), each side 1..4096
    (``augment.provenance.image_size``); anything else is a usage error."""

    name = "N|HxW"

    def convert(self, value: Any, param: Any, ctx: Any) -> tuple:
        if isinstance(value, tuple):
            return value
        try:
            sides = [int(t) for t in str(value).lower().split("x")]
        except ValueError:
            self.fail(f"{value!r} is not N or HxW (e.g. 28 or 64x48)", param, ctx)
        try:
            return image_size(sides[0] if len(sides) == 1 else sides, "the size")
        except ConfigError as e:
            self.fail(str(e), param, ctx)


IMAGE_SIZE = ImageSize()


def image_size_option(what: str) -> Callable:
    """``--image-size N|HxW``: the size of ``what``; default the generator's training data's
    (recorded in its file; 28x28 for MNIST and for files that do not say)."""
    return click.option("--image-size", type=IMAGE_SIZE, default=None, metavar="N|HxW",
                        help=f"size of {what}: N (square) or HxW, e.g. 64x48  [default: the size of the images "
                             f"the generator was trained on, as its file records; 28x28 for MNIST's]")


class ChoiceList(click.ParamType):
    """One or more of ``choices``, comma-separated ('idx,npz'); the option may also repeat."""

    name = "LIST"

    def __init__(self, choices: tuple):
        self.choices = choices

    def convert(self, value: Any, param: Any, ctx: Any) -> tuple:
        if isinstance(value, tuple):
            return value
        items = tuple(t.strip().lower() for t in str(value).split(",") if t.strip())
        bad = [t for t in items if t not in self.choices]
        if not items or bad:
            self.fail(f"{value!r}: choose from {', '.join(self.choices)}", param, ctx)
        return items


class FiniteFloatRange(click.FloatRange):
    """``click.FloatRange`` that also refuses NaN and infinities (which compare False with every bound)."""

    def convert(self, value: Any, param: Any, ctx: Any) -> float:
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return number


def quality_filter_options(fn: Callable) -> Callable:
    """``--min-confidence P``, ``--filter-classifier FILE``, ``--max-attempts N`` (quality-filtered sampling)."""
    fn = click.option("--max-attempts", type=click.IntRange(1, 1000), default=16, show_default=True,
                      help="with --min-confidence: latents tried per image before the best-scored is kept")(fn)
    fn = click.option("--filter-classifier", type=click.Path(dir_okay=False, path_type=Path), default=None,
                      help="with --min-confidence: the judge (a classifier file; default the shipped evaluator)")(fn)
    return click.option("--min-confidence", type=FiniteFloatRange(0, 1, min_open=True, max_open=True), default=None,
                        help="keep an image only if a judge classifier labels it as its class with at least this "
                             "probability; others are redrawn from new latents, the same ones every time")(fn)


def quality_filter_from(min_confidence, filter_classifier, max_attempts):
    """The ``QualityFilter`` the options ask for (its judge loaded on the CPU; the dataset moves it
    to its device), or None."""
    if min_confidence is None:
        if filter_classifier is not None:
            raise click.UsageError("--filter-classifier needs --min-confidence")
        return None
    from augment.evaluation.classifier_files import quality_filter  # loads torch: not at `augment --help`

    return quality_filter(min_confidence, filter_classifier, max_attempts)


def _click_type(cls: type, f: dataclasses.Field) -> Any:
    meta = f.metadata
    if meta.get("kind") == "device":
        return DEVICE
    if meta.get("kind") == "int_list":
        return INT_LIST
    if "choices" in meta:
        return click.Choice(meta["choices"])
    base = field_kinds(cls)[f.name][0]
    if base is int:
        return click.IntRange(meta.get("min"), meta.get("max"))
    if base is float:
        return FiniteFloatRange(meta.get("min"), meta.get("max"), max_open=meta.get("max_open", False))
    return base


_TRAIN_FIELDS = {f.name: f for f in dataclasses.fields(TrainConfig)}


def dataset_option(fn: Callable) -> Callable:
    """``--dataset KIND``, the same on every command that reads real data; default None: the
    kind is recognised from the path (``augment.data.sources.source_kind``; ``--dataset`` wins)."""
    return click.option("--dataset", type=click.Choice(DATASETS), default=None,
                        help=f"{_TRAIN_FIELDS['dataset'].metadata['help']}  [default: recognised from the path]")(fn)


def data_options(fn: Callable) -> Callable:
    """``--data-dir PATH`` and ``--dataset KIND``: the same two options, with the same help, on
    every command that reads real data."""
    fn = dataset_option(fn)
    return click.option("--data-dir", type=click.Path(path_type=Path), default=None, metavar="PATH",
                        help=_TRAIN_FIELDS["data_dir"].metadata["help"])(fn)


def config_options(cls: type, prefix: str = "", skip: tuple = (), defaults: dict | None = None
                   ) -> Callable:
    """Decorator adding one ``--field-name`` option per field of a config dataclass.

    ``defaults`` replaces a field's default on the command line (e.g. None = "infer")."""
    defaults = defaults or {}

    def decorate(fn: Callable) -> Callable:
        for f in reversed(dataclasses.fields(cls)):
            if f.name in skip or "help" not in f.metadata:  # nested configs carry no help
                continue
            kind = _click_type(cls, f)
            default = defaults.get(f.name, f.default)
            name = "--" + (prefix + f.name).replace("_", "-")
            if kind is bool:
                opt = click.option(f"{name}/--no-{(prefix + f.name).replace('_', '-')}",
                                   prefix + f.name, default=default, help=f.metadata["help"])
            else:
                opt = click.option(name, prefix + f.name, type=kind, default=default, metavar=f.metadata.get("metavar"),
                                   help=f.metadata["help"], show_default=default is not None)
            fn = opt(fn)
        return fn

    return decorate


def pick(cls: type, values: dict, prefix: str = "") -> dict:
    """The entries of ``values`` that are fields of ``cls`` (prefix stripped)."""
    names = {f.name for f in dataclasses.fields(cls)}
    return {k[len(prefix):]: v for k, v in values.items()
            if k.startswith(prefix) and k[len(prefix):] in names}


def int_list(text: str | None, option: str, kind: type = int) -> list | None:
    """'1,2,3' -> [1, 2, 3] (None stays None); a bad list is a usage error naming ``option``."""
    if text is None:
        return None
    try:
        return [kind(c) for c in text.split(",") if c.strip()]
    except ValueError:
        raise click.BadParameter(f"{text!r} is not a comma-separated list of numbers",
                                 param_hint=option) from None
