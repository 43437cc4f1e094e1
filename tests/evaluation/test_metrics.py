"""Tests for augment.evaluation.metrics: hand-checkable values, limiting cases, input checks."""

import math

import numpy as np
import pytest
import torch

from augment.evaluation import metrics
from augment.evaluation.metrics import (
    accuracy,
    classifier_agreement,
    confusion_matrix,
    frechet_distance,
    intra_class_diversity,
    mean_pairwise_distance,
    per_class_frechet,
    per_class_prdc,
    prdc,
)


def gaussian(rng, n, dim, shift=0.0):
    """(n, dim) correlated full-rank Gaussian features, mean ``shift`` in every coordinate."""
    mixing = np.eye(dim) + np.tril(np.full((dim, dim), 0.5), k=-1)
    return rng.standard_normal((n, dim)) @ mixing + shift


def reference_prdc(real, fake, k):
    """Dense transcription of the reference code of Naeem et al. 2020."""

    def distances(x, y):
        return np.sqrt(((x[:, None, :] - y[None, :, :]) ** 2).sum(-1))

    real_radii = np.partition(distances(real, real), k, axis=-1)[:, k]
    fake_radii = np.partition(distances(fake, fake), k, axis=-1)[:, k]
    real_fake = distances(real, fake)
    return {
        "precision": (real_fake < real_radii[:, None]).any(axis=0).mean(),
        "recall": (real_fake < fake_radii[None, :]).any(axis=1).mean(),
        "density": (real_fake < real_radii[:, None]).sum(axis=0).mean() / k,
        "coverage": (real_fake.min(axis=1) < real_radii).mean(),
    }


# --------------------------------------------------------------------------
# accuracy, confusion_matrix, classifier_agreement
# --------------------------------------------------------------------------


def test_confusion_matrix_small_exact_example():
    true = [0, 0, 1, 2, 2, 2]
    pred = [0, 1, 1, 2, 0, 2]
    matrix = confusion_matrix(np.array(true), np.array(pred), num_classes=3)
    expected = np.array([[1, 1, 0], [0, 1, 0], [1, 0, 2]])
    assert matrix.dtype == np.int64
    np.testing.assert_array_equal(matrix, expected)
    assert accuracy(np.array(true), np.array(pred)) == pytest.approx(4 / 6)
    assert accuracy(np.array(true), np.array(pred)) == pytest.approx(
        np.trace(matrix) / matrix.sum()
    )


def test_confusion_matrix_keeps_unseen_classes():
    matrix = confusion_matrix(np.array([1, 1]), np.array([1, 1]), num_classes=4)
    assert matrix.shape == (4, 4)
    assert matrix[1, 1] == 2 and matrix.sum() == 2


def test_classifier_agreement_small_exact_example():
    result = classifier_agreement(
        predicted=np.array([0, 1, 1, 2]), conditioned=np.array([0, 1, 2, 2]), num_classes=4
    )
    assert result["overall"] == pytest.approx(0.75)
    assert result["per_class"][:3] == [1.0, 1.0, 0.5]
    assert math.isnan(result["per_class"][3])  # no sample conditioned on class 3


def test_classifier_agreement_with_shuffled_labels_is_chance():
    rng = np.random.default_rng(0)
    num_classes = 10
    conditioned = rng.integers(0, num_classes, size=20_000)
    predicted = rng.permutation(conditioned)
    result = classifier_agreement(predicted, conditioned, num_classes)
    assert result["overall"] == pytest.approx(1 / num_classes, abs=0.015)
    assert np.allclose(result["per_class"], 1 / num_classes, atol=0.03)


# --------------------------------------------------------------------------
# frechet_distance, per_class_frechet
# --------------------------------------------------------------------------


def test_frechet_tiny_1d_hand_computation():
    # a: mean 1, unbiased var 2; b: mean 3, var 8 -> 4 + 2 + 8 - 2 * sqrt(16) = 6.
    a = np.array([[0.0], [2.0]])
    b = np.array([[1.0], [5.0]])
    assert frechet_distance(a, b) == pytest.approx(6.0, abs=1e-12)


def test_frechet_tiny_2d_non_commuting_hand_computation():
    # mean_a = (1, 1), Sa = diag(8, 2) / 3; mean_b = 0, Sb = [[4, 4], [4, 8]] / 3.
    # For 2x2: Tr((Sa Sb)^1/2) = sqrt(Tr(Sa Sb) + 2 sqrt(det Sa det Sb))
    #                         = sqrt(16/3 + 2 * 16/9) = 4 sqrt(5) / 3.
    # d = 2 + 10/3 + 4 - 8 sqrt(5) / 3 = (28 - 8 sqrt(5)) / 3.
    a = np.array([[3.0, 1.0], [-1.0, 1.0], [1.0, 2.0], [1.0, 0.0]])
    b = np.array([[1.0, 0.0], [-1.0, 0.0], [1.0, 2.0], [-1.0, -2.0]])
    expected = (28 - 8 * math.sqrt(5)) / 3
    assert frechet_distance(a, b) == pytest.approx(expected, abs=1e-12)
    assert frechet_distance(b, a) == pytest.approx(expected, abs=1e-12)


def test_frechet_of_large_1d_gaussian_samples_matches_closed_form():
    rng = np.random.default_rng(1)
    mean_a, std_a, mean_b, std_b = 1.0, 0.5, 3.0, 2.0
    a = rng.normal(mean_a, std_a, size=(100_000, 1))
    b = rng.normal(mean_b, std_b, size=(100_000, 1))
    expected = (mean_a - mean_b) ** 2 + (std_a - std_b) ** 2  # 6.25
    assert frechet_distance(a, b) == pytest.approx(expected, rel=0.02)


def test_frechet_matches_scipy_sqrtm_on_random_covariances():
    scipy_linalg = pytest.importorskip("scipy.linalg")
    rng = np.random.default_rng(2)
    a = gaussian(rng, 400, 6)
    b = rng.standard_normal((300, 6)) * np.arange(1, 7) + 0.3
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    expected = np.sum((a.mean(0) - b.mean(0)) ** 2) + np.trace(
        cov_a + cov_b - 2 * scipy_linalg.sqrtm(cov_a @ cov_b).real
    )
    assert frechet_distance(a, b) == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("n, dim", [(500, 16), (10, 32)])  # full-rank and singular covariance
def test_frechet_of_a_set_against_itself_is_zero(n, dim):
    feats = gaussian(np.random.default_rng(3), n, dim)
    scale = np.trace(np.cov(feats, rowvar=False))
    assert 0.0 <= frechet_distance(feats, feats) <= 1e-6 * scale


def test_frechet_of_disjoint_halves_is_small_relative_to_a_shift():
    feats = gaussian(np.random.default_rng(4), 4000, 8)
    first, second = feats[:2000], feats[2000:]
    shift = np.full(8, 0.5)  # ||shift||^2 = 2
    same_distribution = frechet_distance(first, second)
    shifted = frechet_distance(first, second + shift)
    assert same_distribution < shifted / 5
    # A translation changes only the mean term: ||d - s||^2 = ||d||^2 - 2 d.s + ||s||^2.
    mean_gap = first.mean(axis=0) - second.mean(axis=0)
    assert shifted == pytest.approx(same_distribution - 2 * mean_gap @ shift + 2.0, rel=1e-9)


def test_per_class_frechet_exact_values_and_missing_class():
    # Class 0: identical sets -> 0. Class 1: same spread, mean shifted by 3 -> 9.
    feats_a = np.array([[0.0], [2.0], [10.0], [12.0]])
    labels_a = np.array([0, 0, 1, 1])
    feats_b = np.array([[0.0], [2.0], [13.0], [15.0]])
    labels_b = np.array([0, 0, 1, 1])
    distances = per_class_frechet(feats_a, labels_a, feats_b, labels_b, num_classes=3)
    assert distances[0] == pytest.approx(0.0, abs=1e-12)
    assert distances[1] == pytest.approx(9.0, abs=1e-12)
    assert math.isnan(distances[2])


# --------------------------------------------------------------------------
# prdc, per_class_prdc
# --------------------------------------------------------------------------


def test_prdc_of_identical_sets():
    feats = gaussian(np.random.default_rng(5), 500, 8)
    result = prdc(feats, feats.copy(), k=5)
    assert result["precision"] == 1.0
    assert result["recall"] == 1.0
    assert result["coverage"] == 1.0
    assert result["density"] == pytest.approx(1.0, abs=0.01)


def test_prdc_of_a_collapsed_fake_set_has_low_recall_and_coverage():
    real = gaussian(np.random.default_rng(6), 500, 8)
    fake = np.repeat(real.mean(axis=0, keepdims=True), 500, axis=0)  # one mode
    result = prdc(real, fake, k=5)
    assert result["precision"] == 1.0  # the mode is a plausible sample
    assert result["recall"] == 0.0
    assert result["coverage"] < 0.1


def test_prdc_of_a_far_away_fake_set_is_zero():
    rng = np.random.default_rng(7)
    real = gaussian(rng, 300, 4)
    fake = gaussian(rng, 300, 4, shift=100.0)
    result = prdc(real, fake, k=5)
    assert result == {"precision": 0.0, "recall": 0.0, "density": 0.0, "coverage": 0.0}


def test_prdc_matches_reference_in_small_blocks(monkeypatch):
    rng = np.random.default_rng(8)
    real = gaussian(rng, 300, 5)
    fake = gaussian(rng, 250, 5, shift=0.3) * 1.2
    expected = reference_prdc(real, fake, k=3)
    monkeypatch.setattr(metrics, "DISTANCE_BLOCK_ENTRIES", 1000)  # forces many blocks
    result = prdc(real, fake, k=3)
    assert result == pytest.approx(expected, abs=1e-12)
    assert all(0.0 <= result[key] <= 1.0 for key in ("precision", "recall", "coverage"))


def test_per_class_prdc_scores_each_class_separately():
    rng = np.random.default_rng(9)
    real_0, real_1 = gaussian(rng, 100, 4), gaussian(rng, 100, 4, shift=50.0)
    real = np.concatenate([real_0, real_1])
    real_labels = np.repeat([0, 1], 100)
    # Class 0 fakes equal its reals; class 1 fakes sit far from class 1 reals.
    fake = np.concatenate([real_0, real_1 + 100.0, rng.standard_normal((3, 4))])
    fake_labels = np.concatenate([np.repeat([0, 1], 100), [2, 2, 2]])
    results = per_class_prdc(real, real_labels, fake, fake_labels, num_classes=3, k=5)
    assert results[0]["precision"] == 1.0 and results[0]["coverage"] == 1.0
    assert results[1]["precision"] == 0.0 and results[1]["coverage"] == 0.0
    assert all(math.isnan(value) for value in results[2].values())  # no real class-2 samples
    assert results[0] == pytest.approx(prdc(real_0, real_0, k=5))


# --------------------------------------------------------------------------
# mean_pairwise_distance, intra_class_diversity
# --------------------------------------------------------------------------


def test_mean_pairwise_distance_hand_examples():
    # Distances 1, 3, 2 -> 2; and a 3-4-5 triangle -> 4.
    assert mean_pairwise_distance(np.array([[0.0], [1.0], [3.0]])) == pytest.approx(2.0)
    triangle = np.array([[0.0, 0.0], [3.0, 4.0], [0.0, 4.0]])
    assert mean_pairwise_distance(triangle) == pytest.approx(4.0)


def test_mean_pairwise_distance_blocks_and_subsampling(monkeypatch):
    feats = gaussian(np.random.default_rng(10), 600, 5)
    brute_force = np.mean(
        [np.linalg.norm(feats[i] - feats[j]) for i in range(600) for j in range(i + 1, 600)]
    )
    monkeypatch.setattr(metrics, "DISTANCE_BLOCK_ENTRIES", 5000)
    assert mean_pairwise_distance(feats, max_samples=None) == pytest.approx(brute_force, rel=1e-12)

    subsampled = mean_pairwise_distance(feats, max_samples=200, seed=3)
    assert subsampled == mean_pairwise_distance(feats, max_samples=200, seed=3)
    assert subsampled != mean_pairwise_distance(feats, max_samples=200, seed=4)
    assert subsampled == pytest.approx(brute_force, rel=0.1)


def test_intra_class_diversity_detects_collapse_and_matches_real_spread():
    rng = np.random.default_rng(11)
    real = np.concatenate([gaussian(rng, 1000, 6), gaussian(rng, 1000, 6, shift=5.0)])
    labels = np.repeat([0, 1], 1000)
    like_real = np.concatenate([gaussian(rng, 1000, 6), gaussian(rng, 1000, 6, shift=5.0)])
    collapsed = np.concatenate([np.zeros((1000, 6)), np.full((1000, 6), 5.0)])

    diverse = intra_class_diversity(real, labels, like_real, labels, num_classes=3)
    # Sampling spread of the ratio at 1000 per class is about 0.015; allow 4 sigma.
    assert diverse[:2] == pytest.approx([1.0, 1.0], abs=0.06)
    assert math.isnan(diverse[2])
    assert intra_class_diversity(real, labels, collapsed, labels, num_classes=2) == pytest.approx(
        [0.0, 0.0], abs=1e-6
    )


# --------------------------------------------------------------------------
# Input types, determinism, validation
# --------------------------------------------------------------------------


def test_torch_and_numpy_inputs_give_the_same_results():
    rng = np.random.default_rng(12)
    real, fake = gaussian(rng, 120, 4), gaussian(rng, 100, 4, shift=0.2)
    real_labels, fake_labels = rng.integers(0, 3, 120), rng.integers(0, 3, 100)
    reversed_labels = fake_labels[::-1].copy()
    as_numpy = [real, real_labels, fake, fake_labels, reversed_labels]
    as_torch = [torch.from_numpy(array) for array in as_numpy]
    as_torch[0].requires_grad_(True)

    def all_metrics(real, real_labels, fake, fake_labels, reversed_labels):
        return [
            frechet_distance(real, fake),
            per_class_frechet(real, real_labels, fake, fake_labels, 3),
            prdc(real, fake, k=3),
            per_class_prdc(real, real_labels, fake, fake_labels, 3, k=3),
            mean_pairwise_distance(fake, max_samples=50, seed=1),
            intra_class_diversity(real, real_labels, fake, fake_labels, 3),
            classifier_agreement(fake_labels, reversed_labels, 3),
            confusion_matrix(real_labels[:100], fake_labels, 3).tolist(),
            accuracy(real_labels[:100], fake_labels),
        ]

    assert all_metrics(*as_torch) == all_metrics(*as_numpy)
    assert frechet_distance(torch.from_numpy(real).float(), real.astype(np.float32)) == (
        frechet_distance(real.astype(np.float32), real.astype(np.float32))
    )


def test_metrics_leave_global_rng_state_untouched():
    feats = gaussian(np.random.default_rng(13), 300, 4)
    numpy_state, torch_state = np.random.get_state()[1].copy(), torch.get_rng_state()
    mean_pairwise_distance(feats, max_samples=100, seed=0)
    prdc(feats, feats + 0.1, k=3)
    np.testing.assert_array_equal(np.random.get_state()[1], numpy_state)
    assert torch.equal(torch.get_rng_state(), torch_state)


FEATS = np.zeros((4, 2))
LABELS = np.array([0, 1, 0, 1])


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: frechet_distance(np.zeros(4), FEATS), r"feats_a must be 2-D"),
        (lambda: frechet_distance(FEATS, np.zeros((4, 3))), r"same feature dimension"),
        (lambda: frechet_distance(np.zeros((1, 2)), FEATS), r"at least 2 samples"),
        (lambda: frechet_distance(np.full((4, 2), np.nan), FEATS), r"NaN or infinite"),
        (lambda: frechet_distance(np.zeros((0, 2)), FEATS), r"non-empty"),
        (lambda: accuracy(LABELS, LABELS[:3]), r"same length"),
        (lambda: accuracy(LABELS.astype(float), LABELS), r"true must hold integers"),
        (lambda: confusion_matrix(LABELS, LABELS + 1, 2), r"pred must lie in \[0, 2\)"),
        (lambda: confusion_matrix(LABELS - 1, LABELS, 2), r"true must lie in \[0, 2\)"),
        (lambda: confusion_matrix(LABELS, LABELS, 0), r"num_classes must be >= 1"),
        (lambda: classifier_agreement(LABELS, LABELS[:2], 2), r"same length"),
        (lambda: classifier_agreement(LABELS[:, None], LABELS, 2), r"predicted must be 1-D"),
        (lambda: prdc(FEATS, FEATS, k=4), r"more than k=4 samples"),
        (lambda: prdc(FEATS, FEATS, k=0), r"k must be an int >= 1"),
        (lambda: prdc(FEATS, np.zeros((5, 3)), k=1), r"same feature dimension"),
        (lambda: per_class_prdc(FEATS, LABELS[:3], FEATS, LABELS, 2), r"same length"),
        (lambda: per_class_frechet(FEATS, LABELS, FEATS, LABELS * 5, 2), r"labels_b must lie"),
        (lambda: intra_class_diversity(FEATS, LABELS, FEATS, LABELS, 1), r"must lie in \[0, 1\)"),
        (lambda: mean_pairwise_distance(FEATS, max_samples=1), r"max_samples must be >= 2"),
        (lambda: mean_pairwise_distance(FEATS[:1]), r"at least 2 samples"),
    ],
)
def test_bad_input_raises_value_error(call, message):
    with pytest.raises(ValueError, match=message):
        call()


# --------------------------------------------------------------------------
# against scikit-learn, an independent implementation
# --------------------------------------------------------------------------


def test_accuracy_and_confusion_matrix_match_scikit_learn():
    sk_metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(11)
    true, pred = rng.integers(0, 10, 500), rng.integers(0, 10, 500)
    assert accuracy(true, pred) == pytest.approx(sk_metrics.accuracy_score(true, pred), abs=1e-15)
    np.testing.assert_array_equal(confusion_matrix(true, pred, 10),
                                  sk_metrics.confusion_matrix(true, pred, labels=list(range(10))))


def test_prdc_matches_scikit_learn_nearest_neighbours():
    """The k-NN radii and ball memberships from sklearn's NearestNeighbors (a KD-tree, not a
    distance matrix) give the same four numbers."""
    neighbors = pytest.importorskip("sklearn.neighbors")
    rng = np.random.default_rng(12)
    real = gaussian(rng, 400, 6)
    fake = gaussian(rng, 350, 6, shift=0.4) * 1.3
    k = 4

    def radii(points):  # distance to the k-th neighbour, the point itself excluded
        return neighbors.NearestNeighbors(n_neighbors=k + 1).fit(points).kneighbors(points)[0][:, k]

    real_radii, fake_radii = radii(real), radii(fake)
    real_tree = neighbors.NearestNeighbors().fit(real)
    # a fake lies in real ball i when its distance to real i is below real i's radius
    dist, idx = real_tree.radius_neighbors(fake, radius=real_radii.max(), sort_results=True)
    in_balls = [int((d < real_radii[i]).sum()) for d, i in zip(dist, idx)]
    fake_tree = neighbors.NearestNeighbors().fit(fake)
    dist_rf, idx_rf = fake_tree.radius_neighbors(real, radius=fake_radii.max())
    nearest_fake = fake_tree.kneighbors(real, n_neighbors=1)[0][:, 0]
    expected = {
        "precision": np.mean([b > 0 for b in in_balls]),
        "recall": np.mean([(d < fake_radii[i]).any() for d, i in zip(dist_rf, idx_rf)]),
        "density": np.mean(in_balls) / k,
        "coverage": np.mean(nearest_fake < real_radii),
    }
    assert prdc(real, fake, k=k) == pytest.approx(expected, abs=1e-12)
    assert metrics.neighbour_radii(real, k) == pytest.approx(real_radii, abs=1e-12)
    # the real balls computed once and passed in: the same four numbers
    assert prdc(real, fake, k=k, real_radii=metrics.neighbour_radii(real, k)) == pytest.approx(expected, abs=1e-12)


def test_prdc_refuses_real_radii_of_another_set_and_neighbour_radii_too_few_points():
    rng = np.random.default_rng(3)
    real, fake = gaussian(rng, 40, 3), gaussian(rng, 30, 3)
    with pytest.raises(ValueError, match=r"real_radii must be \(40,\) distances >= 0.*shape \(30,\)"):
        prdc(real, fake, k=3, real_radii=metrics.neighbour_radii(fake, 3))
    radii = metrics.neighbour_radii(real, 3)
    radii[5] = np.nan
    with pytest.raises(ValueError, match="distances >= 0"):
        prdc(real, fake, k=3, real_radii=radii)
    radii[5] = np.inf
    with pytest.raises(ValueError, match="distances >= 0 and finite"):
        prdc(real, fake, k=3, real_radii=radii)
    with pytest.raises(ValueError, match="more than k=3"):
        metrics.neighbour_radii(real[:3], 3)
