"""The balanced grid: n real images per class, synthetic:real ratios r, its methods and regimes.

Methods (``methods_of("balanced")``): ``none`` (real only), ``classical`` (per-sample random
affine), ``synthetic`` (real + r x n synthetic per class, or synthetic only when r = inf; those
cells come from ``synthetic_only``), ``classical+synthetic`` (both). Fair generators are trained
on the cell's own n-per-class subset (``fair_n``, ``fair_seeds``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

from augment.config import SubsetSpec
from augment.downstream.grid import Cell, GridConfig, option, redefault
from augment.downstream.methods import methods_of
from augment.errors import ConfigError


@dataclass(frozen=True)
class BalancedGridConfig(GridConfig):
    """The balanced grid and its fixed classifier budget. ``n_per_class`` entries: int or None (all)."""

    kind = "balanced"
    key_columns = ("n_per_class", "ratio", "method", "regime", "seed")
    result_columns = key_columns + ("test_accuracy", "train_images", "seconds")
    budget_fields = ("classifier_steps", "classifier_batch", "synthetic_only_per_class")

    methods: tuple = redefault("methods", methods_of("balanced"))
    n_per_class: tuple = option((10, 50, 100, 500, None), "real images per class, e.g. '10,100,all'", "sizes")
    ratios: tuple = option((0.5, 1.0, 2.0, 4.0, 8.0), "synthetic:real ratios, e.g. '1,4'", "numbers")
    fair_n: tuple = option((10, 100, 500), "the n values with fair-regime cells, e.g. '10,100,500'", "ints")
    fair_seeds: Optional[tuple] = option(None, "the seeds with fair-regime cells, e.g. '0,1,2', or 'all'",
                                         "ints or all", none="all")
    synthetic_only: bool = True
    synthetic_only_per_class: int = 5000
    classifier_steps: int = redefault("classifier_steps", 2000)
    # the H100 main run was at 10% agreement at 5,000 steps and clean from 8,000 (experiments/results/h100)
    fair_gan_steps: int = redefault("fair_gan_steps", 10000)

    def __post_init__(self) -> None:
        super().__post_init__()
        if any(n is not None and n < 1 for n in self.n_per_class):
            shown = ", ".join("all" if n is None else str(n) for n in self.n_per_class)
            raise ConfigError(f"n_per_class entries must be >= 1 (or all), got {shown}")
        if any(n is None or n < 1 for n in self.fair_n) or (
                self.fair_seeds is not None and any(s not in self.seeds for s in self.fair_seeds)):
            raise ConfigError("fair_n entries must be >= 1 (a fair generator for n = all is the shipped one); "
                              "fair_seeds must be among seeds")
        if any(not r > 0 for r in self.ratios):
            raise ConfigError("ratios must be > 0 (ratio 0 is the cells without synthetic data)")

    def _has_fair(self, n: Optional[int], seed: int) -> bool:
        return n in self.fair_n and (self.fair_seeds is None or seed in self.fair_seeds)

    def cells(self) -> list[Cell]:
        """Per seed: per n, each method (its regimes and ratios where it adds synthetic data); then
        the synthetic-only cells (cheap cells first within each seed)."""
        cells = []
        for seed in self.seeds:
            for n in self.n_per_class:
                subset = SubsetSpec(n_per_class=n)
                for name in self.methods:
                    if not self.method(name).uses_synthetic:
                        cells.append(Cell(subset, name, "-", seed))
                        continue
                    for regime in self.regimes:
                        if regime == "fair" and not self._has_fair(n, seed):
                            continue
                        cells += [Cell(subset, name, regime, seed, float(r)) for r in self.ratios]
            if self.synthetic_only and "synthetic" in self.methods:
                for regime in self.regimes:
                    ns = [None] if regime == "shipped" else [n for n in self.n_per_class if self._has_fair(n, seed)]
                    cells += [Cell(SubsetSpec(n_per_class=n), "synthetic", regime, seed, math.inf) for n in ns]
        return cells

    def cell_columns(self, cell: Cell) -> dict:
        n = cell.subset.n_per_class
        return {"n_per_class": "all" if n is None else n, "ratio": cell.ratio, "method": cell.method,
                "regime": cell.regime, "seed": cell.seed}

    def row_subset(self, row: dict) -> SubsetSpec:
        n = str(row["n_per_class"])
        return SubsetSpec(n_per_class=None if n == "all" else int(n))

    def generator_name(self, subset: SubsetSpec, seed: int) -> str:
        return f"fair n={subset.n_per_class} seed={seed}"

    def scores(self, accuracy: float, recall: list, counts: list) -> dict:
        return {"test_accuracy": round(accuracy, 6), **{f"acc_{c}": round(a, 6) for c, a in enumerate(recall)}}
