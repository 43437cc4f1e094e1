"""A run's real data: its subset, and the order the critic draws real images in."""

import dataclasses

import pytest
import torch

from augment.config import SubsetSpec
from augment.errors import TrainingError
from augment.provenance import DataSignature
from augment.training.real_data import BalancedBatches, RealBatches, load_training_data

CPU = torch.device("cpu")
GOLDEN_0 = [38, 51, 52, 56, 24, 43, 54, 56]  # BalancedBatches(long_tailed_labels(), 8, seed 3): batch 0
GOLDEN_7 = [20, 45, 52, 56, 11, 42, 55, 56]  # and batch 7


def long_tailed_labels() -> torch.Tensor:
    return torch.tensor([0] * 40 + [1] * 12 + [2] * 4 + [3] * 1)


def test_balanced_batches_draw_every_class_equally_and_repeat_rare_images():
    labels = long_tailed_labels()
    batches = BalancedBatches(labels, batch_size=8, seed=0, device=CPU)
    drawn = torch.cat([batches.indices(k) for k in range(50)])  # 400 draws, 100 a class
    assert torch.bincount(labels[drawn]).tolist() == [100, 100, 100, 100]
    for c in range(4):
        members = (labels == c).nonzero().flatten()
        seen = drawn[labels[drawn] == c]
        # each pass over a class shows each of its images once before any repeats
        per_pass = len(members)
        for start in range(0, len(seen) - per_pass + 1, per_pass):
            assert sorted(seen[start:start + per_pass].tolist()) == members.tolist()
    assert batches.per_epoch == len(labels) // 8


def test_balanced_batches_are_a_pure_function_of_seed_and_batch():
    labels = long_tailed_labels()
    a, b = BalancedBatches(labels, 8, 3, CPU), BalancedBatches(labels, 8, 3, CPU)
    sequential = [a.indices(k) for k in range(12)]
    assert torch.equal(b.indices(11), sequential[11])  # a resumed run jumps straight to its batch
    assert torch.equal(b.indices(2), sequential[2])
    assert not torch.equal(BalancedBatches(labels, 8, 4, CPU).indices(11), sequential[11])
    with pytest.raises(TrainingError, match="fewer than batch_size"):
        BalancedBatches(labels[:5], 8, 0, CPU)


def test_balanced_batches_are_pinned_so_resumed_runs_keep_their_batches():
    """The indices of a fixed seed, written down: a change to the stream would silently change
    what a resumed long-tailed run trains on."""
    batches = BalancedBatches(long_tailed_labels(), 8, 3, CPU)
    assert batches.indices(0).tolist() == GOLDEN_0 and batches.indices(7).tolist() == GOLDEN_7


def test_a_model_with_more_classes_than_the_data_is_refused(tiny_train_config):
    cfg = dataclasses.replace(tiny_train_config, model=dataclasses.replace(tiny_train_config.model, num_classes=12))
    with pytest.raises(TrainingError, match="the data has 10 classes but model.num_classes is 12"):
        load_training_data(cfg)


def test_uniform_batches_follow_the_data_frequencies():
    labels = long_tailed_labels()
    batches = RealBatches(len(labels), 8, 0, CPU)
    drawn = torch.cat([batches.indices(k) for k in range(batches.per_epoch)])
    assert len(set(drawn.tolist())) == len(drawn)  # every image at most once per epoch


def test_real_sampling_auto_is_saved_resolved_only_for_a_long_tailed_run(tiny_train_config):
    cfg, _, labels, data = load_training_data(tiny_train_config)
    assert data == DataSignature("idx", tuple(str(c) for c in range(10)), (28, 28), 1)  # what the run's files record
    assert cfg.real_sampling == "auto"  # balanced data: 'auto' keeps its meaning (uniform) for good
    lt = dataclasses.replace(tiny_train_config, subset=SubsetSpec(class_counts=(8, 6, 5, 4, 3, 3, 2, 2, 2, 1)))
    cfg, _, labels, _ = load_training_data(lt)
    assert cfg.real_sampling == "balanced"  # auto, resolved for a long-tailed run (the measured better)
    assert torch.bincount(labels).tolist() == [8, 6, 5, 4, 3, 3, 2, 2, 2, 1]
    explicit = dataclasses.replace(lt, real_sampling="balanced")
    assert load_training_data(explicit)[0].real_sampling == "balanced"


def test_a_balanced_run_trains_and_resumes_bitwise(tiny_train_config, tmp_path):
    from augment.checkpoint import load_checkpoint
    from augment.training import resume, train

    counts = SubsetSpec(class_counts=(8, 6, 5, 4, 3, 3, 2, 2, 2, 1))
    cfg = dataclasses.replace(tiny_train_config, subset=counts, real_sampling="balanced",
                              batch_size=8, max_steps=4, checkpoint_every=2)
    train(cfg, tmp_path / "full", progress=False)
    train(dataclasses.replace(cfg, max_steps=2), tmp_path / "half", progress=False)
    resume(tmp_path / "half", {"max_steps": 4}, progress=False)
    full = load_checkpoint(tmp_path / "full" / "checkpoints" / "last.pt")
    half = load_checkpoint(tmp_path / "half" / "checkpoints" / "last.pt")
    for key in ("generator", "critic"):
        for name, tensor in full[key].items():
            assert torch.equal(tensor, half[key][name]), (key, name)
