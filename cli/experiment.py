"""``augment experiment``: run a grid of classifiers on real, classically augmented, synthetic and
mixed data. Its grid options, their help and the presets' defaults come from the grid configs
(``augment.downstream.grid.option`` fields) and ``augment.downstream.presets.PRESETS``."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Callable

import click

from augment.downstream.methods import methods_of
from augment.downstream.presets import PRESETS
from augment.errors import ConfigError

from .options import DEVICE, FiniteFloatRange, data_options, int_list
from .output import json_option, print_result


def _grid_fields() -> dict:
    """{field name: field} of every grid option of any preset, in the grid configs' order."""
    fields = {}
    for preset in PRESETS.values():
        for f in preset.grid.option_fields():
            fields.setdefault(f.name, f)
    return fields


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _shown(value, f: dataclasses.Field) -> str:
    """A preset's value of a grid field as it is typed on the command line."""
    if value is None:
        return f.metadata.get("none", "none")
    if f.metadata["kind"] == "count":
        return str(len(value))
    if isinstance(value, tuple):
        return ",".join("all" if v is None else f"{v:g}" if isinstance(v, float) else str(v) for v in value)
    return f"{value:g}" if isinstance(value, float) else str(value)


def _help(f: dataclasses.Field) -> str:
    """The field's help, then which presets it applies to and their values (or the methods to choose from)."""
    presets = [name for name, p in PRESETS.items() if f.name in {g.name for g in p.grid.option_fields()}]
    only = "" if len(presets) == len(PRESETS) else "only "
    if not f.metadata.get("shown", True):
        kinds = dict.fromkeys(PRESETS[name].grid.kind for name in presets)
        choices = "; ".join(f"{kind} presets: {', '.join(methods_of(kind))}" for kind in kinds)
        return f"{f.metadata['help']}, comma-separated ({choices}; default: all of its kind)"
    groups: dict = {}
    for name in presets:
        groups.setdefault(_shown(getattr(PRESETS[name].grid, f.name), f), []).append(name)
    defaults = "; ".join(f"{', '.join(names)}: {value}" for value, names in groups.items())
    return f"{f.metadata['help']} ({only}{defaults})"


def _click_type(f: dataclasses.Field):
    kind = f.metadata["kind"]
    return {"count": click.IntRange(1, 20), "positive": FiniteFloatRange(0, min_open=True),
            "whole": click.IntRange(1)}.get(kind, click.Choice(f.metadata.get("choices", ())) if kind == "choice"
                                            else str)


def _parse(f: dataclasses.Field, value):
    """A command-line value as the grid field's value."""
    kind, flag = f.metadata["kind"], _flag(f.name)
    if kind == "count":
        return tuple(range(value))
    if kind == "names":
        return tuple(t.strip() for t in value.split(",") if t.strip())
    if kind == "sizes":
        tokens = [t.strip() for t in value.split(",") if t.strip()]
        return tuple(int_list(",".join(t for t in tokens if t != "all"), flag)) + ((None,) if "all" in tokens else ())
    if kind == "ints or all":
        return None if value.strip() == "all" else tuple(int_list(value, flag))
    if kind in ("numbers", "ints"):
        return tuple(int_list(value, flag, float if kind == "numbers" else int))
    return value


def grid_options(fn: Callable) -> Callable:
    """One option per grid field of any preset (default None: the preset's value)."""
    for f in reversed(list(_grid_fields().values())):
        fn = click.option(_flag(f.name), f.name, type=_click_type(f), default=None, help=_help(f))(fn)
    return fn


@click.command()
@click.option("--preset", type=click.Choice(list(PRESETS)), default="quick",
              help="; ".join(f"{name}: {p.about}" for name, p in PRESETS.items()))
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="results directory; rerunning skips finished cells")
@click.option("--generator", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="generator for the 'shipped' regime (default: the shipped one, which fits only MNIST: other "
                   "data needs one trained on it, or --regimes fair)")
@click.option("--fair-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="directory of fair-regime runs (n{N}_seed{S}/, long-tailed: lt{RHO}_seed{S}/, e.g. lt100_seed0/, "
                   "or lt100-n2000-perm_seed0/ with another n_max and class order; a "
                   "generator.safetensors there is used as it is unless its run's config.json says it was "
                   "trained otherwise or stopped short of the grid's steps; missing ones are trained there); "
                   "default: OUT/fair_generators")
@data_options
@grid_options
@click.option("--classifier", "evaluator", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="classifier file that scores the generators' samples in the diversity table (default: the "
                   "shipped evaluator, for MNIST's digits; other data without one gets no table, and the log says why)")
@click.option("--device", type=DEVICE, default="auto", help="'auto', 'cpu', 'cuda' or 'cuda:N'")
@click.option("-q", "--quiet", is_flag=True, help="no progress bar")
@json_option
def experiment(preset: str, out: Path, generator: Path | None, fair_dir: Path | None, data_dir: Path | None,
               dataset: str, evaluator: Path | None, device: str, quiet: bool, as_json: bool, **overrides) -> None:
    """Train one fixed classifier on real, classical-augmented, synthetic and mixed data: the
    balanced grid (n images per class), or a long-tailed one (MNIST-LT) with its baselines."""
    # torch and the runner load here, not at `augment --help`
    from augment.device import resolve_device
    from augment.downstream.runner import run_grid

    grid = PRESETS[preset].grid
    fields = {f.name: f for f in grid.option_fields()}
    given = {name: value for name, value in overrides.items() if value is not None}
    wrong = [name for name in given if name not in fields]
    if wrong:
        raise click.UsageError(f"{_flag(wrong[0])} does not apply to --preset {preset}")
    try:
        grid = dataclasses.replace(grid, **{name: _parse(fields[name], value) for name, value in given.items()})
    except ConfigError as e:
        raise click.UsageError(str(e)) from None
    results = run_grid(grid, out, resolve_device(device), data_dir=data_dir, generator=generator,
                       progress=not quiet, log=lambda m: click.echo(m, err=True),
                       command="augment " + " ".join(sys.argv[1:]), fair_dir=fair_dir, dataset=dataset,
                       evaluator=evaluator)
    print_result(as_json, {"out": str(out), "results": str(results)},
                 f"wrote the grid's rows to {results}; its tables (summary.md) and plots are in {out}")
