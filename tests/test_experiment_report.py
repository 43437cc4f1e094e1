import math

import pytest

from augment.experiment_report import paired_gains, summary_frame, write_summary


def row(n, ratio, augmentation, regime, seed, accuracy):
    return {"n_per_class": str(n), "ratio": str(ratio), "augmentation": augmentation, "regime": regime,
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
        ["augmentation", "regime", "ratio", "n_per_class"])
    synthetic = gains.loc[("synthetic", "fair", 1.0, "10")]
    assert synthetic["mean"] == pytest.approx(1.0) and synthetic["std"] == pytest.approx(0.0, abs=1e-9)
    assert synthetic["count"] == 2
    # unpaired, the two seeds' accuracies spread by 7 points; paired, not at all
    spread = summary_frame(ROWS).set_index(["augmentation", "regime", "ratio", "n_per_class"])
    assert spread.loc[("synthetic", "fair", 1.0, "10"), "std"] > 0.05
    assert gains.loc[("synthetic", "fair", math.inf, "10"), "mean"] == pytest.approx(-20.0)
    over_classical = paired_gains(ROWS, "classical", ("classical+synthetic",))
    assert over_classical["mean"].tolist() == pytest.approx([0.0])  # +1 on seed 0, -1 on seed 1
    assert over_classical["std"].tolist() == pytest.approx([2 ** 0.5])


def test_summary_has_the_gain_tables(tmp_path):
    write_summary(tmp_path, ROWS, [])
    text = (tmp_path / "summary.md").read_text()
    assert "# Gain over real only (points), paired by seed" in text
    assert "+1.00 ± 0.00 (2 seeds)" in text and "-20.00 (1 seed)" in text
    assert "# Gain over classical augmentation alone (points), paired by seed" in text
    assert "+0.00 ± 1.41 (2 seeds)" in text
