"""The method table: how a cell's classifier trains on its data.

A method is one row (``Method``): how the classifier draws its batches, its loss, whether each
image gets a random affine warp (classical augmentation), what synthetic data it adds and how
much, and how tables name it. The runner reads nothing else, so adding a method is adding a row
here (and its test); the grids whose ``grids`` it names run it by default and accept it in
``--methods``.
"""

from __future__ import annotations

from dataclasses import dataclass

GRID_KINDS = ("balanced", "longtail")
SAMPLINGS = ("uniform", "balanced")
SYNTHETIC = ("", "ratio", "top-up")


@dataclass(frozen=True)
class Method:
    """One row of the method table."""

    name: str  # its id in results.csv and --methods
    label: str  # its name in tables and plots
    grids: tuple  # the grid kinds that run it by default ('balanced', 'longtail')
    sampling: str = "uniform"  # batches: 'uniform' (every image equally often) or 'balanced' (every class)
    # the logit-adjusted loss (Menon et al., ICLR 2021; tau: the grid's logit_adjust_tau), else cross-entropy
    logit_adjusted: bool = False
    classical: bool = False  # a random affine warp per image and step (augment.downstream.affine)
    # '': real images only; 'ratio': r x n_c synthetic images added to each class c (r: the cell's
    # ratio; inf: synthetic images only); 'top-up': each class filled up to the grid's top_up_target
    synthetic: str = ""

    def __post_init__(self) -> None:
        if self.sampling not in SAMPLINGS or self.synthetic not in SYNTHETIC or not set(self.grids) <= set(GRID_KINDS):
            raise ValueError(f"method {self.name!r}: sampling in {SAMPLINGS}, synthetic in {SYNTHETIC}, "
                             f"grids among {GRID_KINDS}")

    @property
    def uses_synthetic(self) -> bool:
        return bool(self.synthetic)


_B, _LT = ("balanced",), ("longtail",)
# in the order tables and plots list them
METHODS = {m.name: m for m in (
    Method("none", "none", _B),
    Method("erm", "ERM", _LT),
    Method("balanced", "class-balanced resampling", _LT, sampling="balanced"),
    Method("logit-adjusted", "logit adjustment", _LT, logit_adjusted=True),
    Method("classical", "classical", _B + _LT, classical=True),
    Method("classical+balanced", "classical + resampling", _LT, sampling="balanced", classical=True),
    Method("classical+logit-adjusted", "classical + logit adjustment", _LT, logit_adjusted=True, classical=True),
    Method("synthetic", "synthetic", _B, synthetic="ratio"),
    Method("classical+synthetic", "classical+synthetic", _B, classical=True, synthetic="ratio"),
    Method("top-up", "synthetic top-up", _LT, synthetic="top-up"),
    Method("classical+top-up", "classical + synthetic top-up", _LT, classical=True, synthetic="top-up"),
    Method("classical+synthetic+logit-adjusted", "classical + synthetic x r + logit adjustment", _LT,
           logit_adjusted=True, classical=True, synthetic="ratio"),
)}


def methods_of(kind: str) -> tuple:
    """The names of the methods a grid kind runs by default, in table order."""
    return tuple(name for name, m in METHODS.items() if kind in m.grids)
