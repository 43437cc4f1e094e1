"""Seeded per-class subsets: balanced, long-tailed, explicit counts; nested draws."""


import pytest
import torch

from augment.data.subsets import per_class_subset
from augment.errors import DataError


def test_per_class_subset_is_seeded_and_balanced():
    labels = torch.arange(100) % 10
    a, b = per_class_subset(labels, 3, seed=1), per_class_subset(labels, 3, seed=1)
    assert torch.equal(a, b)
    assert torch.equal(torch.bincount(labels[a]), torch.full((10,), 3))
    assert torch.equal(a, a.sort().values)  # sorted, as documented: the subset keeps the file's order
    assert not torch.equal(a, per_class_subset(labels, 3, seed=2))
    with pytest.raises(DataError, match="fewer than"):
        per_class_subset(labels, 11)
