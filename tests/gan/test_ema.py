import dataclasses

import pytest
import torch
from torch import nn

from augment.checkpoint import export_generator, load_checkpoint, load_generator, read_generator_file, save_checkpoint
from augment.config import TrainConfig
from augment.errors import CheckpointError, ConfigError
from augment.gan import ema
from augment.training.loop import train
from augment.training.trainer import Trainer


def test_decay_warms_up_then_holds():
    assert ema.decay_at(1, 0.999) == pytest.approx(2 / 11)
    assert ema.decay_at(90, 0.999) == pytest.approx(91 / 100)
    assert ema.decay_at(8989, 0.999) < 0.999 == ema.decay_at(8990, 0.999)  # as the --ema-decay help says
    assert ema.decay_at(100_000, 0.999) == 0.999
    assert ema.decay_at(5, 0.0) == 0.0  # decay 0: the average is the live model


def test_update_moves_parameters_and_copies_buffers():
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    average = ema.averaged_copy(model)
    assert not average.training and not any(p.requires_grad for p in average.parameters())
    before = [p.clone() for p in average.parameters()]
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    model.train()(torch.randn(8, 3))  # moves BatchNorm's running statistics
    ema.update_average(average, model, 0.75)
    for old, new, live in zip(before, average.parameters(), model.parameters()):
        torch.testing.assert_close(new, 0.75 * old + 0.25 * live)
    for avg_buf, buf in zip(average.buffers(), model.buffers()):
        assert torch.equal(avg_buf, buf)


def test_models_of_another_shape_are_refused():
    with pytest.raises(ValueError, match="different parameters"):
        ema.update_average(nn.Linear(2, 2), nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2)), 0.5)


@pytest.mark.parametrize("decay", [1.0, 1.5, -0.1])
def test_config_refuses_a_decay_outside_0_1(decay):
    with pytest.raises(ConfigError, match="ema_decay"):
        TrainConfig(ema_decay=decay)


def test_trainer_average_follows_the_live_generator(tiny_train_config):
    cfg = dataclasses.replace(tiny_train_config, ema_decay=0.5)
    trainer = Trainer(cfg)
    expected = [p.detach().clone() for p in trainer.G.parameters()]
    for step in range(1, 4):
        trainer.step()
        d = ema.decay_at(step, 0.5)
        expected = [d * e + (1 - d) * p.detach() for e, p in zip(expected, trainer.G.parameters())]
    for e, p in zip(expected, trainer.G_ema.parameters()):
        torch.testing.assert_close(p, e)
    assert trainer.sampling_generator is trainer.G_ema
    assert not torch.equal(next(trainer.G_ema.parameters()), next(trainer.G.parameters()))


def test_without_a_decay_nothing_changes(tiny_train_config):
    trainer = Trainer(tiny_train_config)
    assert trainer.G_ema is None and trainer.sampling_generator is trainer.G
    assert "generator_ema" not in trainer.state_dict()


def test_run_exports_the_average_and_can_export_the_live_weights(tmp_path, tiny_train_config):
    cfg = dataclasses.replace(tiny_train_config, ema_decay=0.9)
    exported = train(cfg, tmp_path / "run", progress=False)
    last = tmp_path / "run" / "checkpoints" / "last.pt"
    state = load_checkpoint(last)
    _, weights, meta = read_generator_file(exported)
    assert meta["weights"] == "average" and float(meta["ema_decay"]) == 0.9
    assert float(meta["ema_decay_at_step"]) == pytest.approx(ema.decay_at(4, 0.9))  # still warming up
    for name, tensor in state["generator_ema"].items():
        assert torch.equal(weights[name], tensor), name
    from_checkpoint = load_generator(last).state_dict()  # a checkpoint also gives the average
    assert all(torch.equal(from_checkpoint[k], v) for k, v in state["generator_ema"].items())

    export_generator(last, tmp_path / "live.safetensors", averaged=False)
    _, live, meta = read_generator_file(tmp_path / "live.safetensors")
    assert meta["weights"] == "live"
    assert all(torch.equal(live[k], v) for k, v in state["generator"].items())
    assert any(not torch.equal(live[k], weights[k]) for k in live)


def test_a_checkpoint_that_lost_its_average_is_refused(tmp_path, tiny_train_config):
    cfg = dataclasses.replace(tiny_train_config, ema_decay=0.9, max_steps=2)
    train(cfg, tmp_path / "run", progress=False)
    last = tmp_path / "run" / "checkpoints" / "last.pt"
    state = torch.load(last, weights_only=True)
    del state["generator_ema"]
    save_checkpoint(last, state)
    for load in (load_checkpoint, load_generator, lambda p: export_generator(p, tmp_path / "g.safetensors")):
        with pytest.raises(CheckpointError, match="ema_decay=0.9 but holds no weight average"):
            load(last)
    assert not (tmp_path / "g.safetensors").exists()
