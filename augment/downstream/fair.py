"""Fair generators: a generator trained by this project's trainer on exactly the real images of
a cell's classifier (same subset spec, same seed). Where each lives (``fair_run_name``), the
``TrainConfig`` it is trained with (``fair_train_config``), training or resuming it
(``train_or_resume``), and the checks, before anything is written, that a run found in the fair
directory was trained as the grid asks (``check_fair_run``) and is the one earlier rows used
(``check_recorded_fair_generator``).
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path
from typing import Callable, Optional

import torch

from augment.checkpoint import generator_step, read_generator_file
from augment.config import ModelConfig, SubsetSpec, TrainConfig, preset_config
from augment.downstream.grid import GridConfig
from augment.errors import ConfigError
from augment.fileio import sha256_file
from augment.training.loop import resume, train
from augment.training.real_data import resolved_real_sampling


def fair_run_name(subset: SubsetSpec, seed: int) -> str:
    """The directory of a fair generator under the fair directory, e.g. ``n10_seed0``, ``lt100_seed0``."""
    return f"{subset.label()}_seed{seed}"


def fair_train_config(grid: GridConfig, subset: SubsetSpec, seed: int, data_dir: Optional[Path], dataset: str,
                      device: torch.device) -> TrainConfig:
    """The ``TrainConfig`` of the fair generator of (``subset``, ``seed``): the grid's
    ``fair_recipe`` (the reference recipe, or an ``augment train`` preset less its in-training
    evaluation: picking the kept weights would use labels and test images the cell's classifier
    does not have), ``fair_widths``, ``fair_gan_steps`` and ``fair_options``, the cell's seed (so the same
    real images as its classifier), the step that is fastest on ``device``, ten sample images and
    checkpoints over the run."""
    g_width, d_width = grid.fair_widths
    steps = grid.fair_gan_steps
    fields = dict(data_dir=str(data_dir) if data_dir else None, dataset=dataset, seed=seed, max_steps=steps,
                  step_impl="auto", device=str(device), sample_every=max(1, steps // 10),
                  checkpoint_every=max(1, steps // 10), tensorboard=False, **grid.fair_options())
    model = dict(num_classes=None, g_width=g_width, d_width=d_width)
    if grid.fair_recipe == "reference":
        return TrainConfig(model=ModelConfig(**model), subset=subset, **fields)
    return preset_config(grid.fair_recipe, model=model, subset=dataclasses.asdict(subset), eval_every=None,
                         keep_best=None, **fields)


def train_or_resume(run: Path, cfg: TrainConfig, progress: bool, log: Callable[[str], None]) -> Path:
    """``run``'s generator file: resumed from its checkpoint when it has one, else trained anew
    (a run stopped before its first checkpoint starts again)."""
    if (run / "checkpoints" / "last.pt").exists():
        return resume(run, {"max_steps": cfg.max_steps}, progress=progress)
    if (run / "config.json").is_file():  # a run of ours stopped before its first checkpoint
        log(f"{run} stopped before its first checkpoint; starting it again")
        shutil.rmtree(run)
    return train(cfg, run, progress=progress)


def check_fair_run(run: Path, expected: TrainConfig, settings: tuple) -> None:
    """Refuse to reuse or resume the fair run in ``run`` when its config.json says it was trained
    otherwise than ``expected`` (the grid's TrainConfig for it) in one of the grid's
    ``fair_settings`` (key, section, option): its rows would be labelled with settings it did not
    have (a key the config lacks has its TrainConfig default); also one stopped short of the
    grid's steps (``check_fair_run_finished``). A run without weights or a checkpoint starts
    afresh, and weights without a readable config (trained elsewhere) are taken as they are:
    run.json records them."""
    if not ((run / "generator.safetensors").exists() or (run / "checkpoints" / "last.pt").exists()):
        return
    weights = run / "generator.safetensors"
    if expected.keep_best is None and weights.is_file() and "selected_by" in read_generator_file(weights)[2]:
        raise ConfigError(f"{weights} holds the weights an in-training evaluation picked (keep_best); a fair "
                          f"generator keeps its last ones (--fair-recipe): train it again, or pass another --fair-dir")
    try:
        saved = json.loads((run / "config.json").read_text())
    except (OSError, ValueError):
        return
    if not isinstance(saved, dict):
        return
    want = {**expected.to_dict(), "real_sampling": resolved_real_sampling(expected)}
    defaults = TrainConfig().to_dict()
    for key, section, option in settings:
        part = (saved.get(section) if section else saved)
        have = part[key] if isinstance(part, dict) and key in part else (
            defaults[section][key] if section else defaults[key])
        wanted = want[section][key] if section else want[key]
        if have != wanted:
            raise ConfigError(f"{run} was trained with {key}={have!r}, the grid asks for {wanted!r}: set {option} to "
                              f"match, or pass another --fair-dir")
    check_fair_run_finished(run, expected.max_steps)


def check_fair_run_finished(run: Path, steps: int) -> None:
    """Refuse a fair run of ours (its config.json beside it) whose generator stopped short of the
    grid's ``steps`` (a time limit, ``max_minutes``, ended it): its rows would stand for a longer
    run than it was. A generator file that does not say its step is taken as it is."""
    weights = run / "generator.safetensors"
    if not (weights.is_file() and (run / "config.json").is_file()):
        return
    step = generator_step(weights)
    if step is None or step >= steps:
        return
    how = (f"continue it with `augment train --run-dir {run} --resume --max-steps {steps}` (and a larger "
           f"--max-minutes)"
           if (run / "checkpoints" / "last.pt").is_file() else "train it again")
    raise ConfigError(f"{run}: its generator stopped at step {step} of the {steps} the grid asks for; {how}, or "
                      f"pass another --fair-dir")


def check_recorded_fair_generator(weights: Path, recorded_sha256: Optional[str], cells_to_run: bool) -> None:
    """Where earlier rows were made with a fair generator (run.json records its SHA-256), the one
    at ``weights`` must be that one: new rows or the diversity table would mix two generators under
    one name. A missing one is refused only when cells are left to run with it (a new one would be
    trained, and differ); otherwise the rows keep what was recorded of it."""
    if recorded_sha256 is None:
        return
    if not weights.is_file():
        if cells_to_run:
            raise ConfigError(f"earlier cells used the fair generator with SHA-256 {recorded_sha256[:12]}, which is "
                              f"no longer at {weights}; a new one would differ: put it back, pass --fair-dir "
                              f"where it is, or use another --out")
        return
    if sha256_file(weights) != recorded_sha256:
        raise ConfigError(f"{weights} is not the fair generator earlier cells used (SHA-256 "
                          f"{recorded_sha256[:12]}); pass --fair-dir where that one is, or use another --out")
