"""CLI exit codes and messages: usage errors exit 2, library errors one line and exit 1."""

import json

import pytest
from click.testing import CliRunner

from augment.cli import main
from tests.conftest import bar_digits


def run(*args):
    result = CliRunner().invoke(main, [str(a) for a in args])
    return result


def test_help_lists_commands():
    result = run("--help")
    assert result.exit_code == 0
    for name in ("train", "sample", "export", "data"):
        assert name in result.output


def test_cas_steps_default_is_the_library_default():
    from augment.evaluation.scoring import CAS_STEPS
    from augment.cli.evaluate import evaluate
    option = next(p for p in evaluate.params if p.name == "cas_steps")
    assert option.default == CAS_STEPS


def test_dry_run_prints_resolved_config(tmp_path, idx_dir):
    args = ["train", "--run-dir", tmp_path / "unused", "--dry-run", "--lr", "0.0003", "--z-dim", "16",
            "--data-dir", idx_dir, "--dataset", "idx", "--n-per-class", 3]
    result = run(*args, "--json")
    assert result.exit_code == 0, result.output
    cfg = json.loads(result.output)
    assert len(result.output.splitlines()) == 1
    assert cfg["lr"] == 0.0003 and cfg["model"]["z_dim"] == 16 and cfg["model"]["num_classes"] is None
    assert cfg["subset"]["n_per_class"] == 3
    assert not (tmp_path / "unused").exists()
    people = run(*args)  # a sentence, then the config as config.json would hold it
    first, _, config = people.output.partition("\n")
    assert first.startswith("checks passed;") and json.loads(config) == cfg


def test_train_recognises_the_kind_of_its_data_and_dataset_wins(tmp_path, idx_dir):
    import numpy as np

    images, labels = bar_digits(30, num_classes=3)
    np.savez(tmp_path / "d.npz", x=images.numpy(), y=labels.numpy())
    for data, kind in ((tmp_path / "d.npz", "npz"), (idx_dir, "idx")):
        result = run("train", "--run-dir", tmp_path / "unused", "--dry-run", "--data-dir", data, "--json")
        assert result.exit_code == 0 and json.loads(result.output)["dataset"] == kind, result.output
    result = run("train", "--run-dir", tmp_path / "unused", "--dry-run", "--data-dir", tmp_path / "d.npz",
                 "--dataset", "idx")
    _assert_clean_error(result, 1, "not a directory")


@pytest.mark.parametrize("args, words", [
    (["--class-counts", "1,2,3"], "3 class counts for 10 classes"), (["--lr", "nan"], "not a finite number"),
    (["--z-dim", "1e12"], "--z-dim"), (["--data-dir", "/nonexistent/dir"], "/nonexistent/dir"),
    (["--eval-every", "5", "--eval-classifier", "/nonexistent/judge"], "/nonexistent/judge"),
])
def test_dry_run_makes_every_check_a_real_run_makes(tmp_path, idx_dir, args, words):
    base = ["train", "--run-dir", tmp_path / "unused", "--dry-run", "--data-dir", idx_dir, "--dataset", "idx"]
    result = run(*base, *args)
    assert result.exit_code != 0 and words in result.output, result.output
    assert len(result.output.strip().splitlines()) == 1


def test_train_sample_export_resume(tmp_path, idx_dir):
    run_dir = tmp_path / "run"
    common = ["--data-dir", idx_dir, "--dataset", "idx", "--batch-size", 16, "--n-critic", 2,
              "--z-dim", 8, "--embed-dim", 4, "--g-width", 8, "--d-width", 8, "--device", "cpu",
              "--log-every", 1, "--no-tensorboard", "--quiet"]
    result = run("train", "--run-dir", run_dir, "--max-steps", 2, *common)
    assert result.exit_code == 0, result.output
    assert result.output == f"trained: the generator is {run_dir / 'generator.safetensors'} (config, logs, " \
        f"sample grids and checkpoints in {run_dir})\n"
    result = run("train", "--run-dir", run_dir, "--resume", "--max-steps", 3, "--quiet", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == {"run_dir": str(run_dir), "generator": str(run_dir / "generator.safetensors")}
    # the original command with --resume added: repeated options must equal the run's settings
    result = run("train", "--run-dir", run_dir, "--resume", "--max-steps", 4, "--epochs", 100, *common)
    assert result.exit_code == 0, result.output  # epochs repeated with its saved value: no change
    result = run("train", "--run-dir", run_dir, "--resume", "--max-steps", 4, *common[:-2], "--lr", "0.5")
    _assert_clean_error(result, 2, "--lr cannot change", "0.0001")
    result = run("sample", run_dir / "generator.safetensors", "-o", tmp_path / "grid.png", "--per-class", 2)
    assert result.exit_code == 0 and (tmp_path / "grid.png").exists()
    assert result.output == f"wrote {tmp_path / 'grid.png'}\n"
    result = run("sample", run_dir, "-o", tmp_path / "anim.gif", "--json")
    assert result.exit_code == 0 and (tmp_path / "anim.gif").exists()
    assert json.loads(result.output) == {"out": str(tmp_path / "anim.gif")}
    result = run("export", run_dir / "checkpoints" / "last.pt", "-o", tmp_path / "g.safetensors", "--json")
    assert result.exit_code == 0 and len(json.loads(result.output)["sha256"]) == 64
    digest = json.loads(result.output)["sha256"]
    result = run("export", run_dir / "checkpoints" / "last.pt", "-o", tmp_path / "again.safetensors")
    assert result.output == f"wrote {tmp_path / 'again.safetensors'} (SHA-256 {digest})\n"


def test_train_with_a_weight_average_and_export_either_weights(tmp_path, idx_dir):
    from augment.checkpoint import read_generator_file

    run_dir = tmp_path / "run"
    result = run("train", "--run-dir", run_dir, "--max-steps", 2, "--ema-decay", 0.99, "--data-dir", idx_dir,
                 "--dataset", "idx", "--batch-size", 16, "--n-critic", 1, "--z-dim", 8, "--embed-dim", 4,
                 "--g-width", 8, "--d-width", 8, "--device", "cpu", "--no-tensorboard", "--quiet")
    assert result.exit_code == 0, result.output
    assert read_generator_file(run_dir / "generator.safetensors")[2]["weights"] == "average"
    for flags, weights in (([], "average"), (["--live-weights"], "live")):
        out = tmp_path / f"{weights}.safetensors"
        result = run("export", run_dir / "checkpoints" / "last.pt", "-o", out, *flags)
        assert result.exit_code == 0, result.output
        assert read_generator_file(out)[2]["weights"] == weights


def _assert_clean_error(result, code, *words):
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    error_lines = [ln for ln in result.output.splitlines() if ln.startswith("Error")]
    assert len(error_lines) == 1, result.output
    for w in words:
        assert w in error_lines[0], result.output


@pytest.mark.parametrize("args, code, words", [
    (["train", "--run-dir", "{tmp}/r", "--data-dir", "{tmp}/missing"], 1, ["does not exist"]),
    (["train", "--run-dir", "{tmp}/r", "--batch-size", "1"], 2, ["--batch-size"]),
    (["train", "--run-dir", "{tmp}/r", "--real-batches", "often"], 2, ["--real-batches"]),
    (["train", "--run-dir", "{tmp}/r", "--resume", "--lr", "1"], 1, ["holds no run to resume"]),
    (["train", "--run-dir", "{tmp}/r", "--resume"], 1, ["holds no run to resume"]),
    (["train", "--run-dir", "{tmp}/r", "--device", "mps"], 2, ["--device", "'mps'"]),
    (["train", "--nproc", "2", "--run-dir", "{tmp}/r", "--data-dir", "{tmp}/missing"], 1, ["does not exist"]),
    (["train", "--run-dir", "{tmp}/r", "--beta2", "1"], 2, ["--beta2"]),
    (["train", "--run-dir", "{tmp}/r", "--ema-decay", "1"], 2, ["--ema-decay"]),
    (["sample", "-o", "{tmp}/g.png", "--device", "meta"], 2, ["--device", "'meta'"]),
    (["sample", "-o", "{tmp}/g.png", "--classes", ""], 1, ["classes is empty"]),
    (["sample", "-o", "{tmp}/g.png", "--classes", "3,3"], 1, ["duplicates"]),
    (["dump", "-o", "{tmp}/d", "-n", "10", "--device", "xpu"], 2, ["--device", "'xpu'"]),
    (["sample", "{tmp}/none.safetensors", "-o", "{tmp}/g.png"], 1, ["not found"]),
    (["sample", "{tmp}/cfg.json", "-o", "{tmp}/g.png"], 1, ["not an augment checkpoint"]),
    (["sample", "{tmp}/cfg.json", "-o", "{tmp}/g.jpg"], 2, [".png or .gif"]),
    (["sample", "{tmp}/cfg.json", "-o", "{tmp}/g.gif"], 2, ["run directory"]),
    (["sample", "{tmp}/cfg.json", "-o", "{tmp}/g.png", "--classes", "a,b"], 2, ["--classes"]),
    (["export", "{tmp}/cfg.json", "-o", "{tmp}/g.safetensors"], 1, ["not an augment checkpoint"]),
    (["data", "verify", "{tmp}/missing"], 1, ["does not exist"]),
    (["data", "verify", "{tmp}/cfg.json"], 1, ["cannot tell what kind of data", "pass --dataset"]),
    (["data", "verify", "{tmp}/cfg.json", "--dataset", "idx"], 1, ["is not a directory"]),
    (["dump", "-o", "{tmp}/d", "-n", "4294967296", "-f", "idx"], 1, ["at most 4,294,967,295 items"]),
    (["dump", "-o", "{tmp}/d", "-n", "10000000000000", "-f", "npz"], 1, ["too many"]),
    (["data", "verify", "{tmp}/bad"], 1, ["truncated"]),
])
def test_bad_invocations(tmp_path, args, code, words):
    (tmp_path / "cfg.json").write_text("{}")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "t10k-images-idx3-ubyte").write_bytes(b"\0\0\x08\x03" + b"\0\0\0\x05" * 3)
    (tmp_path / "bad" / "t10k-labels-idx1-ubyte").write_bytes(b"\0\0\x08\x01\0\0\0\x05" + b"\0" * 5)
    before = sorted(p.name for p in tmp_path.rglob("*"))
    result = run(*[a.format(tmp=tmp_path) for a in args])
    _assert_clean_error(result, code, *words)
    assert sorted(p.name for p in tmp_path.rglob("*")) == before  # nothing written


@pytest.mark.parametrize("init, words", [
    ("none.safetensors", ["not found"]), ("cfg.json", ["not a readable safetensors file"])])
def test_bad_init_generator_writes_no_run(tmp_path, idx_dir, init, words):
    (tmp_path / "cfg.json").write_text("{}")
    result = run("train", "--run-dir", tmp_path / "r", "--init-generator", tmp_path / init, "--data-dir", idx_dir,
                 "--dataset", "idx", "--device", "cpu", "--quiet")
    _assert_clean_error(result, 1, *words)
    assert not (tmp_path / "r").exists()


def test_class_out_of_range_in_sample(tmp_path, tiny_model_config):
    from augment.checkpoint import save_generator
    from augment.gan.models import Generator

    save_generator(tmp_path / "g.safetensors", Generator(tiny_model_config))
    result = run("sample", tmp_path / "g.safetensors", "-o", tmp_path / "x.png", "--classes", "3,12")
    _assert_clean_error(result, 1, "class 12")
    assert not (tmp_path / "x.png").exists()


def test_experiment_overrides_reach_the_grid(tmp_path, monkeypatch):
    import augment.downstream.runner as experiment
    from augment.downstream.presets import PRESETS

    seen = {}

    def fake_run_grid(grid, out, device, **kwargs):
        seen.update(grid=grid, fair_dir=kwargs["fair_dir"])
        return out / "results.csv"

    monkeypatch.setattr(experiment, "run_grid", fake_run_grid)
    PRESETS = {name: preset.grid for name, preset in PRESETS.items()}
    run("experiment", "--preset", "cpu", "--out", tmp_path / "exp", "--n-per-class", "100,all",
        "--ratios", "1,0.5", "--regimes", "fair", "--seeds", "1", "--fair-dir", tmp_path / "fair",
        "--device", "cpu")
    grid = seen["grid"]
    assert grid.n_per_class == (100, None) and grid.ratios == (1.0, 0.5)
    assert grid.regimes == ("fair",) and grid.seeds == (0,)
    assert grid.classifier_steps == PRESETS["cpu"].classifier_steps
    assert seen["fair_dir"] == tmp_path / "fair"
    assert grid.fair_n == PRESETS["cpu"].fair_n and grid.fair_seeds == (0,)
    run("experiment", "--preset", "cpu", "--out", tmp_path / "exp", "--fair-n", "10,100", "--fair-seeds", "0,2",
        "--device", "cpu")
    assert seen["grid"].fair_n == (10, 100) and seen["grid"].fair_seeds == (0, 2)
    run("experiment", "--preset", "cpu", "--out", tmp_path / "exp", "--fair-seeds", "all", "--device", "cpu")
    assert seen["grid"].fair_seeds is None and seen["grid"].fair_critic_augment == "none"
    run("experiment", "--preset", "cpu", "--out", tmp_path / "exp", "--fair-critic-augment", "translation,cutout",
        "--device", "cpu")
    assert seen["grid"].fair_critic_augment == "translation,cutout"
    assert seen["grid"].fair_gan_steps == 5000 and seen["grid"].fair_widths == (32, 16)
    run("experiment", "--preset", "full", "--out", tmp_path / "exp", "--device", "cpu")
    assert seen["grid"].fair_gan_steps == 10000 and seen["grid"].fair_widths == (128, 64)
    run("experiment", "--preset", "cpu", "--out", tmp_path / "exp", "--fair-gan-steps", "8000",
        "--fair-widths", "64,32", "--device", "cpu")
    assert seen["grid"].fair_gan_steps == 8000 and seen["grid"].fair_widths == (64, 32)


def test_longtail_experiment_overrides_reach_the_grid(tmp_path, monkeypatch):
    import augment.downstream.runner as runner
    from augment.downstream.presets import PRESETS

    seen = {}

    def fake_run_grid(grid, out, device, **kwargs):
        seen["grid"] = grid
        return out / "results.csv"

    monkeypatch.setattr(runner, "run_grid", fake_run_grid)
    run("experiment", "--preset", "longtail-cpu", "--out", tmp_path / "exp", "--device", "cpu")
    preset = PRESETS["longtail-cpu"].grid
    assert seen["grid"] == preset and preset.synthetic_ratio == 1.0 and preset.top_up_target is None
    run("experiment", "--preset", "longtail-cpu", "--out", tmp_path / "exp", "--imbalance-ratios", "100",
        "--methods", "erm,classical+synthetic+logit-adjusted", "--logit-adjust-tau", "1", "--synthetic-ratio", "4",
        "--top-up-target", "1000", "--fair-real-sampling", "uniform", "--fair-recipe", "cpu", "--device", "cpu")
    grid = seen["grid"]
    assert grid.imbalance_ratios == (100.0,) and grid.methods == ("erm", "classical+synthetic+logit-adjusted")
    assert grid.logit_adjust_tau == 1.0 and grid.synthetic_ratio == 4.0 and grid.top_up_target == 1000
    assert grid.fair_real_sampling == "uniform" and grid.seeds == preset.seeds
    assert grid.fair_recipe == "cpu" and preset.fair_recipe == "reference"


def test_a_preset_sets_the_recipe_and_given_options_win(tmp_path, idx_dir):
    result = run("train", "--run-dir", tmp_path / "r", "--dry-run", "--preset", "cpu", "--d-width", "24",
                 "--data-dir", idx_dir, "--dataset", "idx", "--json")
    assert result.exit_code == 0, result.output
    cfg = json.loads(result.output)
    assert (cfg["model"]["g_width"], cfg["model"]["d_width"], cfg["n_critic"], cfg["critic_lr"]) == (32, 24, 2, 3e-4)
    assert cfg["keep_best"] == "agreement" and cfg["model"]["num_classes"] is None
    result = run("train", "--run-dir", tmp_path / "r", "--resume", "--preset", "cpu")
    assert result.exit_code == 2 and "--preset starts a new run" in result.output


def test_dump_and_sample_make_images_at_the_generators_training_size_unless_told(tmp_path, generator):
    from PIL import Image

    from augment.checkpoint import save_generator
    from augment.provenance import DataSignature

    small = tmp_path / "small.safetensors"
    save_generator(small, generator, DataSignature("npz", tuple(str(c) for c in range(10)), (8, 8)).metadata())
    result = run("dump", small, "-o", tmp_path / "d", "-n", 10, "--test-samples", 0, "-f", "npz", "-q")
    assert result.exit_code == 0 and "(npz, 8x8)" in result.output, result.output
    result = run("dump", small, "-o", tmp_path / "w", "-n", 10, "--test-samples", 0, "-f", "npz", "-q",
                 "--image-size", "6x10", "--json")
    assert result.exit_code == 0 and json.loads(result.output)["image_size"] == [6, 10], result.output
    assert run("sample", small, "-o", tmp_path / "g.png", "--per-class", 2).exit_code == 0
    assert Image.open(tmp_path / "g.png").size == (2 + 2 * (8 + 2), 2 + 10 * (8 + 2))  # make_grid pads by 2
    assert run("sample", small, "-o", tmp_path / "h.png", "--per-class", 2, "--image-size", "12").exit_code == 0
    assert Image.open(tmp_path / "h.png").size == (2 + 2 * 14, 2 + 10 * 14)


@pytest.mark.parametrize("value, words", [("0", "each 1..4096"), ("8x", "not N or HxW"), ("2x3x4", "got [2, 3, 4]")])
def test_a_bad_image_size_is_a_usage_error(tmp_path, value, words):
    result = run("dump", "-o", tmp_path / "d", "-n", 10, "--image-size", value)
    _assert_clean_error(result, 2, "--image-size", words)
    assert not (tmp_path / "d").exists()
