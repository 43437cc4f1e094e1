"""The long-tailed grid's fair generators: where each lives (``fair_run_name``), the TrainConfig
it is trained with (``fair_config``), and the checks that a run found in the fair directory was
trained as the grid asks (``check_fair_run_settings``) and is the one earlier rows used
(``check_fair_generators``). Training itself is ``augment.downstream.runner.train_or_resume``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import torch

from augment.config import SubsetSpec
from augment.downstream.records import recorded_generator_sha256
from augment.downstream.runner import check_fair_run_finished, fair_train_config
from augment.errors import ConfigError
from augment.fileio import sha256_file
from augment.training.real_data import resolved_real_sampling


def fair_run_name(subset: SubsetSpec, seed: int) -> str:
    """The directory of a fair generator under the fair directory, e.g. ``lt100_seed0``."""
    return f"{subset.label()}_seed{seed}"


def fair_config(grid, imbalance_ratio: float, seed: int, data_dir: Optional[Path],
                dataset: str, device: torch.device):
    """The TrainConfig of the fair generator of (imbalance_ratio, seed) under the grid's ``fair_*``
    settings."""
    return fair_train_config(grid.fair_widths, grid.fair_gan_steps, seed, data_dir, dataset, device,
                             grid.subset(imbalance_ratio), real_sampling=grid.fair_real_sampling,
                             critic_augment=grid.fair_critic_augment)


# what a fair run's config.json must say to stand for a grid's fair generator: (key, where in the
# config, the CLI option that sets it)
FAIR_SETTINGS = (("imbalance_ratio", "subset", "--imbalance-ratios"), ("n_max", "subset", "the preset's n_max"),
                 ("class_order", "subset", "the preset's class_order"), ("seed", None, "--seeds"),
                 ("max_steps", None, "--fair-gan-steps"), ("real_sampling", None, "--fair-real-sampling"),
                 ("critic_augment", None, "--fair-critic-augment"), ("g_width", "model", "--fair-widths"),
                 ("d_width", "model", "--fair-widths"))


def check_fair_run_settings(run: Path, expected) -> None:
    """Refuse to reuse or resume the fair run in ``run`` when its config.json says it was trained
    otherwise than ``expected`` (the grid's TrainConfig for it): its rows would be labelled with
    settings it did not have; also one stopped short of its steps (``check_fair_run_finished``).
    A run without weights or a checkpoint starts afresh, and weights without a readable config
    (trained elsewhere) are taken as they are: run.json records them."""
    if not ((run / "generator.safetensors").exists() or (run / "checkpoints" / "last.pt").exists()):
        return
    try:
        saved = json.loads((run / "config.json").read_text())
    except (OSError, ValueError):
        return
    if not isinstance(saved, dict):
        return
    want = {**expected.to_dict(), "real_sampling": resolved_real_sampling(expected)}
    for key, section, option in FAIR_SETTINGS:
        have = (saved.get(section) or {}).get(key) if section else saved.get(key)
        if have != (want[section][key] if section else want[key]):
            raise ConfigError(f"{run} was trained with {key}={have!r}, the grid asks for "
                              f"{want[section][key] if section else want[key]!r}: set {option} to match, or "
                              f"pass another --fair-dir")
    check_fair_run_finished(run, expected.max_steps)


def check_fair_generators(grid, out_dir: Path, fair_root: Path, rows: list[dict]) -> None:
    """Before anything is written: where earlier rows used a fair generator, the one there now
    must be that one (run.json records its SHA-256); a retrained one would mix two under one name."""
    used = {(float(r["imbalance_ratio"]), int(r["seed"])) for r in rows if r["regime"] == "fair"}
    for rho, seed in sorted(used):
        name = fair_run_name(grid.subset(rho), seed)
        recorded = recorded_generator_sha256(out_dir, f"fair {name}")
        weights = fair_root / name / "generator.safetensors"
        if recorded is not None and (not weights.is_file() or sha256_file(weights) != recorded):
            raise ConfigError(f"earlier cells used the fair generator {name} with SHA-256 {recorded[:12]}, which is "
                              f"not at {weights}; pass --fair-dir where it is, or use another --out")
