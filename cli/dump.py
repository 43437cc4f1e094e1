"""``augment dump``: write synthetic digits as MNIST IDX files, a PNG tree and/or .npz."""

from __future__ import annotations

from pathlib import Path

import click

from .options import (
    DEVICE,
    INT_LIST,
    ChoiceList,
    Count,
    FiniteFloatRange,
    image_size_option,
    int_list,
    quality_filter_from,
    quality_filter_options,
)
from .output import json_option, print_result


@click.command("dump")
@click.argument("generator", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option("-o", "--out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="output directory (created atomically; see --overwrite). Read it back with "
                   "torchvision.datasets.MNIST(OUT), ImageFolder(OUT/png/train) or numpy.load(OUT/train.npz)")
@click.option("-n", "--num-samples", type=Count(1), default=None,
              help="number of images to write, e.g. 60000 or 6e4  [default: 60000; with --class-counts their sum]")
@click.option("-f", "--format", "formats", type=ChoiceList(("idx", "png", "npz")), multiple=True,
              default=("idx",), help="output formats, comma-separated or repeated: idx = torchvision MNIST "
              "layout, png = ImageFolder tree (OUT/png/train/<class>/), npz = x uint8 / y int64")
@click.option("--split", type=click.Choice(["train", "test"]), default="train",
              help="split the samples are written as (file names)")
@click.option("--test-samples", type=Count(0), default=None,
              help="also write a test split of this many further items (with --split train), so that "
                   "torchvision's MNIST(root, train=False) reads it too  [default: N/6, as MNIST's 10,000 "
                   "per 60,000; 0 with --class-counts]")
@click.option("--seed", type=click.IntRange(0, 2 ** 64 - 1), default=0, help="seed of the per-index latents")
@click.option("--classes", type=str, default=None, help="comma-separated classes (default: all)")
@click.option("--class-weights", type=str, default=None,
              help="comma-separated relative class frequencies, one per class (default: equal)")
@click.option("--class-counts", type=INT_LIST, default=None,
              help="exact images per class (of --classes, default all), e.g. the synthetic top-up of a "
                   "long-tailed set: 0,2003,3203,...")
@click.option("--truncation", type=FiniteFloatRange(0, min_open=True), default=None,
              help="latent components beyond +-T are redrawn or clipped (fidelity over diversity)")
@click.option("--truncation-mode", type=click.Choice(["resample", "clamp"]), default="resample",
              help="with --truncation: redraw components beyond +-T, or clip them to +-T")
@image_size_option("the images written")
@click.option("--device", type=DEVICE, default="auto", help="'auto', 'cpu', 'cuda' or 'cuda:N'")
@click.option("--batch-size", type=click.IntRange(1), default=1024, help="images per write step")
@click.option("--dtype", type=click.Choice(["float32", "bfloat16"]), default="float32",
              help="sampling precision (bfloat16: CUDA only; an error on the CPU)")
@click.option("--overwrite", is_flag=True,
              help="replace an earlier dump at the output path (a non-empty directory that is not a dump is refused)")
@quality_filter_options
@json_option
@click.option("-q", "--quiet", is_flag=True, help="no progress bar")
def dump(generator: Path | None, out: Path, num_samples: int, formats: tuple, split: str,
         test_samples: int | None, seed: int,
         classes: str | None, class_weights: str | None, class_counts: tuple | None, truncation: float | None,
         truncation_mode: str, image_size: tuple | None, device: str, batch_size: int, dtype: str, overwrite: bool,
         min_confidence: float | None, filter_classifier: Path | None, max_attempts: int, as_json: bool,
         quiet: bool) -> None:
    """Write -n generated digits from GENERATOR (a generator or checkpoint file;
    default: the shipped generator) with a manifest.json. Same arguments, same bytes."""
    from augment.synthetic.dataset import SamplingOptions  # these load torch: not at `augment --help`
    from augment.synthetic.dump import dump_synthetic

    sampling = SamplingOptions(truncation=truncation, truncation_mode=truncation_mode, dtype=dtype,
                               quality=quality_filter_from(min_confidence, filter_classifier, max_attempts))
    manifest = dump_synthetic(
        out, generator, num_samples, tuple(f for group in formats for f in group), seed=seed,
        classes=int_list(classes, "--classes"), class_weights=int_list(class_weights, "--class-weights", float),
        split=split, test_samples=test_samples, sampling=sampling, device=device, batch_size=batch_size,
        overwrite=overwrite, progress=not quiet, class_counts=class_counts, image_size=image_size)
    if manifest is None:  # a rank other than 0 under torchrun
        return
    test = manifest["splits"].get("test") if split == "train" else None
    height, width = manifest["image"]["height"], manifest["image"]["width"]
    summary = {"out": str(out), "num_samples": manifest["num_samples"], "formats": manifest["formats"],
               "image_size": [height, width], "split": split, "counts_per_class": manifest["counts_per_class"],
               **({"test_samples": test["num_samples"]} if test else {})}
    counts = ", ".join(f"{manifest['class_names'][int(c)]}: {n}" for c, n in manifest["counts_per_class"].items())
    tests = f" and {test['num_samples']:,} test images" if test else ""
    print_result(as_json, summary, f"wrote {summary['num_samples']:,} {split} images{tests} "
                 f"({', '.join(summary['formats'])}, {height}x{width}) to {out}; per class: {counts}")
