import dataclasses

import pytest
import torch

from augment.config import SubsetSpec
from augment.errors import DataError, TrainingError
from augment.training.real_data import RealBatches
from augment.training.trainer import Trainer


def test_num_classes_comes_from_labels_and_is_checked(tiny_train_config):
    model = tiny_train_config.model
    cfg = dataclasses.replace(tiny_train_config, model=dataclasses.replace(model, num_classes=None))
    assert Trainer(cfg).cfg.model.num_classes == 10
    small = dataclasses.replace(tiny_train_config, model=dataclasses.replace(model, num_classes=5))
    with pytest.raises(DataError, match="num_classes is 5"):
        Trainer(small)


def test_real_batches_cover_each_epoch_once():
    batches = RealBatches(n=20, batch_size=6, seed=3, device=torch.device("cpu"))
    assert batches.per_epoch == 3
    epoch0 = torch.cat([batches.indices(k) for k in range(3)])
    assert len(set(epoch0.tolist())) == 18
    assert not torch.equal(batches.indices(0), batches.indices(3))  # reshuffled next epoch
    assert torch.equal(batches.indices(4), RealBatches(20, 6, 3, torch.device("cpu")).indices(4))
    with pytest.raises(TrainingError, match="fewer than batch_size"):
        RealBatches(n=5, batch_size=6, seed=0, device=torch.device("cpu"))


def test_shared_mode_reuses_one_batch_per_step(tiny_train_config):
    shared = Trainer(dataclasses.replace(tiny_train_config, real_batches="shared"))
    idx = shared.real_indices()
    assert all(torch.equal(idx[0], row) for row in idx)
    fresh = Trainer(tiny_train_config)
    idx = fresh.real_indices()
    assert not torch.equal(idx[0], idx[1])


def _class_mean_error(trainer):
    """Mean over classes of the L2 distance between generated and real class-mean images."""
    g = trainer.G.eval()
    gen = torch.Generator().manual_seed(0)
    errs = []
    with torch.no_grad():
        for c in range(10):
            z = torch.randn(32, trainer.cfg.model.z_dim, generator=gen)
            fake = g(z, torch.full((32,), c)).mean(0)
            real = trainer.real[trainer.labels == c].mean(0)
            errs.append((fake - real).norm().item())
    g.train()
    return sum(errs) / len(errs)


def test_short_training_measurably_improves_samples(tiny_train_config):
    """Toy digits (a bar whose column encodes the class): after 60 generator steps the
    per-class sample means are much closer to the real ones than at initialisation."""
    cfg = dataclasses.replace(tiny_train_config, lr=2e-3, batch_size=20, n_critic=3, max_steps=60)
    trainer = Trainer(cfg)
    before = _class_mean_error(trainer)
    for _ in range(cfg.max_steps):
        trainer.step()
    after = _class_mean_error(trainer)
    assert after < 0.6 * before, (before, after)


def _params(module_state: dict) -> dict:
    return {k: v for k, v in module_state.items() if "running_" not in k and "num_batches" not in k}


def test_critic_warmup_updates_only_the_critic(tiny_train_config):
    cfg = dataclasses.replace(tiny_train_config, critic_warmup=2, ema_decay=0.9)
    trainer = Trainer(cfg)
    g0 = {k: v.clone() for k, v in _params(trainer.G.state_dict()).items()}
    d0 = {k: v.clone() for k, v in trainer.D.state_dict().items()}
    for _ in range(2):
        stats = trainer.step()
        assert set(stats) == {"loss_d", "gp", "wasserstein", "loss_g"}
    for k, v in _params(trainer.G.state_dict()).items():
        assert torch.equal(v, g0[k]), k
        assert torch.equal(trainer.G_ema.state_dict()[k], g0[k]), k
    assert any(not torch.equal(v, d0[k]) for k, v in trainer.D.state_dict().items())
    trainer.step()  # the first full step moves the generator
    assert any(not torch.equal(v, g0[k]) for k, v in _params(trainer.G.state_dict()).items())


def test_critic_warmup_draws_the_noise_of_a_full_step(tiny_train_config):
    """The warm-up consumes the same random stream, so the critic's first updates are those
    of a run without warm-up."""
    plain, warm = Trainer(tiny_train_config), Trainer(dataclasses.replace(tiny_train_config, critic_warmup=1))
    plain.step()
    warm.step()
    assert torch.equal(plain.noise.get_state(), warm.noise.get_state())
    for k, v in plain.D.state_dict().items():
        torch.testing.assert_close(v, warm.D.state_dict()[k])


@pytest.mark.parametrize("step_impl", ["eager", "fast"])
def test_critic_loss_is_the_negated_estimate_plus_the_weighted_penalty(tiny_train_config, step_impl):
    trainer = Trainer(dataclasses.replace(tiny_train_config, gp_weight=7.0, step_impl=step_impl))
    for _ in range(2):
        stats = trainer.step()
        assert float(stats["gp"]) > 1e-3  # a penalty that the weight visibly scales
        torch.testing.assert_close(stats["loss_d"], -stats["wasserstein"] + 7.0 * stats["gp"],
                                   rtol=1e-5, atol=1e-6)


def test_the_training_subset_is_the_classifiers_subset(tiny_train_config):
    """A fair generator trains on exactly the images RealMNIST(n_per_class, seed) gives the
    experiment's classifier."""
    from augment.data.real import RealMNIST

    cfg = dataclasses.replace(tiny_train_config, subset=SubsetSpec(n_per_class=3), seed=5)
    trainer = Trainer(cfg)
    real = RealMNIST(cfg.data_dir, train=True, subset=SubsetSpec(n_per_class=3), seed=5, dataset="idx")
    assert torch.equal(trainer.real, real.data) and torch.equal(trainer.labels, real.targets)


def test_a_long_tailed_fair_generator_trains_on_the_classifiers_long_tailed_subset(tiny_train_config):
    from augment.config import SubsetSpec
    from augment.data.real import RealMNIST
    from augment.data.subsets import long_tail_counts

    cfg = dataclasses.replace(tiny_train_config, subset=SubsetSpec(imbalance_ratio=4.0, n_max=8), seed=2, batch_size=8)
    trainer = Trainer(cfg)
    real = RealMNIST(cfg.data_dir, train=True, subset=SubsetSpec(imbalance_ratio=4.0, n_max=8), seed=2, dataset="idx")
    assert torch.equal(trainer.real, real.data) and torch.equal(trainer.labels, real.targets)
    assert torch.bincount(trainer.labels).tolist() == long_tail_counts(10, 4.0, n_max=8)
    assert trainer.cfg.real_sampling == "balanced"  # 'auto' saved resolved for a long-tailed run
