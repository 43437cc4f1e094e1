"""``augment train``: the config as options, then the library's training loop."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Optional

import click

from augment.config import TRAIN_PRESETS, ModelConfig, SubsetSpec, TrainConfig, preset_config
from augment.errors import ConfigError

from .options import config_options, dataset_option, pick
from .output import json_option, print_result


@click.command()
@click.option("--run-dir", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="directory for config, logs, samples and checkpoints")
@click.option("--resume", is_flag=True,
              help="continue the run in --run-dir from its last checkpoint (its saved config; "
                   "length, device, step implementation and logging may change)")
@click.option("--dry-run", is_flag=True, help="run every check a real run makes (config, data, run directory, "
              "--init-generator), print the resolved config as JSON (what config.json would hold) and exit")
@click.option("-q", "--quiet", is_flag=True, help="no progress bar")
@click.option("--preset", type=click.Choice(sorted(TRAIN_PRESETS)), default=None,
              help="start from a named recipe instead of the reference one: 'cpu', the best quality per "
                   "CPU-minute measured (widths 32/16, --n-critic 2, --critic-lr 3e-4, --ema-decay 0.999, "
                   "--eval-every 250, --keep-best agreement; see docs/training.md); options given here still win "
                   "(its evaluation's settings can change, not be switched off)")
@click.option("--nproc", type=click.IntRange(1, 1024), default=1,
              help="processes on this machine (launches torchrun --standalone); for several "
                   "machines run torchrun yourself (see docs/distributed.md)")
@config_options(TrainConfig, skip=("dataset",))
@dataset_option
@config_options(SubsetSpec)
# every source yields grayscale images (a colour folder is converted), so --channels is not offered
@config_options(ModelConfig, skip=("channels",), defaults={"num_classes": None})
@json_option
@click.pass_context
def train(ctx: click.Context, run_dir: Path, resume: bool, dry_run: bool, quiet: bool,
          nproc: int, preset: Optional[str], as_json: bool, **values) -> None:
    """Train the conditional WGAN-GP (defaults: the reference recipe)."""
    # torch loads here, not at import: `augment --help` takes under a second instead of 10-25 s (measured)
    from augment import training
    from augment.data.sources import source_kind
    from augment.evaluation.monitor import build_monitor, check_monitor_inputs

    given = [k for k in values if ctx.get_parameter_source(k) == click.core.ParameterSource.COMMANDLINE]
    if resume and preset is not None:
        raise click.UsageError("--resume keeps the run's config; --preset starts a new run")
    if resume:
        allowed = training.RESUME_OVERRIDABLE
        saved = training.resumed_config(run_dir)  # no run there: that error, before any other
        # the original command with --resume added works: options it repeats must equal the saved values
        changed = [k for k in given if k not in allowed and not _same_setting(saved, k, values[k])]
        if changed:
            flag = "--" + changed[0].replace("_", "-")
            raise click.UsageError(f"--resume keeps the run's config; {flag} cannot change (the run has "
                                   f"{_saved_setting(saved, changed[0])!r}; may change: "
                                   f"{', '.join('--' + a.replace('_', '-') for a in allowed)})")
        overrides = {k: values[k] for k in given if k in allowed and not _same_setting(saved, k, values[k])}
        cfg = training.with_overrides(saved, overrides)
    else:
        dataset = values.pop("dataset")  # None: recognised from --data-dir once the options are checked
        try:  # options that contradict each other: a usage error, as an option out of range is
            if preset is None:
                cfg = TrainConfig(model=ModelConfig(**pick(ModelConfig, values)),
                                  subset=SubsetSpec(**pick(SubsetSpec, values)), **pick(TrainConfig, values))
            else:  # the preset's settings, then the options given on the command line
                chosen = {k: v for k, v in values.items() if k in given or k == "num_classes"}
                cfg = preset_config(preset, model=pick(ModelConfig, chosen), subset=pick(SubsetSpec, chosen),
                                    **pick(TrainConfig, chosen))
        except ConfigError as e:
            raise click.UsageError(str(e)) from None
        cfg = dataclasses.replace(cfg, dataset=source_kind(cfg.data_dir, dataset))
    # every check of the run before anything is written or trained (and one line here, not one per rank)
    training.preflight(run_dir, cfg, resuming=resume)
    check_monitor_inputs(cfg)
    if dry_run:  # the config is the result: JSON for people too (config.json's format), one line with --json
        print_result(as_json, cfg.to_dict(),
                     f"checks passed; the run in {run_dir} would use this config:\n{cfg.to_json()}")
        return
    if nproc > 1:
        _launch_torchrun(nproc)
        return
    is_rank0 = os.environ.get("RANK", "0") == "0"
    monitor = build_monitor(cfg, log=lambda line: click.echo(line, err=True) if is_rank0 else None)
    if resume:
        generator = training.resume(run_dir, overrides, progress=not quiet, monitor=monitor)
    else:
        generator = training.train(cfg, run_dir, progress=not quiet, monitor=monitor)
    if is_rank0:  # under torchrun, rank 0 alone reports
        print_result(as_json, {"run_dir": str(run_dir), "generator": str(generator)},
                     f"trained: the generator is {generator} (config, logs, sample grids and checkpoints in {run_dir})")


def _saved_setting(cfg: TrainConfig, name: str):
    for section in (cfg.model, cfg.subset):
        if name in type(section).__dataclass_fields__:
            return getattr(section, name)
    return getattr(cfg, name)


def _same_setting(cfg: TrainConfig, name: str, value) -> bool:
    """Whether ``value`` given on the command line is the saved config's setting ``name``
    (paths compare as the files they name)."""
    saved = _saved_setting(cfg, name)
    if saved == value:
        return True
    if name in ("data_dir", "init_generator") and saved is not None and value is not None:
        return Path(saved).expanduser().resolve() == Path(value).expanduser().resolve()
    return False


def _launch_torchrun(nproc: int) -> None:
    """Re-run this command under ``torchrun --standalone --nproc-per-node nproc``."""
    args = _without_nproc(sys.argv[1:])
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
           f"--nproc-per-node={nproc}", "-m", "augment", *args]
    proc = subprocess.Popen(cmd)
    try:
        rc = proc.wait()
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM here: torchrun stops its workers, then we go
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        raise
    if rc != 0:
        raise click.ClickException(f"distributed training failed: torchrun exited with status {rc} "
                                   f"(a rank stopped; its error is printed above)")


def _without_nproc(argv: list[str]) -> list[str]:
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a == "--nproc":
            skip = True
        elif not a.startswith("--nproc="):
            out.append(a)
    return out
