"""``augment evaluate`` (per-class report on a generator) and ``augment train-classifier``
(retrain the evaluator whose weights ship with the package)."""

from __future__ import annotations

import json
import shlex
import time
from pathlib import Path

import click

from .options import DEVICE, INT_LIST, data_options


@click.command()
@click.argument("generator", type=click.Path(path_type=Path))
@click.option("-o", "--out-dir", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="directory for results.json, report.md and the plots (absent or empty)")
@click.option("--n-per-class", type=click.IntRange(6), default=1000,
              help="samples per class (and real training images per class in the baseline)")
@click.option("--cas", is_flag=True,
              help="also train a fresh classifier on the samples and test it on real test (slow)")
@click.option("--cas-steps", type=click.IntRange(1), default=1500,
              help="training steps of each CAS classifier")
@click.option("--seed", type=click.IntRange(0), default=0,
              help="seed of the latents, the real subset and the CAS classifier")
@click.option("--k", "k", type=click.IntRange(1, 100), default=5, help="neighbours for PRDC")
@click.option("--classifier", "classifier_path", type=click.Path(path_type=Path), default=None,
              help="evaluator weights (default: the shipped, checksummed classifier)")
@data_options
@click.option("--device", type=DEVICE, default="auto", help="'auto', 'cpu', 'cuda' or 'cuda:N'")
@click.option("--overwrite", is_flag=True, help="replace a previous report in --out-dir")
@click.option("-q", "--quiet", is_flag=True, help="no progress lines on stderr")
def evaluate(generator: Path, out_dir: Path, n_per_class: int, cas: bool, cas_steps: int,
             seed: int, k: int, classifier_path: Path | None, data_dir: Path | None,
             dataset: str, device: str, overwrite: bool, quiet: bool) -> None:
    """Score GENERATOR (file or checkpoint) class by class against the real test split (MNIST by
    default; an image folder or npz needs --classifier).

    Prints a summary (generator and a real-train ceiling row) and the generator's per-class
    table; writes results.json, report.md, per_class.png, confusion.png and samples.png."""
    from augment.device import resolve_device
    from augment.evaluation import report, scoring

    started = time.time()

    def log(message: str) -> None:
        if not quiet:
            click.echo(f"[{time.time() - started:6.1f}s] {message}", err=True)

    published = scoring.run_evaluation(
        generator, out_dir, n_per_class=n_per_class, seed=seed, cas=cas, cas_steps=cas_steps,
        k=k, classifier_path=classifier_path, data_dir=data_dir, dataset=dataset,
        device=resolve_device(device), overwrite=overwrite, log=log)
    results = published["results"]
    click.echo(report.format_table(report.summary_table(results)))
    click.echo("")
    click.echo(f"per class ({report.GENERATOR}):")
    click.echo(report.format_table(report.per_class_table(results[report.GENERATOR],
                                                          published["data"].get("class_names"))))
    click.echo("")
    click.echo(json.dumps({"out_dir": str(out_dir), "report": str(out_dir / "report.md"),
                           "seconds": published["seconds"]}))


@click.command("train-classifier")
@click.option("-o", "--out", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="weights file to write (.safetensors); its manifest goes beside it (.json). "
                   "Use augment/weights/classifier.safetensors to replace the shipped evaluator")
@data_options
@click.option("--n-per-class", type=click.IntRange(1), default=None,
              help="train on a seeded subset of N images per class (default: the full train set)")
@click.option("--epochs", type=click.IntRange(1), default=None, help="passes over the data")
@click.option("--steps", type=click.IntRange(1), default=None, help="optimizer steps (overrides --epochs)")
@click.option("--batch-size", type=click.IntRange(2), default=None, help="images per batch")
@click.option("--lr", type=click.FloatRange(0, min_open=True), default=None, help="peak learning rate")
@click.option("--seed", type=click.IntRange(0), default=None, help="seed of init, order and shifts")
@click.option("--widths", type=INT_LIST, default=None,
              help="widths of the conv blocks, 1 to 5 of them (default: 16,32,64, the shipped evaluator's)")
@click.option("--device", type=DEVICE, default="auto", help="'auto', 'cpu', 'cuda' or 'cuda:N'")
@click.option("-q", "--quiet", is_flag=True, help="no progress bar")
def train_classifier(out: Path, data_dir: Path | None, dataset: str, n_per_class: int | None,
                     epochs: int | None, steps: int | None, batch_size: int | None,
                     lr: float | None, seed: int | None, widths: tuple | None, device: str, quiet: bool) -> None:
    """Train the evaluator CNN on real train, test it on real test, write weights + manifest.

    Defaults are the recipe of the shipped weights."""
    import dataclasses

    from augment.device import resolve_device
    from augment.evaluation import classifier as clf
    from augment.evaluation import classifier_files

    given = {"epochs": epochs, "steps": steps, "batch_size": batch_size, "lr": lr, "seed": seed}
    recipe = dataclasses.replace(clf.ClassifierTrainConfig(),
                                 **{k: v for k, v in given.items() if v is not None})
    info = classifier_files.train_and_save(out, recipe, data_dir=data_dir, dataset=dataset, widths=widths,
                                           n_per_class=n_per_class, device=resolve_device(device),
                                           progress=not quiet, command=_command_line(click.get_current_context()))
    click.echo(json.dumps({"out": str(out), "manifest": info["manifest"], "sha256": info["sha256"],
                           "test_accuracy": round(info["test_accuracy"], 4),
                           "train_seconds": info["train_seconds"]}))


def _command_line(ctx: click.Context) -> str:
    """The ``augment ...`` line that reproduces this invocation (options given on the command
    line only, so defaults stay the recipe's)."""
    words = ["augment", ctx.info_name or ctx.command.name]
    for param in ctx.command.params:
        if ctx.get_parameter_source(param.name) != click.core.ParameterSource.COMMANDLINE:
            continue
        flag = max(param.opts, key=len)
        if getattr(param, "is_flag", False):
            words.append(flag)
        else:
            words += [flag, str(ctx.params[param.name])]
    return shlex.join(words)
