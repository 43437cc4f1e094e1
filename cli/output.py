"""One output style on every command: a sentence (or a few short lines) for people by default,
``--json`` for scripts (one JSON object on stdout, the same facts); and one rule for the files a
command writes: an existing output is refused unless ``--overwrite``, a wrong suffix is a usage error."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Callable

import click


def json_option(fn: Callable) -> Callable:
    """``--json``: print the result as one JSON object on stdout instead of a sentence."""
    return click.option("--json", "as_json", is_flag=True,
                        help="print the result as one JSON line on stdout (for scripts) instead of a sentence")(fn)


def overwrite_option(what: str) -> Callable:
    """``--overwrite``: replace an existing ``what`` (refused without it, as dump and evaluate do)."""
    return click.option("--overwrite", is_flag=True, help=f"replace an existing {what}")


def print_result(as_json: bool, facts: dict, sentence: str) -> None:
    """Print ``facts`` as one JSON line (``as_json``; NaN and infinities as null) or ``sentence``."""
    click.echo(json.dumps(_finite(facts)) if as_json else sentence)


def check_output_file(out: Path, suffixes: tuple, overwrite: bool) -> None:
    """Refuse, before any work, an output file whose suffix is not one of ``suffixes`` (a usage
    error: exit 2) or that exists without ``overwrite`` (exit 1)."""
    if out.suffix.lower() not in suffixes:
        raise click.UsageError(f"--out must end in {' or '.join(suffixes)}, got {out.name!r}")
    if (out.exists() or out.is_symlink()) and not overwrite:
        raise click.ClickException(f"output {out} exists; pass --overwrite to replace it or choose another name")


def _finite(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value
