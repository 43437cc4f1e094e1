"""The longtail grid: does a conditional generator trained on a long-tailed set rebalance its
rare classes better than the baselines a longtail practitioner would use?

A cell is one classifier run on the MNIST-LT subset of imbalance ratio rho (``SubsetSpec``:
class c keeps ``n_max * rho^(-c/(C-1))`` images, rounded half up) with one method, a generator
regime and a seed. Methods (``methods_of("longtail")``): ``erm`` (plain training),
``balanced`` (class-balanced resampling), ``logit-adjusted`` (tau = ``logit_adjust_tau``),
``classical`` and its combinations with both; ``top-up`` (every class filled with synthetic
images up to ``top_up_target``; a class with more real images keeps them all), with or without
``classical``; ``classical+synthetic+logit-adjusted`` (``synthetic_ratio`` x n_c synthetic images
added to each class, the imbalance kept). A fair generator is trained on exactly the cell's
long-tailed images (same subset spec, same seed). Every cell is scored on the balanced test
set: accuracy, balanced accuracy (mean per-class recall), worst-class recall, the mean recall
of the ``RARE`` rarest classes, and every class's recall.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

from augment.config import CLASS_ORDERS, LONG_TAIL_N_MAX, REAL_SAMPLINGS, SubsetSpec
from augment.downstream.grid import RECIPE_SETTINGS, Cell, GridConfig, option, redefault
from augment.downstream.methods import methods_of
from augment.errors import ConfigError

RARE = 3  # "the rarest classes": this many, by training count


def rarest_classes(counts: list[int], k: int = RARE) -> list[int]:
    """The ``k`` classes with the fewest training images (ties by class id)."""
    return sorted(range(len(counts)), key=lambda c: (counts[c], c))[:k]


def longtail_scores(accuracy: float, recall: list[float], train_counts: list[int]) -> dict:
    """Accuracy, balanced accuracy (mean per-class recall), worst-class recall, the mean recall
    of the ``RARE`` classes with the fewest training images, and ``recall_c`` per class."""
    rare = rarest_classes(train_counts, RARE)
    return {"test_accuracy": accuracy, "balanced_accuracy": sum(recall) / len(recall),
            "worst_recall": min(recall), "rare_recall": sum(recall[c] for c in rare) / len(rare),
            **{f"recall_{c}": r for c, r in enumerate(recall)}}


@dataclass(frozen=True)
class LongtailGridConfig(GridConfig):
    """A longtail grid and its fixed classifier budget; its fair generators draw their critic's
    real batches as ``fair_real_sampling`` says."""

    kind = "longtail"
    key_columns = ("imbalance_ratio", "method", "regime", "seed")
    result_columns = key_columns + ("logit_adjust_tau", "synthetic_ratio", "top_up_target", "test_accuracy",
                                    "balanced_accuracy", "worst_recall", "rare_recall", "train_images", "seconds")
    # shared by every row of a directory; tau, the synthetic ratio and the top-up target are
    # columns of the rows that use them (``method_settings``), checked row by row (``check_method_settings``)
    budget_fields = ("classifier_steps", "classifier_batch", "n_max", "class_order")
    fair_settings = (("imbalance_ratio", "subset", "--imbalance-ratios"), ("n_max", "subset", "the preset's n_max"),
                     ("class_order", "subset", "the preset's class_order"), ("seed", None, "--seeds"),
                     ("max_steps", None, "--fair-gan-steps"), ("real_sampling", None, "--fair-real-sampling"),
                     ("critic_augment", None, "--fair-critic-augment"), ("g_width", "model", "--fair-widths"),
                     ("d_width", "model", "--fair-widths")) + RECIPE_SETTINGS

    methods: tuple = redefault("methods", methods_of("longtail"))
    imbalance_ratios: tuple = option((10.0, 100.0), "the imbalance ratios rho, e.g. '10,100'", "numbers")
    n_max: int = LONG_TAIL_N_MAX
    class_order: str = "index"
    regimes: tuple = redefault("regimes", ("fair", "shipped"))
    logit_adjust_tau: float = option(0.5, "tau of the logit-adjusted loss (0.5 was tuned on validation, "
                                     "the paper's is 1)", "positive")
    synthetic_ratio: float = option(1.0, "classical+synthetic+logit-adjusted adds this many synthetic images per "
                                    "real one of each class", "positive")
    top_up_target: Optional[int] = option(None, "fill each class up to this many images in a top-up (a class "
                                          "with more real images keeps them all)", "whole",
                                          none="the largest class's count, n_max")
    fair_gan_steps: int = redefault("fair_gan_steps", 4000)
    fair_widths: tuple = redefault("fair_widths", (64, 32))
    fair_real_sampling: str = option("auto", "how the fair generators draw real batches (those trained here; one "
                                     "found in --fair-dir must have been trained so)", "choice",
                                     choices=REAL_SAMPLINGS)

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.imbalance_ratios or any(not 1 <= r < math.inf for r in self.imbalance_ratios):
            raise ConfigError(f"imbalance ratios must be finite and >= 1, got {self.imbalance_ratios}")
        if self.class_order not in CLASS_ORDERS or self.fair_real_sampling not in REAL_SAMPLINGS:
            raise ConfigError(f"class_order must be one of {CLASS_ORDERS}, fair_real_sampling one of {REAL_SAMPLINGS}")
        if not 0 < self.logit_adjust_tau < math.inf or not 0 < self.synthetic_ratio < math.inf:
            raise ConfigError(f"logit_adjust_tau and synthetic_ratio must be finite and > 0, "
                              f"got {self.logit_adjust_tau!r} and {self.synthetic_ratio!r}")
        if self.top_up_target is not None and (isinstance(self.top_up_target, bool) or
                                               not isinstance(self.top_up_target, int) or self.top_up_target < 1):
            raise ConfigError(f"top_up_target must be a whole number >= 1 (or None), got {self.top_up_target!r}")

    def subset(self, imbalance_ratio: float) -> SubsetSpec:
        return SubsetSpec(imbalance_ratio=float(imbalance_ratio), n_max=self.n_max, class_order=self.class_order)

    def cells(self) -> list[Cell]:
        """Per seed and ratio: the methods without synthetic data, then each regime's others."""
        cells = []
        for seed in self.seeds:
            for rho in self.imbalance_ratios:
                subset = self.subset(rho)
                plain = [m for m in self.methods if not self.method(m).uses_synthetic]
                cells += [Cell(subset, m, "-", seed) for m in plain]
                cells += [Cell(subset, m, regime, seed, self._ratio(m)) for regime in self.regimes
                          for m in self.methods if m not in plain]
        return cells

    def _ratio(self, method: str) -> float:
        return self.synthetic_ratio if self.method(method).synthetic == "ratio" else 0.0

    def cell_columns(self, cell: Cell) -> dict:
        return {"imbalance_ratio": cell.subset.imbalance_ratio, "method": cell.method, "regime": cell.regime,
                "seed": cell.seed}

    def row_subset(self, row: dict) -> SubsetSpec:
        return self.subset(float(row["imbalance_ratio"]))

    def generator_name(self, subset: SubsetSpec, seed: int) -> str:
        return f"fair {subset.label()}_seed{seed}"

    def method_settings(self, method: str) -> dict:
        m = self.method(method)
        return {"logit_adjust_tau": self.logit_adjust_tau if m.logit_adjusted else "",
                "synthetic_ratio": self.synthetic_ratio if m.synthetic == "ratio" else "",
                "top_up_target": (self.top_up_target or self.n_max) if m.synthetic == "top-up" else ""}

    def scores(self, accuracy: float, recall: list, counts: list) -> dict:
        scores = longtail_scores(accuracy, recall, counts)
        return {**{k: round(v, 6) for k, v in scores.items()}, **{f"count_{c}": n for c, n in enumerate(counts)}}

    def fair_options(self) -> dict:
        return {**super().fair_options(), "real_sampling": self.fair_real_sampling}
