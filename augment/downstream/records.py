"""What an experiment directory records beside ``results.csv``, and the checks that keep
its rows comparable.

``run.json``: the classifier budget every row shares, the generators behind the rows (file,
SHA-256, model config, step, how they were trained) and one entry per invocation (command,
grid, machine, wall time). ``diversity.csv``: per-class agreement, diversity and coverage of
each generator. ``check_same_budget`` refuses to add cells made under another budget or
another shipped generator than the directory's rows.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import time
from pathlib import Path
from typing import Optional

import torch

from augment.checkpoint import read_generator_file
from augment.device import machine_description
from augment.downstream.grid import GridConfig
from augment.errors import ConfigError
from augment.fileio import PathLike, atomic_write_text, sha256_file
from augment.synthetic.shipped import verified_default_generator_path


def budget(grid: GridConfig) -> dict:
    """The fields of a grid config that every row of its directory shares (``budget_fields``:
    the classifier's budget and whatever else makes rows comparable)."""
    return {k: getattr(grid, k) for k in grid.budget_fields}


# diversity.csv's row name for real training images scored like a generator's samples, at the same n
REAL_CEILING = "real train (ceiling)"


def check_same_budget(out_dir: Path, grid: GridConfig, rows: list[dict], generator: Optional[PathLike]) -> None:
    """Refuse to add cells to ``out_dir`` under another classifier budget or another shipped
    generator than its rows were made with (as recorded in its run.json): the tables would mix
    them silently."""
    if not rows:
        return
    info = read_run_info(out_dir)
    recorded = info.get("budget") or {}
    for field, value in budget(grid).items():
        if field in recorded and recorded[field] != value:
            raise ConfigError(f"{out_dir} holds cells made with {field}={recorded[field]}, not "
                              f"{value}; use another --out (or the same budget)")
    shipped = _recorded_generator(info, "shipped")
    if "sha256" in shipped and any(r["regime"] == "shipped" for r in rows):
        if sha256_file(_shipped_path(generator)) != shipped["sha256"]:
            raise ConfigError(f"{out_dir} holds cells made with another shipped generator "
                              f"({shipped.get('path')}, SHA-256 {shipped['sha256'][:12]}); use another --out")


def record_budget(out_dir: Path, grid: GridConfig, rows: list[dict], generator: Optional[PathLike]) -> None:
    """Write run.json's budget, and which shipped generator the cells use, before the first cell
    runs, so that ``check_same_budget`` also guards a directory whose first invocation was
    killed before it wrote its full run.json. Kept as it is when rows already exist under a
    recorded budget."""
    info = read_run_info(out_dir)
    if rows and info.get("budget"):
        return
    info["budget"] = budget(grid)
    if "shipped" in grid.regimes:
        generators = info.get("generators") if isinstance(info.get("generators"), dict) else {}
        info["generators"] = {**generators, "shipped": describe_generator(_shipped_path(generator))}
    atomic_write_text(out_dir / "run.json", json.dumps(info, indent=2, default=str) + "\n")


def read_run_info(out_dir: Path) -> dict:
    """``out_dir``'s run.json; {} when it is missing or not a JSON object."""
    try:
        info = json.loads((out_dir / "run.json").read_text())
    except (OSError, ValueError):
        return {}
    return info if isinstance(info, dict) else {}


def _recorded_generator(info: dict, name: str) -> dict:
    """run.json's entry for the generator ``name``; {} when it has none."""
    generators = info.get("generators")
    entry = generators.get(name) if isinstance(generators, dict) else None
    return entry if isinstance(entry, dict) else {}


def _shipped_path(generator: Optional[PathLike]) -> Path:
    """The generator file the grid's "shipped" cells use: ``generator``, else the packaged one."""
    return Path(generator) if generator is not None else verified_default_generator_path()


def recorded_generator_sha256(out_dir: Path, name: str) -> Optional[str]:
    """The SHA-256 that run.json records for the generator ``name`` (e.g. "fair n=10 seed=0"),
    or None when it records none."""
    sha = _recorded_generator(read_run_info(out_dir), name).get("sha256")
    return sha if isinstance(sha, str) else None


def missing_generator(out_dir: Path, name: str, path: Path) -> dict:
    """run.json's entry for a generator the rows used that is no longer at ``path``: what an
    earlier run.json recorded of it, marked missing, and where it was looked for."""
    return {**_recorded_generator(read_run_info(out_dir), name), "missing": True, "looked_for": str(path)}


def read_diversity(path: Path) -> list[dict]:
    """The rows of a diversity.csv (numbers as floats, class as int); [] without the file."""
    try:
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
    except FileNotFoundError:
        return []
    return [{k: (v if k == "generator" else int(v) if k == "class" else float(v or "nan")) for k, v in r.items()}
            for r in rows]


def describe_generator(path: Path) -> dict:
    """Where a generator came from: its file, SHA-256, model config, training step and, when
    its run's config.json lies beside it, how it was trained."""
    model, _, metadata = read_generator_file(path)
    step = metadata.get("step")
    try:  # relative to the working directory when inside it (the repo: no machine-specific prefix)
        shown = str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        shown = str(path)
    info = {"path": shown, "sha256": sha256_file(path), "model": dataclasses.asdict(model),
            "step": int(step) if step is not None and step.isdigit() else None,
            "weights": metadata.get("weights", "live")}  # 'average': an EMA (ema_decay)
    settings = run_training_settings(path.parent)
    if settings is not None:
        info["training"] = settings
    return info


def run_training_settings(run: Path) -> Optional[dict]:
    """How the run in ``run`` trained (from its config.json; None without a readable one):
    n_per_class, seed, batch_size, n_critic, lr, critic_lr, real_batches, critic_augment,
    ema_decay, keep_best, max_steps, and for a long-tailed subset imbalance_ratio, n_max, class_counts, class_order
    and real_sampling. Configs older than critic_augment trained without it ("none"); older than
    critic_lr or ema_decay, with lr for both nets or without an average (None)."""
    try:
        train = json.loads((run / "config.json").read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(train, dict):
        return None
    subset = train.get("subset") if isinstance(train.get("subset"), dict) else {}
    train = {**train, **subset}
    keys = ("n_per_class", "seed", "batch_size", "n_critic", "lr", "critic_lr", "real_batches", "critic_augment",
            "ema_decay", "keep_best", "max_steps")
    if train.get("imbalance_ratio") is not None or train.get("class_counts") is not None:  # a long-tailed run
        keys += ("imbalance_ratio", "n_max", "class_counts", "class_order", "real_sampling")
    return {k: train.get(k, "none" if k == "critic_augment" else None) for k in keys}


def write_run_info(out_dir: Path, grid: GridConfig, device: torch.device, command: str,
                   seconds: float, cells_run: int, generators: dict, rows: list[dict]) -> None:
    """run.json: the classifier budget every row shares, the generators behind the rows
    (``describe_generator``) and one entry per invocation, with its grid (a rerun that only
    rebuilds the tables adds an entry with cells_run 0 instead of overwriting the wall time of
    the real run). ``cell_seconds_total`` sums the
    rows' own times, so it also counts cells of invocations that were stopped before their end."""
    path = out_dir / "run.json"
    invocations = read_run_info(out_dir).get("invocations", [])
    invocations.append({"command": command, "grid": dataclasses.asdict(grid), "device": str(device),
                        "machine": machine_description(device), "torch": torch.__version__,
                        "cpu_threads": torch.get_num_threads(),  # CPU results differ in the last digits by thread count
                        "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                        "wall_time_s": round(seconds, 1), "cells_run": cells_run})
    info = {"budget": budget(grid), "generators": generators,
            "invocations": invocations,
            "cells_run_total": sum(i.get("cells_run", 0) for i in invocations),
            "wall_time_s_total": round(sum(i.get("wall_time_s", 0.0) for i in invocations), 1),
            "cells_total": len(rows), "cell_seconds_total": round(sum(float(r["seconds"]) for r in rows), 1)}
    atomic_write_text(path, json.dumps(info, indent=2, default=str) + "\n")
