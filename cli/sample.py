"""``augment sample`` (per-class grid or a run's GIF) and ``augment export`` (generator file)."""

from __future__ import annotations

from pathlib import Path

import click

from .options import DEVICE, image_size_option, int_list, quality_filter_from, quality_filter_options
from .output import check_output_file, json_option, overwrite_option, print_result


@click.command()
@click.argument("source", required=False, type=click.Path(path_type=Path))
@click.option("-o", "--out", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="output .png (grid of SOURCE, a generator or checkpoint file) or .gif "
                   "(the sample grids of SOURCE, a run directory)")
@click.option("--per-class", type=click.IntRange(1, 100), default=10, help="images per class (row)")
@click.option("--classes", type=str, default=None, help="comma-separated classes (default: all)")
@click.option("--seed", type=click.IntRange(0, 2 ** 64 - 1), default=0, help="seed of the latents")
@click.option("--device", type=DEVICE, default="cpu",
              help="'cpu' (default: a grid is small), 'auto', 'cuda' or 'cuda:N'")
@click.option("--duration-ms", type=click.IntRange(10, 10_000), default=250, help="GIF frame time")
@image_size_option("each image of a grid (the size dump writes)")
@quality_filter_options
@overwrite_option("output file")
@json_option
def sample(source: Path | None, out: Path, per_class: int, classes: str | None, seed: int, device: str,
           duration_ms: int, image_size: tuple | None, min_confidence: float | None, filter_classifier: Path | None,
           max_attempts: int, overwrite: bool, as_json: bool) -> None:
    """Make a per-class sample grid from a generator (default: the shipped one; rows labelled
    with its class names when it has any; images at the size it was trained on, as dump writes
    them), or a GIF from a run directory's grids. With --min-confidence the grid shows the
    quality-filtered items of a SyntheticMNIST (other latents than the unfiltered grid's)."""
    from augment import visualize  # these load torch: not at `augment --help`
    from augment.checkpoint import generator_class_names, load_generator
    from augment.device import resolve_device
    from augment.images import to_uint8_images
    from augment.synthetic.dataset import SamplingOptions, SyntheticMNIST
    from augment.synthetic.shipped import load_default_generator, trained_on, verified_default_generator_path

    check_output_file(out, (".png", ".gif"), overwrite)
    if out.suffix.lower() == ".gif":
        if image_size is not None:
            raise click.UsageError("--image-size is for a .png grid (a GIF shows the run's grids as they are)")
        if source is None or not source.is_dir():
            got = "no SOURCE" if source is None else f"{source}, not a directory"
            raise click.UsageError(f"a .gif output needs SOURCE, a run directory with sample grids ({got})")
        path = visualize.save_gif(visualize.run_frames(source), out, duration_ms)
    else:
        wanted = int_list(classes, "--classes")
        if source is None:
            generator = load_default_generator(resolve_device(device))
        else:
            generator = load_generator(source, resolve_device(device))
        quality = quality_filter_from(min_confidence, filter_classifier, max_attempts)
        names = generator_class_names(source) if source is not None else None
        if quality is None:
            images = visualize.class_grid(generator, per_class=per_class, seed=seed, classes=wanted)
        else:  # from the file, so the judge is checked against the data the generator was trained on
            ids = wanted if wanted is not None else list(range(generator.config.num_classes))
            dataset = SyntheticMNIST(source, num_samples=per_class * len(ids), seed=seed, classes=ids,
                                     sampling=SamplingOptions(quality=quality), device=resolve_device(device))
            images = dataset.class_rows(per_class)
        size = image_size or trained_on(source if source is not None else verified_default_generator_path()).size
        images = to_uint8_images(images, size).float() / 127.5 - 1  # the pixels dump would write, in [-1, 1]
        shown = wanted if wanted is not None else list(range(generator.config.num_classes))
        labels = [f"{c} {names[c]}" for c in shown] if names and names != [str(c) for c in range(len(names))] else None
        path = visualize.save_grid(images, out, nrow=per_class, row_labels=labels)
    print_result(as_json, {"out": str(path)}, f"wrote {path}")


@click.command()
@click.argument("checkpoint", type=click.Path(path_type=Path))
@click.option("-o", "--out", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="generator file to write (its name must end in .safetensors: that is its format)")
@click.option("--live-weights", is_flag=True,
              help="a run trained with --ema-decay: export the live generator, not the weight average")
@overwrite_option("output file")
@json_option
def export(checkpoint: Path, out: Path, live_weights: bool, overwrite: bool, as_json: bool) -> None:
    """Write a training checkpoint's generator as a standalone .safetensors file."""
    from augment.checkpoint import export_generator  # loads torch: not at `augment --help`

    check_output_file(out, (".safetensors",), overwrite)
    digest = export_generator(checkpoint, out, averaged=not live_weights)
    print_result(as_json, {"out": str(out), "sha256": digest}, f"wrote {out} (SHA-256 {digest})")
