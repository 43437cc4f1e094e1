import json
import math

import pytest
import torch

from augment.checkpoint import save_generator
from augment.downstream.balanced_grid import BalancedGridConfig
from augment.downstream.records import (
    check_same_budget,
    describe_generator,
    missing_generator,
    read_diversity,
    run_training_settings,
    write_run_info,
)
from augment.errors import ConfigError
from augment.fileio import sha256_file
from augment.gan.models import Generator


def test_training_settings_of_old_configs_get_the_defaults_they_trained_with(tmp_path):
    assert run_training_settings(tmp_path) is None  # no config.json
    (tmp_path / "config.json").write_text("{not json")
    assert run_training_settings(tmp_path) is None
    (tmp_path / "config.json").write_text("[1, 2]")
    assert run_training_settings(tmp_path) is None
    (tmp_path / "config.json").write_text(json.dumps({"seed": 3, "subset": {"n_per_class": 10}, "lr": 1e-4}))
    settings = run_training_settings(tmp_path)
    assert settings["seed"] == 3 and settings["n_per_class"] == 10
    assert settings["critic_augment"] == "none" and settings["ema_decay"] is None and settings["critic_lr"] is None
    assert settings["keep_best"] is None


def test_a_generator_is_described_by_its_file_config_step_and_run(tmp_path, tiny_model_config, tiny_train_config,
                                                                  monkeypatch):
    run = tmp_path / "run"
    run.mkdir()
    path = run / "generator.safetensors"
    save_generator(path, Generator(tiny_model_config), {"step": 40})
    (run / "config.json").write_text(tiny_train_config.to_json())
    monkeypatch.chdir(tmp_path)
    info = describe_generator(path)
    assert info["path"] == "run/generator.safetensors"  # relative to the working directory
    assert info["sha256"] == sha256_file(path) and info["step"] == 40 and info["weights"] == "live"
    assert info["model"]["g_width"] == tiny_model_config.g_width
    assert info["training"]["n_critic"] == tiny_train_config.n_critic


def test_a_missing_generator_keeps_what_run_json_recorded(tmp_path):
    assert missing_generator(tmp_path, "fair n=2 seed=0", tmp_path / "g.safetensors") == {
        "missing": True, "looked_for": str(tmp_path / "g.safetensors")}
    (tmp_path / "run.json").write_text(json.dumps({"generators": {"fair n=2 seed=0": {"sha256": "ab", "step": 7}}}))
    info = missing_generator(tmp_path, "fair n=2 seed=0", tmp_path / "g.safetensors")
    assert info["sha256"] == "ab" and info["step"] == 7 and info["missing"] is True


def test_diversity_rows_are_read_back_as_numbers(tmp_path):
    assert read_diversity(tmp_path / "diversity.csv") == []
    (tmp_path / "diversity.csv").write_text("generator,class,agreement,coverage\nshipped,3,0.99,\n")
    (row,) = read_diversity(tmp_path / "diversity.csv")
    assert row["generator"] == "shipped" and row["class"] == 3 and row["agreement"] == 0.99
    assert math.isnan(row["coverage"])


def test_run_info_accumulates_invocations_and_guards_the_budget(tmp_path):
    grid = BalancedGridConfig(classifier_steps=7)
    rows = [{"regime": "-", "seconds": "1.5"}, {"regime": "-", "seconds": "2.0"}]
    for cells_run in (2, 0):
        write_run_info(tmp_path, grid, torch.device("cpu"), "augment experiment", 10.0, cells_run, {}, rows)
    info = json.loads((tmp_path / "run.json").read_text())
    assert [i["cells_run"] for i in info["invocations"]] == [2, 0]
    assert info["cells_run_total"] == 2 and info["wall_time_s_total"] == 20.0 and info["cell_seconds_total"] == 3.5
    assert info["budget"]["classifier_steps"] == 7 and "no GPU" in info["invocations"][0]["machine"]
    check_same_budget(tmp_path, grid, rows, None)  # the same budget passes
    check_same_budget(tmp_path, BalancedGridConfig(classifier_steps=8), [], None)  # no rows yet: nothing to mix
    with pytest.raises(ConfigError, match="classifier_steps=7, not 8"):
        check_same_budget(tmp_path, BalancedGridConfig(classifier_steps=8), rows, None)
