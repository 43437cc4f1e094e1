"""The named grids of ``augment experiment --preset``: each a grid config and one line on what it is."""

from __future__ import annotations

from typing import NamedTuple

from augment.downstream.balanced_grid import BalancedGridConfig
from augment.downstream.grid import GridConfig
from augment.downstream.longtail_grid import LongtailGridConfig


class Preset(NamedTuple):
    grid: GridConfig
    about: str  # one line for --help


PRESETS = {
    "quick": Preset(BalancedGridConfig(n_per_class=(10, 100), ratios=(1.0, 4.0), regimes=("shipped",), seeds=(0, 1),
                                       classifier_steps=300, synthetic_only_per_class=1000, diversity_per_class=100),
                    "CPU, ~10 min, shipped generator"),
    # quarter-width fair generators of 5,000 steps (about 25 min each; the reference size runs
    # 0.65 steps/s here) unless --fair-dir holds them already
    "cpu": Preset(BalancedGridConfig(n_per_class=(10, 100, 500), ratios=(1.0, 4.0), fair_seeds=(0,),
                                     classifier_steps=1000, synthetic_only_per_class=2000, diversity_per_class=200,
                                     fair_gan_steps=5000, fair_widths=(32, 16)),
                  "~1 h on 2 cores, both regimes (fair generators from --fair-dir)"),
    "full": Preset(BalancedGridConfig(), "the whole balanced grid (GPU; fair generators trained on the fly)"),
    # fair generators at half width (64/32) for 4,000 steps (about 3 h each on one core), 1,000
    # classifier steps a cell; about ten hours in all, two processes at a time
    "longtail-cpu": Preset(LongtailGridConfig(), "long-tailed MNIST (rho 10, 100), baselines vs synthetic "
                                                 "rebalancing, ~10 h on 2 cores"),
    "longtail-gpu": Preset(LongtailGridConfig(classifier_steps=2000, fair_gan_steps=10000, fair_widths=(128, 64)),
                           "the same at reference size (GPU)"),
}
