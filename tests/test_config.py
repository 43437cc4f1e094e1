import dataclasses
import json
from typing import Optional

import pytest

from augment.config import ModelConfig, SubsetSpec, TrainConfig, _check_bounds, _opt, config_from_dict
from augment.errors import ConfigError


def test_defaults_are_the_reference_recipe():
    cfg = TrainConfig()
    assert (cfg.batch_size, cfg.n_critic, cfg.lr, cfg.beta1, cfg.beta2, cfg.gp_weight, cfg.epochs) == \
        (64, 5, 1e-4, 0.5, 0.9, 10.0, 100)
    assert cfg.step_impl == "auto" and cfg.real_batches == "fresh"
    m = cfg.model
    assert (m.num_classes, m.z_dim, m.embed_dim, m.g_width, m.d_width, m.channels) == (10, 100, 10, 128, 64, 1)


def test_configs_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        TrainConfig().lr = 1.0


def test_round_trip_through_dict():
    cfg = TrainConfig(model=ModelConfig(z_dim=7), subset=SubsetSpec(imbalance_ratio=10.0), lr=3e-4,
                      real_batches="shared", max_steps=5)
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg
    assert cfg.to_dict()["subset"]["imbalance_ratio"] == 10.0  # nested, as the model config


def test_a_field_of_any_spelling_of_optional_int_takes_none_and_ints_only():
    @dataclasses.dataclass(frozen=True)
    class Spelled:
        new: int | None = _opt(None, "PEP 604 spelling", min=1)
        old: Optional[int] = _opt(None, "typing spelling", min=1)

        def __post_init__(self):
            _check_bounds(self)

    assert Spelled() == Spelled(None, None) and Spelled(new=3, old=4).new == 3
    for bad in ({"new": "7"}, {"old": "7"}, {"new": 2.5}, {"new": True}):
        with pytest.raises(ConfigError, match="must be an integer"):
            Spelled(**bad)
    with pytest.raises(ConfigError, match="outside"):
        Spelled(new=0)
    with pytest.raises(ConfigError, match="imbalance_ratio must be a finite"):
        SubsetSpec(imbalance_ratio=float("inf"))


def test_model_sizes_are_capped_so_a_file_cannot_ask_for_an_absurd_model():
    for field, value in (("z_dim", 2 ** 62), ("g_width", 10 ** 6), ("num_classes", 10 ** 9)):
        with pytest.raises(ConfigError, match=field):
            ModelConfig(**{field: value})


@pytest.mark.parametrize("kwargs, word", [
    ({"batch_size": 1}, "batch_size"),
    ({"lr": -1.0}, "lr"),
    ({"real_batches": "sometimes"}, "real_batches"),
    ({"device": "tpu"}, "device"),
    ({"beta2": 1.5}, "beta2"),
    ({"beta1": 1.0}, "beta1"),  # Adam's betas lie in [0, 1): 1 is refused
    ({"ema_decay": 1.0}, "ema_decay"),
    ({"compile_step": True}, "compile_step compiles the explicit-gp step"),  # (the eager step has nothing to compile)
    ({"keep_best": "agreement"}, "keep_best .* goes with eval_every"),
    ({"keep_best": "beauty", "eval_every": 5}, "keep_best"),
    ({"lr": float("nan")}, "lr must be a finite number"),
    ({"max_minutes": float("inf")}, "max_minutes must be a finite"),
])
def test_out_of_range_values_are_refused(kwargs, word):
    with pytest.raises(ConfigError, match=word):
        TrainConfig(**kwargs)


def test_unknown_keys_are_refused():
    with pytest.raises(ConfigError, match="bogus"):
        config_from_dict(TrainConfig, {"bogus": 1})
    with pytest.raises(ConfigError, match="mapping"):
        config_from_dict(ModelConfig, [1, 2])


@pytest.mark.parametrize("kwargs, word", [
    ({"batch_size": None}, "batch_size must be given"), ({"max_steps": 1.5}, "max_steps must be an integer"),
    ({"tensorboard": "no"}, "tensorboard must be True or False"), ({"seed": True}, "seed must be an integer"),
    ({"lr": "x"}, "lr must be a number"), ({"device": 0}, "device must be"),
    ({"epochs": "7"}, "epochs must be an integer"),
    ({"subset": {"n_per_class": 3}}, "subset must be a SubsetSpec"),
])
def test_values_of_the_wrong_type_are_refused_when_the_config_is_made(kwargs, word):
    with pytest.raises(ConfigError, match=word):
        TrainConfig(**kwargs)
    with pytest.raises(ConfigError, match="g_width must be an integer"):
        ModelConfig(g_width=8.5)


def test_paths_and_numpy_numbers_become_plain_json_values():
    from pathlib import Path

    import numpy as np

    cfg = TrainConfig(data_dir=Path("/data/mnist"), seed=np.int64(3), lr=1, model=ModelConfig(g_width=np.int32(8)))
    assert cfg.data_dir == "/data/mnist" and type(cfg.seed) is int and type(cfg.lr) is float
    assert type(cfg.model.g_width) is int
    assert TrainConfig.from_dict(json.loads(cfg.to_json())) == cfg


def test_a_preset_merges_its_nested_settings_with_the_overrides():
    from augment.config import TRAIN_PRESETS, preset_config

    cfg = preset_config("cpu", model={"z_dim": 16}, subset={"n_per_class": 5}, seed=3)
    assert (cfg.model.g_width, cfg.model.z_dim, cfg.subset.n_per_class, cfg.seed) == (32, 16, 5, 3)
    assert cfg.n_critic == TRAIN_PRESETS["cpu"]["n_critic"]
    with pytest.raises(ConfigError, match="unknown preset"):
        preset_config("gpu")
