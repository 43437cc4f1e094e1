import math

import pytest

from augment.downstream.balanced_grid import BalancedGridConfig
from augment.downstream.balanced_summary import paired_gains, summary_frame, write_summary


def row(n, ratio, method, regime, seed, accuracy):
    return {"n_per_class": str(n), "ratio": str(ratio), "method": method, "regime": regime,
            "seed": str(seed), "test_accuracy": str(accuracy), "train_images": "10", "seconds": "1.0",
            **{f"acc_{c}": str(accuracy) for c in range(10)}}


# Seed 1's real subset is harder (lower real-only accuracy); the synthetic gain is +1 on both.
ROWS = [
    row(10, 0.0, "none", "-", 0, 0.80), row(10, 0.0, "none", "-", 1, 0.70),
    row(10, 0.0, "classical", "-", 0, 0.85), row(10, 0.0, "classical", "-", 1, 0.76),
    row(10, 1.0, "synthetic", "fair", 0, 0.81), row(10, 1.0, "synthetic", "fair", 1, 0.71),
    row(10, 1.0, "classical+synthetic", "fair", 0, 0.86), row(10, 1.0, "classical+synthetic", "fair", 1, 0.75),
    row(10, math.inf, "synthetic", "fair", 0, 0.60),
]


def test_paired_gains_subtract_the_same_seeds_baseline():
    gains = paired_gains(ROWS, "none", ("synthetic", "classical+synthetic")).set_index(
        ["method", "regime", "ratio", "n_per_class"])
    synthetic = gains.loc[("synthetic", "fair", 1.0, "10")]
    assert synthetic["mean"] == pytest.approx(1.0) and synthetic["std"] == pytest.approx(0.0, abs=1e-9)
    assert synthetic["count"] == 2
    # unpaired, the two seeds' accuracies spread by 7 points; paired, not at all
    spread = summary_frame(ROWS).set_index(["method", "regime", "ratio", "n_per_class"])
    assert spread.loc[("synthetic", "fair", 1.0, "10"), "std"] > 0.05
    assert gains.loc[("synthetic", "fair", math.inf, "10"), "mean"] == pytest.approx(-20.0)
    over_classical = paired_gains(ROWS, "classical", ("classical+synthetic",))
    assert over_classical["mean"].tolist() == pytest.approx([0.0])  # +1 on seed 0, -1 on seed 1
    assert over_classical["std"].tolist() == pytest.approx([2 ** 0.5])


def test_summary_has_the_gain_tables(tmp_path):
    write_summary(tmp_path, BalancedGridConfig(), ROWS, [], {}, None, "mnist")
    text = (tmp_path / "summary.md").read_text()
    assert "# Gain over real only (points), paired by seed" in text
    assert "+1.00 ± 0.00 (2 seeds)" in text and "-20.00 (1 seed)" in text
    assert "# Gain over classical augmentation alone (points), paired by seed" in text
    assert "+0.00 ± 1.41 (2 seeds)" in text


def test_summary_rows_are_in_reading_order_and_generators_are_averaged(tmp_path):
    rows = ROWS + [row(10, 8.0, "synthetic", "fair", 0, 0.82), row(10, 0.5, "synthetic", "fair", 0, 0.805),
                   row(10, 4.0, "synthetic", "shipped", 0, 0.9)]
    diversity = [{"generator": g, "class": c, "agreement": a, "frechet": 2.0 * c}
                 for g in ("fair n=10 seed=0", "real train (ceiling)") for c, a in enumerate((0.5, 1.0))]
    write_summary(tmp_path, BalancedGridConfig(), rows, diversity, {}, None, "mnist")
    accuracy_table = (tmp_path / "summary.md").read_text().split("# Gain over")[0]
    labels = [line.split("|")[1:4] for line in accuracy_table.splitlines() if line.startswith("| ")][1:]
    assert [[c.strip() for c in label] for label in labels] == [
        ["none", "-", "0"], ["classical", "-", "0"], ["synthetic", "shipped", "4"],
        ["synthetic", "fair", "0.5"], ["synthetic", "fair", "1"], ["synthetic", "fair", "8"],
        ["synthetic", "fair", "inf"], ["classical+synthetic", "fair", "1"]]
    text = (tmp_path / "summary.md").read_text()
    assert "| fair n=10 seed=0 | 0.7500 | 1.0000 |" in text  # agreement and Fréchet, mean over 2 classes
