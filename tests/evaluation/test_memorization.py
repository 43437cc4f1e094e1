"""The memorization audit's maths (augment.evaluation.memorization) and its calibration on tiny
data: fresh real images read as not copying, lightly noised training images as copying."""

import math

import numpy as np
import pytest
import torch

from augment.evaluation import memorization as mem
from tests.conftest import bar_digits


@pytest.fixture(scope="module")
def tiny_real():
    """Toy digits of 2 classes: 300 training, 200 held-out and 200 fresh real per class."""
    images, labels = bar_digits(1400, seed=3, num_classes=2)
    return {"train": (images[:600], labels[:600]), "held_out": (images[600:1000], labels[600:1000]),
            "fresh": (images[1000:], labels[1000:])}


def audit_of(tiny_real, samples, labels):
    return mem.audit(*tiny_real["train"], *tiny_real["held_out"], samples, labels, num_classes=2)


def test_fresh_real_images_do_not_read_as_copies(tiny_real):
    result = audit_of(tiny_real, *tiny_real["fresh"]).summary
    assert abs(result["ct"]) < 2.5
    assert result["near_duplicate_fraction"] < 0.05
    assert abs(result["authenticity"] - result["held_out_authenticity"]) < 0.1
    assert result["cells"]["used"] >= 2


def test_lightly_noised_training_images_read_as_copies(tiny_real):
    images, labels = tiny_real["train"]
    noise = torch.randint(-3, 4, images.shape, generator=torch.Generator().manual_seed(0))
    copies = (images.long() + noise).clamp(0, 255).to(torch.uint8)[:400]
    audit = audit_of(tiny_real, copies, labels[:400])
    assert audit.summary["ct"] < -5
    assert audit.summary["near_duplicate_fraction"] > 0.95
    assert audit.summary["authenticity"] < 0.05
    assert np.array_equal(audit.nearest_index, np.arange(400))  # each finds the image it copies
    assert (audit.copy_ratio < 1).mean() > 0.95


def test_per_class_values_and_undefined_classes(tiny_real):
    images, labels = tiny_real["fresh"]
    only_zero = labels == 0
    audit = mem.audit(*tiny_real["train"], *tiny_real["held_out"], images[only_zero], labels[only_zero],
                      num_classes=3)
    per_class = audit.summary["per_class"]
    assert not math.isnan(per_class["ct"][0]) and math.isnan(per_class["ct"][1])  # class 1: no samples
    assert all(math.isnan(per_class[key][2]) for key in mem.KEYS)  # class 2: no training images
    assert len(audit.nearest_distance) == int(only_zero.sum())


def test_nearest_neighbours_match_brute_force_in_small_blocks(monkeypatch):
    gen = torch.Generator().manual_seed(0)
    queries, reference = torch.randn(37, 5, generator=gen), torch.randn(53, 5, generator=gen)
    expected = torch.cdist(queries.double(), reference.double()).sort(dim=1)
    monkeypatch.setattr(mem, "BLOCK_ENTRIES", 60)  # one row at a time
    distances, indices = mem.nearest_neighbours(queries, reference, k=3)
    assert torch.equal(indices, expected.indices[:, :3])
    assert torch.allclose(distances.double(), expected.values[:, :3], atol=1e-5)


def test_mann_whitney_z_matches_scipy_with_ties():
    stats = pytest.importorskip("scipy.stats")
    x = np.array([1, 2, 2, 3, 5, 5, 8, 9, 9, 9], float)
    y = np.array([0, 2, 3, 3, 4, 4, 5, 6, 7], float)
    u = stats.mannwhitneyu(x, y, alternative="two-sided", method="asymptotic").statistic
    m, n = len(x), len(y)
    assert mem.mann_whitney_z(x, y) == pytest.approx((u - m * n / 2) / math.sqrt(m * n * (m + n + 1) / 12))
    assert mem.mann_whitney_z(y - 10, y) < -3 < 3 < mem.mann_whitney_z(y + 10, y)


def test_kmeans_finds_separated_blobs_and_is_seeded():
    gen = torch.Generator().manual_seed(0)
    centres_given = ((0., 0.), (5., 5.), (0., 9.))
    blobs = torch.cat([torch.randn(50, 2, generator=gen) * 0.1 + torch.tensor(c) for c in centres_given])
    centres = mem.kmeans_centres(blobs, 3, seed=1)
    assert torch.equal(centres, mem.kmeans_centres(blobs, 3, seed=1))
    found = sorted(tuple(round(v) for v in c.tolist()) for c in centres)
    assert found == [(0, 0), (0, 9), (5, 5)]
