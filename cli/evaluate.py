"""``augment evaluate`` (per-class report and memorization audit of a generator or a set of
labelled images) and ``augment train-classifier`` (retrain the evaluator whose weights ship with
the package)."""

from __future__ import annotations

import dataclasses
import shlex
import time
from pathlib import Path

import click

from augment.config import SAMPLE_FORMATS, SubsetSpec

from .options import DEVICE, INT_LIST, FiniteFloatRange, data_options
from .output import check_output_file, json_option, overwrite_option, print_result

# augment.evaluation and augment.device import torch: imported at the top, `augment --help` took
# 7.9-16.1 s instead of 0.9 s (measured on a shared, busy 2-core AMD EPYC), so each command imports
# them when it runs.


@click.command()
@click.argument("generator", type=click.Path(path_type=Path), required=False)
@click.option("-o", "--out-dir", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="directory for results.json, report.md and the plots (absent or empty)")
@click.option("--samples", type=click.Path(path_type=Path), default=None, metavar="PATH",
              help="judge this set of labelled images instead of a generator: an .npz (x, y, class_names), a folder "
                   "per class, an IDX directory or an augment dump directory")
@click.option("--samples-format", type=click.Choice(SAMPLE_FORMATS), default=None,
              help="the format of --samples: npz, folder, idx or dump (default: recognised from the path)")
@click.option("--n-per-class", type=click.IntRange(6), default=1000,
              help="samples per class (and real training images per class in the baseline; with --samples the "
                   "baseline takes the set's smallest class)")
@click.option("--cas", is_flag=True,
              help="also train a fresh classifier on the samples and test it on real test (slow)")
@click.option("--cas-steps", type=click.IntRange(1), default=1500,
              help="training steps of each CAS classifier")
@click.option("--seed", type=click.IntRange(0), default=0,
              help="seed of the latents, the real subset, the CAS classifier and the audit's k-means")
@click.option("--k", "k", type=click.IntRange(1, 100), default=5, help="neighbours for PRDC")
@click.option("--classifier", "classifier_path", type=click.Path(path_type=Path), default=None,
              help="evaluator weights (default: the shipped, checksummed classifier)")
@data_options
@click.option("--train-n-per-class", type=click.IntRange(1), default=None, metavar="N",
              help="memorization audit: the generator was trained on a seeded subset of N real training images per "
                   "class (augment train --n-per-class); default: on the whole train split")
@click.option("--train-imbalance-ratio", type=FiniteFloatRange(1.0), default=None, metavar="RHO",
              help="memorization audit: the generator was trained on the seeded long-tailed subset of this ratio "
                   "(augment train --imbalance-ratio, default n_max and class order)")
@click.option("--train-seed", type=click.IntRange(0), default=0, show_default=True,
              help="memorization audit: the seed of that training run (it drew the subset)")
@click.option("--device", type=DEVICE, default="auto", help="'auto', 'cpu', 'cuda' or 'cuda:N'")
@click.option("--overwrite", is_flag=True, help="replace a previous report in --out-dir")
@click.option("-q", "--quiet", is_flag=True, help="no progress lines on stderr")
@json_option
def evaluate(generator: Path | None, out_dir: Path, samples: Path | None, samples_format: str | None,
             n_per_class: int, cas: bool, cas_steps: int, seed: int, k: int, classifier_path: Path | None,
             data_dir: Path | None, dataset: str, train_n_per_class: int | None,
             train_imbalance_ratio: float | None, train_seed: int, device: str, overwrite: bool, quiet: bool,
             as_json: bool) -> None:
    """Score GENERATOR (file or checkpoint), or the labelled images of --samples, class by class
    against the real test split (MNIST by default; other data needs --classifier, a classifier of it),
    with a memorization audit: do the images copy the generator's training images?

    Prints a summary (the set and a real-train ceiling row), the set's per-class table and the
    audit's verdict (--json: the same as one JSON line); writes results.json, report.md,
    per_class.png, confusion.png, samples.png and copies.png."""
    from augment.device import resolve_device
    from augment.evaluation import report, scoring

    started = time.time()

    def log(message: str) -> None:
        if not quiet:
            click.echo(f"[{time.time() - started:6.1f}s] {message}", err=True)

    if (generator is None) == (samples is None):
        raise click.UsageError("give a GENERATOR file or --samples PATH, one of them")
    training_subset = SubsetSpec(n_per_class=train_n_per_class, imbalance_ratio=train_imbalance_ratio)
    published = scoring.run_evaluation(
        generator, out_dir, n_per_class=n_per_class, seed=seed, cas=cas, cas_steps=cas_steps,
        k=k, classifier_path=classifier_path, data_dir=data_dir, dataset=dataset,
        device=resolve_device(device), overwrite=overwrite, log=log, samples=samples, sample_format=samples_format,
        training_subset=training_subset, training_seed=train_seed)
    results = published["results"]
    judged = next(iter(results))
    verdict = published["memorization"]["verdict"]
    tables = (report.format_table(report.summary_table(results)),
              f"per class ({judged}):\n" + report.format_table(
                  report.per_class_table(results[judged], published["data"].get("class_names"))))
    facts = {"out_dir": str(out_dir), "report": str(out_dir / "report.md"), "seconds": published["seconds"],
             "overall": {name: result["overall"] for name, result in results.items()},
             "per_class": {judged: results[judged]["per_class"]}, "class_names": published["data"].get("class_names"),
             "memorization": verdict}
    print_result(as_json, facts, "\n\n".join(tables) + f"\n\nmemorization: {verdict}\n"
                 f"wrote the report to {out_dir} (report.md, results.json and plots; {published['seconds']:.0f} s)")


@click.command("train-classifier")
@click.option("-o", "--out", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="weights file to write (its name must end in .safetensors); its manifest goes beside it "
                   "(.json). Use augment/weights/classifier.safetensors with --overwrite to replace the shipped "
                   "evaluator")
@data_options
@click.option("--n-per-class", type=click.IntRange(1), default=None,
              help="train on a seeded subset of N images per class (default: the full train set)")
@click.option("--epochs", type=click.IntRange(1), default=None, help="passes over the data")
@click.option("--steps", type=click.IntRange(1), default=None, help="optimizer steps (overrides --epochs)")
@click.option("--batch-size", type=click.IntRange(2), default=None, help="images per batch")
@click.option("--lr", type=FiniteFloatRange(0, min_open=True), default=None, help="peak learning rate")
@click.option("--seed", type=click.IntRange(0), default=None, help="seed of init, order and shifts")
@click.option("--widths", type=INT_LIST, default=None,
              help="widths of the conv blocks, 1 to 5 of them (default: 16,32,64, the shipped evaluator's)")
@click.option("--device", type=DEVICE, default="auto", help="'auto', 'cpu', 'cuda' or 'cuda:N'")
@overwrite_option("weights file and its manifest")
@click.option("-q", "--quiet", is_flag=True, help="no progress bar")
@json_option
def train_classifier(out: Path, data_dir: Path | None, dataset: str, n_per_class: int | None,
                     epochs: int | None, steps: int | None, batch_size: int | None,
                     lr: float | None, seed: int | None, widths: tuple | None, device: str, overwrite: bool,
                     quiet: bool, as_json: bool) -> None:
    """Train the evaluator CNN on real train, test it on real test, write weights + manifest.

    Defaults are the recipe of the shipped weights."""
    from augment.device import resolve_device
    from augment.evaluation import classifier as clf
    from augment.evaluation import classifier_files

    check_output_file(out, (".safetensors",), overwrite)
    check_output_file(out.with_suffix(".json"), (".json",), overwrite)
    given = {"epochs": epochs, "steps": steps, "batch_size": batch_size, "lr": lr, "seed": seed}
    recipe = dataclasses.replace(clf.ClassifierTrainConfig(),
                                 **{k: v for k, v in given.items() if v is not None})
    info = classifier_files.train_and_save(out, recipe, data_dir=data_dir, dataset=dataset, widths=widths,
                                           n_per_class=n_per_class, device=resolve_device(device),
                                           progress=not quiet, command=_command_line(click.get_current_context()))
    facts = {"out": str(out), "manifest": info["manifest"], "sha256": info["sha256"],
             "test_accuracy": round(info["test_accuracy"], 4), "train_seconds": info["train_seconds"]}
    print_result(as_json, facts, f"wrote {out} and its manifest {info['manifest']}: test accuracy "
                 f"{facts['test_accuracy']:.2%} after {facts['train_seconds']:.0f} s of training "
                 f"(SHA-256 {info['sha256']})")


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
