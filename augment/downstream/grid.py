"""The grid of an augmentation experiment and its results file.

A cell is one classifier run: real images per class n, synthetic:real ratio r, augmentation,
generator regime and seed. ``grid_cells`` lists the cells of a ``GridConfig`` in a stable
order; ``results.csv`` holds one row per finished cell (``read_results``, ``write_results``,
rewritten atomically after each cell) and ``cell_key`` matches rows to cells.

Augmentations: ``none`` (real only), ``classical`` (per-sample random affine, see
``augment.downstream.affine``), ``synthetic`` (real + r x n synthetic per class, or synthetic only
when r = inf), ``classical+synthetic`` (both). Regimes: ``shipped`` (the default generator,
trained on all 60k labelled images: an upper bound that leaks labels a low-n classifier does
not have), ``fair`` (a generator trained by this project's trainer on the same n-per-class
subset the classifier sees: the real use case), ``-`` for cells without synthetic data.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from augment.config import CRITIC_AUGMENT_POLICIES
from augment.errors import ConfigError
from augment.fileio import atomic_write_text

AUGMENTATIONS = ("none", "classical", "synthetic", "classical+synthetic")
REGIMES = ("shipped", "fair")
RESULT_COLUMNS = ("n_per_class", "ratio", "augmentation", "regime", "seed", "test_accuracy",
                  "train_images", "seconds")


@dataclass(frozen=True)
class Cell:
    """One run. ``n_per_class`` None = all real images; ``ratio`` inf = synthetic only."""

    n_per_class: Optional[int]
    ratio: float
    augmentation: str
    regime: str
    seed: int

    @property
    def key(self) -> str:
        n = "all" if self.n_per_class is None else self.n_per_class
        return f"n={n}|r={self.ratio:g}|{self.augmentation}|{self.regime}|seed={self.seed}"

    @property
    def uses_synthetic(self) -> bool:
        return "synthetic" in self.augmentation

    @property
    def uses_classical(self) -> bool:
        return "classical" in self.augmentation


@dataclass(frozen=True)
class GridConfig:
    """The grid and the fixed classifier budget. ``n_per_class`` entries: int or None (all)."""

    n_per_class: tuple = (10, 50, 100, 500, None)
    ratios: tuple = (0.5, 1.0, 2.0, 4.0, 8.0)
    augmentations: tuple = AUGMENTATIONS
    regimes: tuple = REGIMES
    fair_n: tuple = (10, 100, 500)  # n for which a fair generator is trained
    fair_seeds: Optional[tuple] = None  # seeds with fair cells (None: every seed)
    synthetic_only: bool = True
    synthetic_only_per_class: int = 5000
    seeds: tuple = (0, 1, 2)
    classifier_steps: int = 2000
    classifier_batch: int = 128
    # generator steps of each fair generator trained here (fast path on a GPU). The H100 main
    # run was at 10% agreement at 5,000 steps and clean from 8,000 (experiments/results/h100)
    fair_gan_steps: int = 10000
    fair_critic_augment: str = "none"  # TrainConfig.critic_augment of fair generators trained here
    fair_widths: tuple = (128, 64)  # (g_width, d_width) of fair generators trained here (reference)
    diversity_per_class: int = 200  # synthetic images per class for the diversity table

    def __post_init__(self) -> None:
        bad = [a for a in self.augmentations if a not in AUGMENTATIONS]
        if bad:
            raise ConfigError(f"unknown augmentation(s) {bad}; choose from {AUGMENTATIONS}")
        bad = [r for r in self.regimes if r not in REGIMES]
        if bad:
            raise ConfigError(f"unknown regime(s) {bad}; choose from {REGIMES}")
        if any(n is not None and n < 1 for n in self.n_per_class):
            shown = ", ".join("all" if n is None else str(n) for n in self.n_per_class)
            raise ConfigError(f"n_per_class entries must be >= 1 (or all), got {shown}")
        if not self.seeds:
            raise ConfigError("seeds is empty")
        if any(n is None or n < 1 for n in self.fair_n) or (
                self.fair_seeds is not None and any(s not in self.seeds for s in self.fair_seeds)):
            raise ConfigError("fair_n entries must be >= 1 (a fair generator for n = all is the shipped one); "
                              "fair_seeds must be among seeds")
        if self.fair_critic_augment not in CRITIC_AUGMENT_POLICIES:
            raise ConfigError(f"fair_critic_augment must be one of {', '.join(CRITIC_AUGMENT_POLICIES)}")
        if len(self.fair_widths) != 2 or any(not isinstance(w, int) or w < 1 for w in self.fair_widths):
            raise ConfigError(f"fair_widths must be two widths >= 1 (g_width, d_width), got {self.fair_widths!r}")
        if any(not r > 0 for r in self.ratios):
            raise ConfigError("ratios must be > 0 (ratio 0 is the 'none'/'classical' cells)")


PRESETS = {
    # CPU, about 10 minutes: the shipped generator only.
    "quick": GridConfig(n_per_class=(10, 100), ratios=(1.0, 4.0), regimes=("shipped",), seeds=(0, 1),
                        classifier_steps=300, synthetic_only_per_class=1000, diversity_per_class=100),
    # The full grid: a GPU job (fair generators are trained on the fly).
    "full": GridConfig(),
    # What 2 CPU cores do in a few hours: no n = all, two ratios, fair cells for seed 0 only,
    # from quarter-width fair generators of 5,000 steps (about 25 min each; the reference size
    # runs 0.65 steps/s here) unless ``--fair-dir`` holds them already.
    "cpu": GridConfig(n_per_class=(10, 100, 500), ratios=(1.0, 4.0), fair_seeds=(0,),
                      classifier_steps=1000, synthetic_only_per_class=2000, diversity_per_class=200,
                      fair_gan_steps=5000, fair_widths=(32, 16)),
}


def _has_fair(grid: GridConfig, n: Optional[int], seed: int) -> bool:
    return n in grid.fair_n and (grid.fair_seeds is None or seed in grid.fair_seeds)


def grid_cells(grid: GridConfig) -> list[Cell]:
    """All cells of a grid, in a stable order (cheap cells first within each seed)."""
    cells = []
    for seed in grid.seeds:
        for n in grid.n_per_class:
            for aug in grid.augmentations:
                if aug in ("none", "classical"):
                    cells.append(Cell(n, 0.0, aug, "-", seed))
                    continue
                for regime in grid.regimes:
                    if regime == "fair" and not _has_fair(grid, n, seed):
                        continue
                    cells += [Cell(n, float(r), aug, regime, seed) for r in grid.ratios]
        if grid.synthetic_only and "synthetic" in grid.augmentations:
            for regime in grid.regimes:
                ns = [None] if regime == "shipped" else \
                    [n for n in grid.n_per_class if _has_fair(grid, n, seed)]
                cells += [Cell(n, math.inf, "synthetic", regime, seed) for n in ns]
    return cells


# ------------------------------------------------------------------------------ the results


def read_results(path: Path) -> list[dict]:
    """The rows of a results.csv as dicts of strings; [] when there is no file yet."""
    if not path.exists():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def write_results(path: Path, rows: list[dict], first_columns: tuple = RESULT_COLUMNS) -> None:
    """Rewrite the whole CSV atomically (so a killed run keeps every finished cell): the
    ``first_columns``, then any other column of the rows in order of appearance."""
    columns = list(first_columns)
    for row in rows:
        columns += [k for k in row if k not in columns]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, buf.getvalue())


def cell_key(row: dict) -> str:
    """The ``Cell.key`` of a results.csv row (read back as strings)."""
    n = row["n_per_class"]
    ratio = float(row["ratio"])
    return f"n={n}|r={ratio:g}|{row['augmentation']}|{row['regime']}|seed={int(row['seed'])}"
