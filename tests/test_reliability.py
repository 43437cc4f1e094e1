"""Crash safety and failure handling: SIGKILL mid-run and mid-write, non-finite losses, full disks."""

import errno
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from augment.checkpoint import load_checkpoint
from augment.errors import TrainingError
from augment.training.loop import train
from augment.training.trainer import Trainer
from augment.cli import main
from tests.conftest import script_env

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "tests" / "scripts" / "killable_train.py"
STEPS = 8


def _start(*args):
    return subprocess.Popen([sys.executable, str(SCRIPT), *map(str, args)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=script_env())


def _finish(idx_dir, run):
    p = _start(idx_dir, run, STEPS, "resume")
    out, err = p.communicate(timeout=300)
    assert p.returncode == 0, err[-2000:]


def _assert_bitwise_equal(run_a, run_b):
    a, b = load_checkpoint(run_a / "checkpoints" / "last.pt"), load_checkpoint(run_b / "checkpoints" / "last.pt")
    assert a["step"] == b["step"] == STEPS
    for key in ("generator", "critic"):
        for name, t in a[key].items():
            assert torch.equal(t, b[key][name]), f"{key}.{name}"


@pytest.fixture
def reference_run(tmp_path, idx_dir):
    run = tmp_path / "reference"
    p = _start(idx_dir, run, STEPS)
    _, err = p.communicate(timeout=300)
    assert p.returncode == 0, err[-2000:]
    return run


def test_kill_during_checkpoint_write_keeps_the_previous_one(tmp_path, idx_dir, reference_run):
    run = tmp_path / "killed"
    p = _start(idx_dir, run, STEPS, "hang-in-checkpoint-write", 4)
    assert p.stdout.readline().strip() == "WRITING"
    p.send_signal(signal.SIGKILL)
    p.wait(timeout=30)
    leftovers = list((run / "checkpoints").glob(".*.tmp"))
    assert leftovers, "the kill should have hit a half-written temp file"
    assert load_checkpoint(run / "checkpoints" / "last.pt")["step"] == 3  # the previous one, intact
    _finish(idx_dir, run)
    assert not list((run / "checkpoints").glob(".*.tmp"))
    _assert_bitwise_equal(run, reference_run)


@pytest.mark.parametrize("seed", [0, 1])
def test_kill_at_a_random_point_then_resume_reaches_the_same_weights(tmp_path, idx_dir, reference_run, seed):
    run = tmp_path / "killed"
    p = _start(idx_dir, run, STEPS)
    deadline = time.time() + 120
    while not (run / "checkpoints" / "last.pt").exists() and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(random.Random(seed).uniform(0.0, 1.5))
    p.send_signal(signal.SIGKILL)
    p.wait(timeout=30)
    assert load_checkpoint(run / "checkpoints" / "last.pt")["step"] >= 1
    _finish(idx_dir, run)
    _assert_bitwise_equal(run, reference_run)


def test_non_finite_weights_stop_training_and_keep_the_last_good_checkpoint(tmp_path, tiny_train_config,
                                                                            monkeypatch):
    import dataclasses

    cfg = dataclasses.replace(tiny_train_config, max_steps=6, checkpoint_every=2, log_every=3)
    step = Trainer.step

    def poisoned_step(self):
        stats = step(self)
        if self.step_count == 3:
            with torch.no_grad():
                next(self.G.parameters()).fill_(float("nan"))
        return stats

    monkeypatch.setattr(Trainer, "step", poisoned_step)
    with pytest.raises(TrainingError, match="non-finite .* at step 4") as info:
        train(cfg, tmp_path / "run", progress=False)
    assert "\n" not in str(info.value)
    state = load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")
    assert state["step"] == 2
    assert all(torch.isfinite(t).all() for t in state["generator"].values())


def test_non_finite_loss_is_reported_with_its_step(tmp_path, tiny_train_config, monkeypatch):
    import dataclasses

    cfg = dataclasses.replace(tiny_train_config, max_steps=4, checkpoint_every=4, log_every=2)
    step = Trainer.step

    def nan_loss_step(self):
        stats = step(self)
        if self.step_count == 2:
            stats["loss_g"] = torch.tensor(float("inf"))
        return stats

    monkeypatch.setattr(Trainer, "step", nan_loss_step)
    with pytest.raises(TrainingError, match="non-finite loss_g at step 2"):
        train(cfg, tmp_path / "run", progress=False)


def test_full_disk_gives_one_line_error_and_no_partial_file(tmp_path, idx_dir, monkeypatch):
    import augment.checkpoint as ckpt

    def no_space(obj, f, *args, **kwargs):  # f: the open temp file
        f.write(b"partial")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(ckpt.torch, "save", no_space)
    run = tmp_path / "run"
    result = CliRunner().invoke(main, [
        "train", "--run-dir", str(run), "--data-dir", str(idx_dir), "--dataset", "idx", "--max-steps", "2",
        "--batch-size", "16", "--n-critic", "1", "--z-dim", "8", "--g-width", "8", "--d-width", "8",
        "--embed-dim", "4", "--device", "cpu", "--no-tensorboard", "--quiet"])
    assert result.exit_code == 1, result.output
    assert result.output.strip().startswith("Error: writing ")  # the words of a dump's full disk
    assert result.output.strip().endswith("last.pt failed: No space left on device")
    assert len(result.output.strip().splitlines()) == 1, result.output
    assert not (run / "checkpoints").exists() or not any((run / "checkpoints").iterdir())


def test_killed_dump_leaves_nothing_that_looks_complete(tmp_path, tiny_model_config):
    from augment.checkpoint import save_generator
    from augment.gan.models import Generator

    save_generator(tmp_path / "g.safetensors", Generator(tiny_model_config))
    out = tmp_path / "dump"
    p = subprocess.Popen([sys.executable, "-m", "augment", "dump", str(tmp_path / "g.safetensors"), "-o", str(out),
                          "-n", "200000", "-f", "idx", "-f", "png", "--batch-size", "64", "--device", "cpu"],
                         cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         env=script_env())
    deadline = time.time() + 120
    while time.time() < deadline and not any(tmp_path.glob(".dump.*.tmp/png/train/*/*.png")):
        time.sleep(0.05)
    p.send_signal(signal.SIGKILL)
    p.wait(timeout=30)
    assert not out.exists()  # the half-written dump lives only in a hidden temp directory
    assert [d.name.startswith(".dump.") and d.name.endswith(".tmp")
            for d in tmp_path.iterdir() if d.name != "g.safetensors"] == [True]


def test_an_interrupted_experiment_keeps_its_finished_cells(tmp_path, idx_dir, tiny_model_config, monkeypatch):
    import augment.downstream.runner as exp
    from augment.checkpoint import save_generator
    from augment.downstream.balanced_grid import BalancedGridConfig
    from augment.downstream.grid import read_results
    from augment.gan.models import Generator

    save_generator(tmp_path / "g.safetensors", Generator(tiny_model_config))
    grid = BalancedGridConfig(n_per_class=(2,), ratios=(1.0,), regimes=("shipped",), seeds=(0,),
                              classifier_steps=2, classifier_batch=8, synthetic_only_per_class=3,
                              diversity_per_class=6)
    real_run_cell, calls = exp.run_cell, []

    def dies_on_third(cell, ctx):
        calls.append(cell)
        if len(calls) == 3:
            raise KeyboardInterrupt  # as if the process were stopped here
        return real_run_cell(cell, ctx)

    monkeypatch.setattr(exp, "run_cell", dies_on_third)
    kwargs = dict(data_dir=idx_dir, generator=tmp_path / "g.safetensors", progress=False,
                  log=lambda m: None, dataset="idx")
    with pytest.raises(KeyboardInterrupt):
        exp.run_grid(grid, tmp_path / "exp", torch.device("cpu"), **kwargs)
    assert len(read_results(tmp_path / "exp" / "results.csv")) == 2
    monkeypatch.setattr(exp, "run_cell", real_run_cell)
    exp.run_grid(grid, tmp_path / "exp", torch.device("cpu"), **kwargs)
    rows = read_results(tmp_path / "exp" / "results.csv")
    assert len(rows) == len(grid.cells()) and len({grid.key(r) for r in rows}) == len(rows)
