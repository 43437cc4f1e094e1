import math

import pytest

from augment.config import SubsetSpec
from augment.downstream.balanced_grid import BalancedGridConfig
from augment.downstream.grid import Cell, read_results, write_results
from augment.downstream.presets import PRESETS
from augment.errors import ConfigError

ALL = SubsetSpec()


def n(k):
    return SubsetSpec(n_per_class=k)


def test_quick_preset_is_the_issue_grid():
    cells = PRESETS["quick"].grid.cells()
    assert {c.subset.n_per_class for c in cells if c.uses_real} == {10, 100}
    assert {c.ratio for c in cells} == {0.0, 1.0, 4.0, math.inf}
    assert {c.seed for c in cells} == {0, 1}
    assert {c.method for c in cells} == {"none", "classical", "synthetic", "classical+synthetic"}
    grid = PRESETS["quick"].grid
    assert len(cells) == len({grid.cell_key(c) for c in cells})


def test_full_grid_has_fair_cells_only_where_a_fair_generator_is_trained():
    cells = PRESETS["full"].grid.cells()
    fair = {c.subset.n_per_class for c in cells if c.regime == "fair"}
    assert fair == {10, 100, 500}
    assert {c.seed for c in cells} == {0, 1, 2}
    assert Cell(ALL, "synthetic", "shipped", 0, math.inf) in cells


def test_bad_grids_are_refused():
    with pytest.raises(ConfigError, match="method"):
        BalancedGridConfig(methods=("mixup",))
    with pytest.raises(ConfigError, match="balanced method"):
        BalancedGridConfig(methods=("top-up",))  # a longtail method
    with pytest.raises(ConfigError, match="ratios"):
        BalancedGridConfig(ratios=(0.0,))
    with pytest.raises(ConfigError, match="fair_n"):
        BalancedGridConfig(fair_n=(None,))
    with pytest.raises(ConfigError, match="fair_seeds"):
        BalancedGridConfig(seeds=(0, 1), fair_seeds=(2,))
    with pytest.raises(ConfigError, match="fair_critic_augment"):
        BalancedGridConfig(fair_critic_augment="flip")


def test_cpu_preset_has_fair_cells_for_its_fair_seeds_only():
    cells = PRESETS["cpu"].grid.cells()
    fair = [c for c in cells if c.regime == "fair"]
    assert {c.seed for c in fair} == {0} and {c.subset.n_per_class for c in fair} == {10, 100, 500}
    assert {c.seed for c in cells} == {0, 1, 2}
    assert Cell(n(500), "synthetic", "fair", 0, math.inf) in fair
    assert Cell(n(500), "synthetic", "fair", 1, math.inf) not in cells


def test_results_round_trip_and_rows_match_their_cells(tmp_path):
    grid = BalancedGridConfig()
    cell = Cell(n(10), "synthetic", "shipped", 1, 4.0)
    row = {"n_per_class": 10, "ratio": 4.0, "method": "synthetic", "regime": "shipped", "seed": 1,
           "test_accuracy": 0.9, "train_images": 500, "seconds": 1.5, "acc_0": 0.8}
    path = tmp_path / "results.csv"
    assert read_results(path) == []
    write_results(path, [row], grid.result_columns)
    (back,) = read_results(path)
    assert list(back)[:len(grid.result_columns)] == list(grid.result_columns) and back["acc_0"] == "0.8"
    assert grid.key(back) == grid.cell_key(cell) == grid.key(row)
    assert grid.key({**back, "n_per_class": "all"}) == grid.cell_key(Cell(ALL, "synthetic", "shipped", 1, 4.0))
    assert grid.row_subset(back) == n(10) and grid.row_subset({"n_per_class": "all"}) == ALL
