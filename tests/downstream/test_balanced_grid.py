import math

import pytest

from augment.downstream.grid import (
    PRESETS,
    RESULT_COLUMNS,
    Cell,
    GridConfig,
    cell_key,
    grid_cells,
    read_results,
    write_results,
)
from augment.errors import ConfigError


def test_quick_preset_is_the_issue_grid():
    cells = grid_cells(PRESETS["quick"])
    assert {c.n_per_class for c in cells if math.isfinite(c.ratio)} == {10, 100}
    assert {c.ratio for c in cells} == {0.0, 1.0, 4.0, math.inf}
    assert {c.seed for c in cells} == {0, 1}
    assert {c.augmentation for c in cells} == {"none", "classical", "synthetic", "classical+synthetic"}
    assert len(cells) == len({c.key for c in cells})


def test_full_grid_has_fair_cells_only_where_a_fair_generator_is_trained():
    cells = grid_cells(PRESETS["full"])
    fair = {c.n_per_class for c in cells if c.regime == "fair"}
    assert fair == {10, 100, 500}
    assert {c.seed for c in cells} == {0, 1, 2}
    assert Cell(None, math.inf, "synthetic", "shipped", 0) in cells


def test_bad_grids_are_refused():
    with pytest.raises(ConfigError, match="augmentation"):
        GridConfig(augmentations=("mixup",))
    with pytest.raises(ConfigError, match="ratios"):
        GridConfig(ratios=(0.0,))
    with pytest.raises(ConfigError, match="fair_n"):
        GridConfig(fair_n=(None,))
    with pytest.raises(ConfigError, match="fair_seeds"):
        GridConfig(seeds=(0, 1), fair_seeds=(2,))
    with pytest.raises(ConfigError, match="fair_critic_augment"):
        GridConfig(fair_critic_augment="flip")


def test_cpu_preset_has_fair_cells_for_its_fair_seeds_only():
    cells = grid_cells(PRESETS["cpu"])
    fair = [c for c in cells if c.regime == "fair"]
    assert {c.seed for c in fair} == {0} and {c.n_per_class for c in fair} == {10, 100, 500}
    assert {c.seed for c in cells} == {0, 1, 2}
    assert Cell(500, math.inf, "synthetic", "fair", 0) in fair
    assert Cell(500, math.inf, "synthetic", "fair", 1) not in cells


def test_results_round_trip_and_rows_match_their_cells(tmp_path):
    cell = Cell(10, 4.0, "synthetic", "shipped", 1)
    row = {"n_per_class": 10, "ratio": 4.0, "augmentation": "synthetic", "regime": "shipped", "seed": 1,
           "test_accuracy": 0.9, "train_images": 500, "seconds": 1.5, "acc_0": 0.8}
    path = tmp_path / "results.csv"
    assert read_results(path) == []
    write_results(path, [row])
    (back,) = read_results(path)
    assert list(back)[:len(RESULT_COLUMNS)] == list(RESULT_COLUMNS) and back["acc_0"] == "0.8"
    assert cell_key(back) == cell.key
    assert cell_key({**back, "n_per_class": "all"}) == Cell(None, 4.0, "synthetic", "shipped", 1).key
