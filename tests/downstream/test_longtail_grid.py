"""The longtail grid: cells, methods, scores, fair generators on exactly the cell's images."""

import dataclasses
import json
import shutil

import pytest
import torch
from click.testing import CliRunner

from augment.checkpoint import generator_step, read_generator_file, save_generator
from augment.cli import main
from augment.config import SubsetSpec
from augment.data.real import RealMNIST
from augment.data.subsets import long_tail_counts
from augment.downstream import runner
from augment.downstream.fair import fair_train_config
from augment.downstream.grid import read_results
from augment.downstream.longtail_grid import LongtailGridConfig, longtail_scores, rarest_classes
from augment.downstream.longtail_summary import best_baseline, longtail_frame, paired_gains, score_table
from augment.downstream.methods import METHODS, Method, methods_of
from augment.downstream.presets import PRESETS
from augment.downstream.runner import run_grid
from augment.errors import ConfigError
from augment.gan.models import Generator
from augment.synthetic.mixing import class_counts
from augment.training.loop import train
from tests.conftest import write_idx_dir

CPU = torch.device("cpu")


@pytest.fixture
def lt_data(tmp_path):
    """300 toy train digits (30 a class): MNIST-LT with n_max 16 fits."""
    return write_idx_dir(tmp_path / "data", n_train=300, n_test=100)


def tiny_grid(**changes) -> LongtailGridConfig:
    base = LongtailGridConfig(imbalance_ratios=(4.0,), n_max=16, seeds=(0,), classifier_steps=3, classifier_batch=8,
                              fair_gan_steps=2, fair_widths=(8, 8), diversity_per_class=6)
    return dataclasses.replace(base, **changes)


def test_cells_cover_baselines_once_and_synthetic_methods_per_regime():
    grid = tiny_grid(imbalance_ratios=(10.0, 100.0), seeds=(0, 1))
    cells = grid.cells()
    assert len(cells) == 2 * 2 * (6 + 3 * 2)
    assert len({grid.cell_key(c) for c in cells}) == len(cells)
    assert {c.regime for c in cells if c.method in ("erm", "balanced", "classical+logit-adjusted")} == {"-"}
    assert {c.regime for c in cells if c.method == "classical+top-up"} == {"fair", "shipped"}
    assert tiny_grid(regimes=("fair",), methods=("erm", "top-up")).cells()[1].regime == "fair"


@pytest.mark.parametrize("changes, match", [
    ({"methods": ("erm", "mixup")}, "unknown longtail method"),
    ({"regimes": ("leaky",)}, "unknown regime"),
    ({"imbalance_ratios": (0.5,)}, ">= 1"),
    ({"fair_widths": (8,)}, "fair_widths"),
    ({"logit_adjust_tau": 0.0}, "> 0"),
    ({"logit_adjust_tau": float("inf")}, "finite"),
    ({"synthetic_ratio": float("inf")}, "finite"),  # would drop every real image
    ({"synthetic_ratio": float("nan")}, "finite"),
    ({"imbalance_ratios": (float("inf"),)}, "finite"),
    ({"top_up_target": 0}, "top_up_target"),
    ({"top_up_target": 2.5}, "top_up_target"),
    ({"top_up_target": True}, "top_up_target"),
])
def test_a_bad_grid_is_refused(changes, match):
    with pytest.raises(ConfigError, match=match):
        tiny_grid(**changes)


def test_presets_are_valid_and_the_cpu_preset_is_the_issues():
    cpu = PRESETS["longtail-cpu"].grid
    assert cpu.imbalance_ratios == (10.0, 100.0) and cpu.seeds == (0, 1, 2) and cpu.logit_adjust_tau == 0.5
    assert set(cpu.methods) == set(methods_of("longtail")) and cpu.regimes == ("fair", "shipped")
    assert PRESETS["longtail-gpu"].grid.fair_widths == (128, 64)  # the reference size


def test_scores_balanced_worst_and_rarest():
    scores = longtail_scores(4 / 8, [1.0, 0.5, 0.5, 0.0], train_counts=[100, 10, 50, 5])
    assert scores["test_accuracy"] == pytest.approx(4 / 8)
    assert [scores[f"recall_{c}"] for c in range(4)] == [1.0, 0.5, 0.5, 0.0]
    assert scores["balanced_accuracy"] == pytest.approx(0.5) and scores["worst_recall"] == 0.0
    assert scores["rare_recall"] == pytest.approx((0.0 + 0.5 + 0.5) / 3)  # classes 3, 1, 2 by count
    assert rarest_classes([100, 10, 50, 5]) == [3, 1, 2]
    two = longtail_scores(2 / 3, [1.0, 0.5], train_counts=[100, 10])
    assert two["rare_recall"] == pytest.approx((1.0 + 0.5) / 2)  # two classes: the mean over both, not / 3


def test_each_method_trains_on_its_data_with_its_loss_and_sampling(tmp_path, lt_data, tiny_generator, monkeypatch):
    """Baselines see the long-tailed images only; top-up balances every class with synthetic
    ones; 'synthetic' adds r x n_c; the resampling, logit-adjustment and classical parts reach the
    classifier's budget."""
    seen = {}
    real_train = runner.train_classifier

    def spy(images, labels, *args, train=None, batch_transform=None, **kwargs):
        seen[len(seen)] = (torch.bincount(labels.cpu(), minlength=10).tolist(), train, batch_transform)
        return real_train(images, labels, *args, train=train, batch_transform=batch_transform, **kwargs)

    monkeypatch.setattr(runner, "train_classifier", spy)
    grid = tiny_grid(regimes=("shipped",), synthetic_ratio=2.0)
    run_grid(grid, tmp_path / "exp", CPU, data_dir=lt_data, generator=tiny_generator, progress=False,
             log=lambda m: None, dataset="idx")
    counts = long_tail_counts(10, 4.0, n_max=16)
    by_method = {cell.method: seen[k] for k, cell in enumerate(grid.cells())}
    for method in ("erm", "balanced", "logit-adjusted", "classical"):
        assert by_method[method][0] == counts
    assert by_method["top-up"][0] == [16] * 10 and by_method["classical+top-up"][0] == [16] * 10
    assert by_method["classical+synthetic+logit-adjusted"][0] == [3 * n for n in counts]
    assert by_method["balanced"][1].sampling == "balanced" and by_method["erm"][1].sampling == "uniform"
    assert by_method["logit-adjusted"][1].logit_adjust_tau == 0.5 and by_method["erm"][1].logit_adjust_tau == 0.0
    assert by_method["classical"][2] is runner.random_affine and by_method["erm"][2] is None
    assert by_method["classical+synthetic+logit-adjusted"][1].logit_adjust_tau == 0.5


def test_a_new_method_is_a_row_of_the_method_table(tmp_path, lt_data, tiny_generator, monkeypatch):
    """A row added to the table is a method of the grid, run with its sampling, loss, transform and
    synthetic data, in the tables under its label: nothing else changes."""
    row = Method("balanced+top-up", "resampling + synthetic top-up", ("longtail",), sampling="balanced",
                 synthetic="top-up")
    monkeypatch.setitem(METHODS, row.name, row)
    seen = []
    real_train = runner.train_classifier

    def spy(images, labels, *args, train=None, batch_transform=None, **kwargs):
        seen.append((torch.bincount(labels.cpu(), minlength=10).tolist(), train, batch_transform))
        return real_train(images, labels, *args, train=train, batch_transform=batch_transform, **kwargs)

    monkeypatch.setattr(runner, "train_classifier", spy)
    assert "balanced+top-up" in methods_of("longtail")
    out = tmp_path / "exp"
    run_grid(tiny_grid(regimes=("shipped",), methods=("erm", "balanced+top-up")), out, CPU, data_dir=lt_data,
             generator=tiny_generator, progress=False, log=lambda m: None, dataset="idx")
    (counts, budget, transform) = seen[1]
    assert counts == [16] * 10 and budget.sampling == "balanced" and budget.logit_adjust_tau == 0.0
    assert transform is None
    rows = {r["method"]: r for r in read_results(out / "results.csv")}
    assert int(rows["balanced+top-up"]["top_up_target"]) == 16 and rows["balanced+top-up"]["regime"] == "shipped"
    assert "| resampling + synthetic top-up | shipped |" in (out / "summary.md").read_text()


def test_grid_trains_a_fair_generator_on_the_cells_images_resumes_and_reports(
        tmp_path, lt_data, tiny_generator, tiny_evaluator):
    grid = tiny_grid(methods=("erm", "classical", "top-up"))
    out = tmp_path / "exp"
    results = run_grid(grid, out, CPU, data_dir=lt_data, generator=tiny_generator, progress=False,
                       log=lambda m: None, dataset="idx", evaluator=tiny_evaluator)
    rows = read_results(results)
    assert len(rows) == len(grid.cells()) == 4
    assert {"balanced_accuracy", "worst_recall", "rare_recall", "recall_9", "count_9"} <= set(rows[0])
    assert [int(rows[0][f"count_{c}"]) for c in range(10)] == long_tail_counts(10, 4.0, n_max=16)
    run = out / "fair_generators" / "lt4-n16_seed0"
    config = json.loads((run / "config.json").read_text())
    subset = config["subset"]
    assert (subset["imbalance_ratio"], subset["n_max"], config["seed"]) == (4.0, 16, 0)
    assert config["real_sampling"] == "balanced"  # auto, resolved and saved
    for name in ("summary.md", "diversity.csv", "run.json", "balanced_accuracy.png", "recall_vs_count.png",
                 "rare_class_samples.png"):
        assert (out / name).exists(), name
    summary = (out / "summary.md").read_text()
    assert "Gains over the best non-generative baseline" in summary and "fair lt4-n16_seed0" in summary
    info = json.loads((out / "run.json").read_text())
    assert info["budget"]["classifier_steps"] == 3 and "fair lt4-n16_seed0" in info["generators"]
    assert info["generators"]["fair lt4-n16_seed0"]["training"]["imbalance_ratio"] == 4.0

    mtime = results.stat().st_mtime_ns  # a rerun runs no cell; another budget is refused
    run_grid(grid, out, CPU, data_dir=lt_data, generator=tiny_generator, progress=False, log=lambda m: None,
             dataset="idx", evaluator=tiny_evaluator)
    assert len(read_results(results)) == 4 and results.stat().st_mtime_ns >= mtime
    with pytest.raises(ConfigError, match="classifier_steps=3"):
        run_grid(dataclasses.replace(grid, classifier_steps=4), out, CPU, data_dir=lt_data,
                 generator=tiny_generator, progress=False, log=lambda m: None, dataset="idx")
    (run / "generator.safetensors").write_bytes(tiny_generator.read_bytes())  # another generator under its name
    with pytest.raises(ConfigError, match="not the fair generator earlier cells used"):
        run_grid(dataclasses.replace(grid, seeds=(0, 1)), out, CPU, data_dir=lt_data,
                 generator=tiny_generator, progress=False, log=lambda m: None, dataset="idx")


def test_a_fair_generator_in_the_fair_dir_is_used_as_it_is(tmp_path, lt_data, tiny_generator):
    fair = tmp_path / "fair" / "lt4-n16_seed0"
    fair.mkdir(parents=True)
    (fair / "generator.safetensors").write_bytes(tiny_generator.read_bytes())
    grid = tiny_grid(methods=("top-up",), regimes=("fair",))
    run_grid(grid, tmp_path / "exp", CPU, data_dir=lt_data, progress=False, log=lambda m: None, dataset="idx",
             fair_dir=tmp_path / "fair")
    assert not (fair / "config.json").exists()  # not retrained
    assert read_results(tmp_path / "exp" / "results.csv")[0]["regime"] == "fair"


@pytest.mark.parametrize("key, value, option", [("max_steps", 3, "--fair-gan-steps"),
                                                ("real_sampling", "uniform", "--fair-real-sampling"),
                                                ("seed", 1, "--seeds"), ("model.g_width", 16, "--fair-widths"),
                                                ("n_critic", 2, "--fair-recipe"),
                                                ("critic_lr", 3e-4, "--fair-recipe"),
                                                ("ema_decay", 0.999, "--fair-recipe"),
                                                ("keep_best", "agreement", "--fair-recipe")])
def test_a_fair_run_trained_otherwise_than_the_grid_asks_is_refused(tmp_path, lt_data, tiny_generator, key, value,
                                                                    option):
    grid = tiny_grid(methods=("top-up",), regimes=("fair",))
    fair = tmp_path / "fair" / "lt4-n16_seed0"
    fair.mkdir(parents=True)
    (fair / "generator.safetensors").write_bytes(tiny_generator.read_bytes())
    config = fair_train_config(grid, grid.subset(4.0), 0, lt_data, "idx", CPU).to_dict()
    changed = json.loads(json.dumps({**config, "real_sampling": "balanced"}))
    section, _, name = key.rpartition(".")
    (changed[section] if section else changed)[name] = value
    (fair / "config.json").write_text(json.dumps(changed))
    with pytest.raises(ConfigError, match=f"{name}={value!r}.*{option}"):
        run_grid(grid, tmp_path / "exp", CPU, data_dir=lt_data, progress=False, log=lambda m: None,
                 dataset="idx", fair_dir=tmp_path / "fair")
    assert not (tmp_path / "exp").exists()
    (fair / "config.json").write_text(json.dumps({**config, "real_sampling": "balanced"}))  # as asked: used
    run_grid(grid, tmp_path / "exp", CPU, data_dir=lt_data, progress=False, log=lambda m: None, dataset="idx",
             fair_dir=tmp_path / "fair")
    assert read_results(tmp_path / "exp" / "results.csv")[0]["regime"] == "fair"


def test_fair_generators_can_be_trained_by_the_cpu_recipe_without_its_outside_judge(tmp_path, lt_data):
    grid = tiny_grid(methods=("top-up",), regimes=("fair",), fair_recipe="cpu")
    cfg = fair_train_config(grid, grid.subset(4.0), 0, lt_data, "idx", CPU)
    seed_recipe = fair_train_config(tiny_grid(), grid.subset(4.0), 0, lt_data, "idx", CPU)
    assert (cfg.n_critic, cfg.critic_lr, cfg.ema_decay) == (2, 3e-4, 0.999)  # the preset's
    assert (seed_recipe.n_critic, seed_recipe.critic_lr, seed_recipe.ema_decay) == (5, None, None)
    assert cfg.eval_every is None and cfg.keep_best is None  # no pick by the MNIST judge's labels
    assert (cfg.model.g_width, cfg.model.d_width, cfg.max_steps, cfg.subset) == (8, 8, 2, grid.subset(4.0))
    run_grid(grid, tmp_path / "exp", CPU, data_dir=lt_data, progress=False, log=lambda m: None, dataset="idx")
    saved = json.loads((tmp_path / "exp" / "fair_generators" / "lt4-n16_seed0" / "config.json").read_text())
    assert (saved["n_critic"], saved["critic_lr"], saved["ema_decay"], saved["eval_every"]) == (2, 3e-4, 0.999, None)
    with pytest.raises(ConfigError, match="critic_lr=0.0003, the grid asks for None.*--fair-recipe"):
        run_grid(tiny_grid(methods=("top-up",), regimes=("fair",), seeds=(0,)), tmp_path / "exp2", CPU,
                 data_dir=lt_data, progress=False, log=lambda m: None, dataset="idx",
                 fair_dir=tmp_path / "exp" / "fair_generators")
    with pytest.raises(ConfigError, match="fair_recipe must be one of reference, cpu"):
        tiny_grid(fair_recipe="fast")


def test_a_generator_an_evaluation_picked_is_refused_as_fair_even_without_its_config(
        tmp_path, lt_data, tiny_generator):
    # what `augment train --preset cpu` exports (keep_best), its config.json gone
    run = tmp_path / "fair" / "lt4-n16_seed0"
    run.mkdir(parents=True)
    config, state, metadata = read_generator_file(tiny_generator)
    save_generator(run / "generator.safetensors", Generator(config),
                   {**metadata, "selected_by": {"metric": "agreement", "score": 0.9, "at_step": 1}})
    grid = tiny_grid(methods=("top-up",), regimes=("fair",), fair_recipe="cpu")
    with pytest.raises(ConfigError, match="an in-training evaluation picked.*--fair-recipe"):
        run_grid(grid, tmp_path / "exp", CPU, data_dir=lt_data, progress=False, log=lambda m: None,
                 dataset="idx", fair_dir=tmp_path / "fair")
    assert not (tmp_path / "exp").exists()


@pytest.mark.parametrize("has_checkpoint", [True, False])
def test_a_fair_run_a_time_limit_stopped_short_is_refused_with_how_to_continue_it(tmp_path, lt_data, has_checkpoint):
    grid = tiny_grid(methods=("top-up",), regimes=("fair",), fair_gan_steps=3)
    run = tmp_path / "fair" / "lt4-n16_seed0"
    cfg = dataclasses.replace(fair_train_config(grid, grid.subset(4.0), 0, lt_data, "idx", CPU), max_minutes=1e-9)
    train(cfg, run, progress=False)  # stops after its first step
    assert generator_step(run / "generator.safetensors") == 1
    if not has_checkpoint:
        shutil.rmtree(run / "checkpoints")
    how = "continue it with `augment train --run-dir .* --resume --max-steps 3`" if has_checkpoint else "train it again"
    go = lambda: run_grid(grid, tmp_path / "exp", CPU, data_dir=lt_data, progress=False,  # noqa: E731
                          log=lambda m: None, dataset="idx", fair_dir=tmp_path / "fair")
    with pytest.raises(ConfigError, match=f"stopped at step 1 of the 3 the grid asks for; {how}"):
        go()
    assert not (tmp_path / "exp").exists()
    if has_checkpoint:  # the advice works
        result = CliRunner().invoke(main, ["train", "--run-dir", str(run), "--resume", "--max-steps", "3",
                                           "--max-minutes", "60", "--quiet"])
        assert result.exit_code == 0, result.output
        assert generator_step(run / "generator.safetensors") == 3
        assert read_results(go())[0]["regime"] == "fair"


def test_tau_is_a_column_of_the_rows_that_use_it_and_cannot_change_under_them(tmp_path, lt_data, tiny_generator):
    out = tmp_path / "exp"
    run = lambda **changes: run_grid(tiny_grid(**changes), out, CPU, data_dir=lt_data,  # noqa: E731
                                     generator=tiny_generator, progress=False, log=lambda m: None,
                                     dataset="idx")
    run(methods=("classical",), logit_adjust_tau=1.0)
    run(methods=("classical", "logit-adjusted"), logit_adjust_tau=0.5)  # classical did not use tau: fine
    rows = {r["method"]: r for r in read_results(out / "results.csv")}
    assert (rows["classical"]["logit_adjust_tau"], float(rows["logit-adjusted"]["logit_adjust_tau"])) == ("", 0.5)
    with pytest.raises(ConfigError, match="logit-adjusted cells made with logit_adjust_tau=0.5, not 2"):
        run(methods=("logit-adjusted",), logit_adjust_tau=2.0)


def test_the_top_up_target_reaches_the_mix_is_a_column_and_cannot_change_under_its_rows(
        tmp_path, lt_data, tiny_generator, monkeypatch):
    seen = []
    real_train = runner.train_classifier

    def spy(images, labels, *args, **kwargs):
        seen.append(torch.bincount(labels.cpu(), minlength=10).tolist())
        return real_train(images, labels, *args, **kwargs)

    monkeypatch.setattr(runner, "train_classifier", spy)
    out = tmp_path / "exp"
    run = lambda **changes: run_grid(tiny_grid(regimes=("shipped",), **changes), out, CPU,  # noqa: E731
                                     data_dir=lt_data, generator=tiny_generator, progress=False,
                                     log=lambda m: None, dataset="idx")
    run(methods=("top-up", "classical"), top_up_target=10)
    counts = long_tail_counts(10, 4.0, n_max=16)
    assert seen[1] == [max(n, 10) for n in counts]  # classes above the target keep all their real images
    rows = {r["method"]: r for r in read_results(out / "results.csv")}
    assert int(rows["top-up"]["top_up_target"]) == 10 and rows["classical"]["top_up_target"] == ""
    with pytest.raises(ConfigError, match="top-up cells made with top_up_target=10, not 16"):
        run(methods=("top-up",))  # the default target, n_max


def test_a_subset_the_data_cannot_hold_fails_before_anything_is_written(tmp_path, lt_data, tiny_generator):
    with pytest.raises(Exception, match="fewer than"):
        run_grid(tiny_grid(n_max=31), tmp_path / "exp", CPU, data_dir=lt_data, generator=tiny_generator,
                 progress=False, log=lambda m: None, dataset="idx")
    assert not (tmp_path / "exp").exists()


def test_gains_are_paired_with_the_best_baseline_by_seed():
    rows = []
    for seed, (erm, la, top) in enumerate([(0.80, 0.85, 0.88), (0.70, 0.80, 0.79)]):
        for method, regime, bal in (("erm", "-", erm), ("logit-adjusted", "-", la), ("top-up", "fair", top)):
            rows.append({"imbalance_ratio": 100.0, "method": method, "regime": regime, "seed": seed,
                         "test_accuracy": bal, "balanced_accuracy": bal, "worst_recall": 0.5, "rare_recall": bal - 0.1})
    frame = longtail_frame(rows)
    assert best_baseline(frame) == {100.0: "logit-adjusted"}
    gains = paired_gains(frame, best_baseline(frame))
    assert gains.iloc[0]["balanced accuracy gain"].startswith("+1.00 ± ")  # (+3, -1) / 2 points
    assert gains.iloc[0]["seeds above"] == "1 of 2"


def test_tables_list_methods_in_the_grids_order_whatever_order_the_rows_came_in():
    rows = [{"imbalance_ratio": 10.0, "method": m, "regime": r, "seed": 0, "test_accuracy": 0.9,
             "balanced_accuracy": 0.9, "worst_recall": 0.8, "rare_recall": 0.85}
            for m, r in (("classical+top-up", "fair"), ("classical", "-"), ("erm", "-"), ("logit-adjusted", "-"),
                         ("top-up", "fair"))]
    frame = longtail_frame(rows)
    assert list(score_table(frame)["method"]) == ["ERM", "logit adjustment", "classical", "synthetic top-up",
                                                  "classical + synthetic top-up"]
    assert list(paired_gains(frame, {10.0: "erm"})["method"]) == ["synthetic top-up", "classical + synthetic top-up"]


def test_the_real_images_of_a_cell_are_its_long_tailed_subset(lt_data):
    spec = SubsetSpec(imbalance_ratio=4.0, n_max=16)
    real = RealMNIST(lt_data, subset=spec, seed=1, dataset="idx")
    assert class_counts(real) == dict(enumerate(long_tail_counts(10, 4.0, n_max=16)))
