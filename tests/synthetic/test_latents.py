"""Per-index latents and labels: pure functions of (seed, index), bit for bit."""

from __future__ import annotations

import math

import pytest
import torch

from augment.synthetic import latents as L
from augment.synthetic.latents import index_latents, stratified_labels

# ------------------------------------------------------------------------------- latents


def reference_uniform(seed: int, i: int, c: int) -> float:
    m = (1 << 64) - 1
    a = L.splitmix64((L.splitmix64(seed) + i * 0x9E3779B97F4A7C15) & m)
    b = L.splitmix64((c * 0x9E3779B97F4A7C15 + L._SALT) & m)
    return ((L.splitmix64((a + b) & m) >> 11) + 1) * 2.0 ** -53


def test_splitmix64_known_values():
    # splitmix64 sequence from state 0 (reference outputs of the published algorithm)
    assert L.splitmix64(0x9E3779B97F4A7C15) == 0xE220A8397B1DCDAF
    assert L.splitmix64(2 * 0x9E3779B97F4A7C15) == 0x6E789E6AA1B965F4


def test_torch_hash_matches_python_reference():
    idx = torch.tensor([0, 1, 2, 12345678901, 2 ** 62])
    cols = torch.tensor([0, 1, 5, 2 ** 30 + 3])
    for seed in (0, 7, 2 ** 63 + 5):
        u = L._uniform(L._row_keys(seed, idx)[:, None], cols)
        for a in range(len(idx)):
            for b in range(len(cols)):
                assert u[a, b].item() == reference_uniform(seed, int(idx[a]), int(cols[b]))


def test_latents_match_box_muller_reference():
    z = index_latents(3, torch.arange(5), 7)
    for i in range(5):
        for j in range(7):
            u1, u2 = reference_uniform(3, i, 2 * (j // 2)), reference_uniform(3, i, 2 * (j // 2) + 1)
            trig = math.sin if j % 2 else math.cos
            expected = math.sqrt(-2 * math.log(u1)) * trig(2 * math.pi * u2)
            assert z[i, j].item() == pytest.approx(expected, abs=1e-6)


def test_polynomial_log_and_trig_are_accurate():
    u = torch.rand(20000, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) + 1e-300
    u = torch.cat([u, torch.tensor([1.0, 2.0 ** -53, 0.5, 0.25, 0.75], dtype=torch.float64)])
    torch.testing.assert_close(L._log(u), torch.log(u), atol=1e-14, rtol=1e-14)
    c, s = L._cos_sin_2pi(u)
    torch.testing.assert_close(c, torch.cos(2 * math.pi * u), atol=1e-14, rtol=0)
    torch.testing.assert_close(s, torch.sin(2 * math.pi * u), atol=1e-14, rtol=0)


def test_latents_are_bitwise_independent_of_batch():
    full = index_latents(11, torch.arange(2000), 50)
    perm = torch.randperm(2000, generator=torch.Generator().manual_seed(1))[:777]
    assert torch.equal(index_latents(11, perm, 50), full[perm])
    for i in (0, 5, 1999):
        assert torch.equal(index_latents(11, torch.tensor([i]), 50)[0], full[i])
    assert not torch.equal(index_latents(12, torch.arange(5), 50), full[:5])  # seed matters
    assert abs(float(full.mean())) < 0.01 and abs(float(full.std()) - 1) < 0.01


def test_truncation():
    plain = index_latents(2, torch.arange(500), 16)
    clamped = index_latents(2, torch.arange(500), 16, truncation=0.7, mode="clamp")
    assert torch.equal(clamped, plain.clamp(-0.7, 0.7))
    resampled = index_latents(2, torch.arange(500), 16, truncation=0.7)
    assert float(resampled.abs().max()) <= 0.7
    inside = plain.abs() <= 0.7
    assert torch.equal(resampled[inside], plain[inside])  # only the tails are redrawn
    assert float(resampled[~inside].abs().min()) < 0.6  # redrawn, not clamped
    assert torch.equal(index_latents(2, torch.arange(499, -1, -1), 16, truncation=0.7), resampled.flip(0))
    # at 0.3 most values need several redraws: every one ends inside, none is clamped to the edge
    tight = index_latents(3, torch.arange(200), 32, truncation=0.3)
    assert float(tight.abs().max()) < 0.3


# -------------------------------------------------------------------------------- labels


def test_default_labels_are_balanced_modulo():
    assert stratified_labels(23, [0, 1, 2]).tolist() == [0, 1, 2] * 7 + [0, 1]
    assert stratified_labels(9, [4, 7], [2.0, 2.0]).tolist() == [4, 7, 4, 7, 4, 7, 4, 7, 4]


def test_weighted_labels_follow_sainte_lague_seats():
    # seat keys (k + 0.5) / w; D'Hondt's (k + 1) / w would give [0, 1, 0, 0, 1, 2, 0]
    assert stratified_labels(5, [0, 1], [2, 1]).tolist() == [0, 1, 0, 0, 1]
    assert stratified_labels(7, [0, 1, 2], [3, 2, 1]).tolist() == [0, 1, 0, 2, 1, 0, 0]


def test_weighted_labels_exact_counts_and_prefixes():
    counts = [5923, 6742, 5958]
    labels = stratified_labels(sum(counts), [0, 1, 2], counts)
    assert torch.bincount(labels).tolist() == counts
    labels = stratified_labels(1000, [3, 5, 8], [0.5, 0.3, 0.2])
    assert torch.bincount(labels, minlength=9)[[3, 5, 8]].tolist() == [500, 300, 200]
    for n in (1, 17, 333):  # prefix property: the first n are the labels of a dataset of n
        assert torch.equal(stratified_labels(n, [3, 5, 8], [0.5, 0.3, 0.2]), labels[:n])
        share = torch.bincount(labels[:n], minlength=9)[[3, 5, 8]].double()
        assert (share - n * torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64)).abs().max() <= 1
    assert 4 not in stratified_labels(50, [3, 4], [1, 0]).tolist()


def test_huge_class_weights_are_as_good_as_their_ratios():
    assert stratified_labels(10, [0, 1], [1e308, 1e308]).tolist() == stratified_labels(10, [0, 1]).tolist()
    assert stratified_labels(7, [0, 1], [1e308, 1.0]).tolist() == [0] * 7
