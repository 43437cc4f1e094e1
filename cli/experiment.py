"""``augment experiment``: the real/synthetic/classical augmentation grid."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import click

from augment.config import CRITIC_AUGMENT_POLICIES
from augment.errors import ConfigError

from .options import DEVICE, data_options, int_list

BALANCED_PRESETS = ("quick", "cpu", "full")
LONGTAIL_PRESETS = ("longtail-cpu", "longtail-gpu")
ONLY_BALANCED = ("n_list", "ratios", "fair_n", "fair_seeds")
ONLY_LONGTAIL = ("imbalance_ratios", "methods", "logit_adjust_tau", "synthetic_ratio", "top_up_target",
                 "fair_real_sampling")


@click.command()
@click.option("--preset", type=click.Choice(BALANCED_PRESETS + LONGTAIL_PRESETS), default="quick",
              help="quick: CPU, ~10 min, shipped generator; cpu: ~1 h on 2 cores, both regimes "
                   "(fair generators from --fair-dir); full: the whole grid (GPU); longtail-cpu: long-tailed "
                   "MNIST (rho 10, 100), baselines vs synthetic rebalancing, ~10 h on 2 cores; longtail-gpu: the "
                   "same at reference size")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="results directory; rerunning skips finished cells")
@click.option("--generator", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="generator for the 'shipped' regime (default: the shipped one)")
@click.option("--fair-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="directory of fair-regime runs (n{N}_seed{S}/, long-tailed: lt{RHO}_seed{S}/, e.g. lt100_seed0/, "
                   "or lt100-n2000-perm_seed0/ with another n_max and class order; a "
                   "generator.safetensors there is used as it is unless its run's config.json says it was "
                   "trained otherwise or stopped short of the grid's steps; missing ones are trained there); "
                   "default: OUT/fair_generators")
@data_options
@click.option("--seeds", type=click.IntRange(1, 20), default=None, help="override the preset's seed count")
@click.option("--n-per-class", "n_list", default=None,
              help="override the preset's real images per class, e.g. '10,100,all'")
@click.option("--ratios", default=None, help="override the preset's synthetic:real ratios, e.g. '1,4'")
@click.option("--regimes", default=None, help="override the preset's regimes: 'shipped', 'fair' or both")
@click.option("--fair-n", "fair_n", default=None,
              help="override the n values with fair-regime cells, e.g. '10,100,500'")
@click.option("--fair-seeds", default=None,
              help="override the seeds with fair-regime cells, e.g. '0,1,2', or 'all'")
@click.option("--imbalance-ratios", default=None,
              help="long-tailed presets: override the imbalance ratios, e.g. '10,100'")
@click.option("--methods", default=None,
              help="long-tailed presets: override the methods, e.g. 'erm,classical,classical+top-up'")
@click.option("--logit-adjust-tau", type=click.FloatRange(0, min_open=True), default=None,
              help="long-tailed presets: tau of the logit-adjusted loss (default: the preset's, 0.5, tuned on "
                   "validation)")
@click.option("--synthetic-ratio", type=click.FloatRange(0, min_open=True), default=None,
              help="long-tailed presets: classical+synthetic+logit-adjusted adds this many synthetic images "
                   "per real one of each class (default: the preset's, 1)")
@click.option("--top-up-target", type=click.IntRange(1), default=None,
              help="long-tailed presets: fill each class up to this many images in a top-up (default: the "
                   "largest class's count, n_max; a class with more real images keeps them all)")
@click.option("--fair-real-sampling", type=click.Choice(["auto", "uniform", "balanced"]), default=None,
              help="long-tailed presets: how the fair generators draw real batches (those trained here; "
                   "one found in --fair-dir must have been trained so)")
@click.option("--fair-critic-augment", type=click.Choice(CRITIC_AUGMENT_POLICIES),
              default=None, help="DiffAugment policy of the fair generators this grid trains "
                                 "(default: the preset's, none)")
@click.option("--classifier-steps", type=click.IntRange(1), default=None,
              help="override the preset's classifier budget")
@click.option("--fair-gan-steps", type=click.IntRange(1), default=None,
              help="generator steps of each fair generator this grid trains (default: the preset's; "
                   "full: 10,000, cpu: 5,000, longtail-cpu: 4,000)")
@click.option("--fair-widths", default=None,
              help="G,D base widths of the fair generators this grid trains (default: the preset's; "
                   "full: 128,64 = the reference, cpu: 32,16, longtail-cpu: 64,32)")
@click.option("--classifier", "evaluator", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="classifier file that scores the generators' samples in the diversity table (default: the "
                   "shipped evaluator, for digits; --dataset folder or npz without one gets no table)")
@click.option("--device", type=DEVICE, default="auto", help="'auto', 'cpu', 'cuda' or 'cuda:N'")
@click.option("-q", "--quiet", is_flag=True, help="no progress bar")
@click.pass_context
def experiment(ctx: click.Context, preset: str, out: Path, generator: Path | None, fair_dir: Path | None,
               data_dir: Path | None, dataset: str, seeds: int | None, n_list: str | None, ratios: str | None,
               regimes: str | None, fair_n: str | None, fair_seeds: str | None, imbalance_ratios: str | None,
               methods: str | None, logit_adjust_tau: float | None, synthetic_ratio: float | None,
               top_up_target: int | None,
               fair_real_sampling: str | None,
               fair_critic_augment: str | None, classifier_steps: int | None, fair_gan_steps: int | None,
               fair_widths: str | None, evaluator: Path | None, device: str, quiet: bool) -> None:
    """Train one fixed classifier on real, classical-augmented, synthetic and mixed data: the
    balanced grid (n images per class), or a long-tailed one (MNIST-LT) with its baselines."""
    from augment.device import resolve_device
    from augment.downstream import grid as balanced
    from augment.downstream import longtail
    from augment.downstream.runner import run_grid

    long_tailed = preset in LONGTAIL_PRESETS
    wrong = ONLY_BALANCED if long_tailed else ONLY_LONGTAIL
    given = [k for k in wrong if ctx.params[k] is not None]
    if given:
        flag = "--" + ("n-per-class" if given[0] == "n_list" else given[0].replace("_", "-"))
        raise click.UsageError(f"{flag} does not apply to --preset {preset}")
    changes: dict = {}
    if seeds is not None:
        changes["seeds"] = tuple(range(seeds))
    if regimes is not None:
        changes["regimes"] = tuple(r.strip() for r in regimes.split(",") if r.strip())
    if fair_critic_augment is not None:
        changes["fair_critic_augment"] = fair_critic_augment
    if fair_gan_steps is not None:
        changes["fair_gan_steps"] = fair_gan_steps
    if fair_widths is not None:
        changes["fair_widths"] = tuple(int_list(fair_widths, "--fair-widths"))
    if classifier_steps is not None:
        changes["classifier_steps"] = classifier_steps
    if long_tailed:
        if imbalance_ratios is not None:
            changes["imbalance_ratios"] = tuple(int_list(imbalance_ratios, "--imbalance-ratios", float))
        if methods is not None:
            changes["methods"] = tuple(m.strip() for m in methods.split(",") if m.strip())
        if logit_adjust_tau is not None:
            changes["logit_adjust_tau"] = logit_adjust_tau
        if synthetic_ratio is not None:
            changes["synthetic_ratio"] = synthetic_ratio
        if top_up_target is not None:
            changes["top_up_target"] = top_up_target
        if fair_real_sampling is not None:
            changes["fair_real_sampling"] = fair_real_sampling
    else:
        if n_list is not None:
            tokens = [t.strip() for t in n_list.split(",") if t.strip()]
            numbers = int_list(",".join(t for t in tokens if t != "all"), "--n-per-class") or []
            changes["n_per_class"] = tuple(numbers) + ((None,) if "all" in tokens else ())
        if ratios is not None:
            changes["ratios"] = tuple(int_list(ratios, "--ratios", float))
        if fair_n is not None:
            changes["fair_n"] = tuple(int_list(fair_n, "--fair-n"))
        if fair_seeds is not None:
            changes["fair_seeds"] = None if fair_seeds.strip() == "all" else tuple(int_list(fair_seeds, "--fair-seeds"))
    presets = longtail.PRESETS if long_tailed else balanced.PRESETS
    try:
        grid = dataclasses.replace(presets[preset], **changes)
    except ConfigError as e:
        raise click.UsageError(str(e)) from None
    run = longtail.run_longtail_grid if long_tailed else run_grid
    results = run(grid, out, resolve_device(device), data_dir=data_dir, generator=generator,
                  progress=not quiet, log=lambda m: click.echo(m, err=True),
                  command="augment " + " ".join(sys.argv[1:]), fair_dir=fair_dir, dataset=dataset,
                  evaluator=evaluator)
    click.echo(str(results))
