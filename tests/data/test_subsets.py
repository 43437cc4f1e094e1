"""Seeded per-class subsets: balanced, long-tailed, explicit counts; nested draws."""

import pytest
import torch

from augment.config import SubsetSpec
from augment.data.subsets import held_out_per_class, long_tail_counts, per_class_subset, subset_counts, subset_indices
from augment.errors import ConfigError, DataError


def test_per_class_subset_is_seeded_and_balanced():
    labels = torch.arange(100) % 10
    a, b = per_class_subset(labels, 3, seed=1), per_class_subset(labels, 3, seed=1)
    assert torch.equal(a, b)
    assert torch.equal(torch.bincount(labels[a]), torch.full((10,), 3))
    assert torch.equal(a, a.sort().values)  # sorted, as documented: the subset keeps the file's order
    assert not torch.equal(a, per_class_subset(labels, 3, seed=2))
    with pytest.raises(DataError, match="fewer than"):
        per_class_subset(labels, 11)


# ----------------------------------------------------------------------------- long-tailed


def test_long_tail_counts_follow_the_mnist_lt_profile():
    # n_c = round(n_max * rho^(-c/(C-1))): the largest class n_max, the smallest n_max / rho
    assert long_tail_counts(10, 100.0) == [5000, 2997, 1797, 1077, 646, 387, 232, 139, 83, 50]
    assert long_tail_counts(10, 10.0)[0] == 5000 and long_tail_counts(10, 10.0)[-1] == 500
    assert long_tail_counts(3, 4.0, n_max=8) == [8, 4, 2]
    assert long_tail_counts(10, 1.0, n_max=7) == [7] * 10
    counts = long_tail_counts(10, 100.0, class_order="permuted", seed=3)
    assert sorted(counts) == sorted(long_tail_counts(10, 100.0)) and counts != long_tail_counts(10, 100.0)
    assert counts == long_tail_counts(10, 100.0, class_order="permuted", seed=3)
    assert counts != long_tail_counts(10, 100.0, class_order="permuted", seed=4)


def test_a_class_whose_count_rounds_to_zero_is_refused():
    with pytest.raises(ConfigError, match="rarest class no image"):
        long_tail_counts(10, 100.0, n_max=40)  # 40 / 100 = 0.4 rounds to 0


def labelled(per_class: int = 60, classes: int = 10) -> torch.Tensor:
    return torch.arange(per_class * classes) % classes


def test_a_long_tail_needs_two_classes():
    with pytest.raises(ConfigError, match="at least 2 classes"):
        long_tail_counts(1, 10.0)


def test_long_tailed_subsets_are_seeded_nested_and_hold_the_balanced_subsets():
    labels = labelled()
    lt4 = subset_indices(labels, SubsetSpec(imbalance_ratio=4.0, n_max=40), seed=5)
    lt2 = subset_indices(labels, SubsetSpec(imbalance_ratio=2.0, n_max=40), seed=5)
    assert torch.equal(torch.bincount(labels[lt4]), torch.tensor(long_tail_counts(10, 4.0, n_max=40)))
    assert set(lt4.tolist()) <= set(lt2.tolist())  # the rho = 4 subset of every class is inside rho = 2's
    assert set(per_class_subset(labels, 10, seed=5).tolist()) <= set(lt4.tolist())  # every count >= 10
    assert torch.equal(lt4, subset_indices(labels, SubsetSpec(imbalance_ratio=4.0, n_max=40), seed=5))
    assert not torch.equal(lt4, subset_indices(labels, SubsetSpec(imbalance_ratio=4.0, n_max=40), seed=6))
    assert torch.equal(lt4, lt4.sort().values)


def test_explicit_counts_and_all():
    labels = labelled()
    counts = [5, 0, 3, 1, 1, 1, 1, 1, 1, 2]
    keep = subset_indices(labels, SubsetSpec(class_counts=counts), seed=0)
    assert torch.bincount(labels[keep], minlength=10).tolist() == counts
    assert subset_indices(labels, SubsetSpec(), seed=0) is None
    assert subset_counts(SubsetSpec(n_per_class=4), 10) == [4] * 10


@pytest.mark.parametrize("spec, error, match", [
    (lambda: SubsetSpec(class_counts=(1, 2, 3)), ConfigError, "3 class counts for 10 classes"),
    (lambda: SubsetSpec(class_counts=(0,) * 10), ConfigError, "all 0"),
    (lambda: SubsetSpec(imbalance_ratio=10.0, n_max=61), DataError, "fewer than the 61"),
])
def test_bad_counts_are_one_line_errors(spec, error, match):
    with pytest.raises(error, match=match):
        subset_indices(labelled(), spec(), seed=0)


@pytest.mark.parametrize("kwargs, match", [
    ({"imbalance_ratio": 0.5}, "outside"),
    ({"class_counts": (3, -1)}, ">= 0"),
    ({"class_counts": "3,4"}, "list of integers"),
    ({"class_counts": (2.5, 1)}, ">= 0"),
    ({"n_per_class": 3, "imbalance_ratio": 10.0}, "choose one subset option"),
    ({"class_order": "random"}, "not one of"),
    ({"n_max": 100}, "go with imbalance_ratio"),  # would be ignored without a long tail
    ({"class_order": "permuted", "n_per_class": 5}, "go with imbalance_ratio"),
])
def test_a_bad_subset_spec_is_refused(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        SubsetSpec(**kwargs)


def test_subset_labels_name_the_spec():
    assert SubsetSpec().label() == "all" and SubsetSpec(n_per_class=100).label() == "n100"
    assert SubsetSpec(imbalance_ratio=100.0).label() == "lt100"
    assert SubsetSpec(imbalance_ratio=10.0, n_max=2000, class_order="permuted").label() == "lt10-n2000-perm"
    assert SubsetSpec(imbalance_ratio=10.0).is_long_tailed and not SubsetSpec(n_per_class=5).is_long_tailed
    assert SubsetSpec(class_counts=(3, 1)).is_long_tailed and not SubsetSpec(class_counts=(2, 2)).is_long_tailed


def test_a_held_out_set_is_disjoint_from_every_subset_up_to_its_skip():
    labels = labelled(per_class=80)
    held = held_out_per_class(labels, 10, seed=2, skip=60)
    assert torch.bincount(labels[held]).tolist() == [10] * 10
    for spec in (SubsetSpec(n_per_class=60), SubsetSpec(imbalance_ratio=7.0, n_max=60)):
        assert not set(held.tolist()) & set(subset_indices(labels, spec, seed=2).tolist())
    with pytest.raises(DataError, match="held-out"):
        held_out_per_class(labels, 30, seed=2, skip=60)
