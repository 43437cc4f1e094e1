import dataclasses
import json
import os
import re
import signal

import numpy as np
import pytest
import torch

from augment.checkpoint import generator_trained_on, load_checkpoint, load_generator, read_generator_file
from augment.config import TrainConfig
from augment.errors import CheckpointError, ConfigError, TrainingError
from augment.provenance import DataSignature
from augment.synthetic.dataset import SyntheticMNIST
from augment.training.loop import TrainingInterrupted, resume, train
from augment.training.trainer import Trainer
from tests.conftest import bar_digits


def test_run_directory_holds_everything(tmp_path, tiny_train_config):
    run = tmp_path / "run"
    gen_path = train(tiny_train_config, run, progress=False)
    names = {p.relative_to(run).as_posix() for p in run.rglob("*")}
    for expected in ("config.json", "metrics.jsonl", "checkpoints/last.pt", "generator.safetensors",
                     "samples/step_0000000.png", "samples/step_0000004.png", "samples.gif", "losses.png"):
        assert expected in names
    assert not any(n.endswith(".tmp") for n in names)
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [2, 4]
    assert {"loss_d", "loss_g", "gp", "wasserstein", "time_s", "epoch"} <= set(rows[0])
    assert TrainConfig.from_dict(json.loads((run / "config.json").read_text())) == tiny_train_config
    assert load_generator(gen_path).config == tiny_train_config.model
    assert load_checkpoint(run / "checkpoints" / "last.pt")["step"] == 4


def test_a_run_records_its_datas_kind_size_and_channels_and_its_images_come_out_at_that_size(
        tmp_path, tiny_train_config):
    """A run on 8x8 digits (an npz, sklearn's size): its checkpoint and generator file say so, and the
    file's PIL items are 8x8, the size of the set they augment."""
    images = torch.nn.functional.interpolate(bar_digits(80)[0][:, None].float(), size=(8, 8))[:, 0].to(torch.uint8)
    np.savez(tmp_path / "digits.npz", x=images.numpy(), y=bar_digits(80)[1].numpy().astype(np.int64))
    cfg = dataclasses.replace(tiny_train_config, data_dir=str(tmp_path / "digits.npz"), dataset="npz", max_steps=2)
    generator = train(cfg, tmp_path / "run", progress=False)
    data = DataSignature("npz", tuple(str(c) for c in range(10)), (8, 8), 1)
    assert generator_trained_on(generator) == generator_trained_on(tmp_path / "run" / "checkpoints" / "last.pt") == data
    assert SyntheticMNIST(generator, 3, output="pil")[0][0].size == (8, 8)


def test_nothing_written_to_the_working_directory(tmp_path, tiny_train_config, monkeypatch):
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    train(tiny_train_config, tmp_path / "run", progress=False)
    assert list(cwd.iterdir()) == []


def _final_state(run):
    return load_checkpoint(run / "checkpoints" / "last.pt")


@pytest.mark.parametrize("real_batches, critic_augment, ema_decay, step_impl", [
    ("fresh", "none", None, "auto"), ("shared", "none", None, "auto"), ("fresh", "translation,cutout", None, "auto"),
    ("fresh", "none", 0.9, "auto"), ("fresh", "translation,cutout", 0.9, "fast")])
@pytest.mark.filterwarnings("ignore::augment.training.steps.FastStepFallback")
def test_resume_is_bitwise_identical_to_an_uninterrupted_run(tmp_path, tiny_train_config, real_batches,
                                                             critic_augment, ema_decay, step_impl):
    cfg = dataclasses.replace(tiny_train_config, max_steps=6, checkpoint_every=3, real_batches=real_batches,
                              critic_augment=critic_augment, ema_decay=ema_decay, step_impl=step_impl)
    train(cfg, tmp_path / "straight", progress=False)
    train(dataclasses.replace(cfg, max_steps=3), tmp_path / "split", progress=False)
    resume(tmp_path / "split", {"max_steps": 6}, progress=False)
    a, b = _final_state(tmp_path / "straight"), _final_state(tmp_path / "split")
    assert a["step"] == b["step"] == 6
    keys = ("generator", "critic") + (("generator_ema",) if ema_decay else ())
    assert ("generator_ema" in a) == ("generator_ema" in b) == bool(ema_decay)
    for key in keys:
        for name, tensor in a[key].items():
            assert torch.equal(tensor, b[key][name]), f"{key}.{name}"
    for key in ("opt_g", "opt_d"):
        for idx, st in a[key]["state"].items():
            for name, tensor in st.items():
                assert torch.equal(tensor, b[key]["state"][idx][name]), f"{key}.{idx}.{name}"
    assert torch.equal(a["rng"]["noise"], b["rng"]["noise"])
    steps = [json.loads(x)["step"] for x in (tmp_path / "split" / "metrics.jsonl").read_text().splitlines()]
    assert steps == [2, 3, 4, 6]  # the first command ended at step 3 and logged it


def test_resume_drops_log_rows_past_the_checkpoint(tmp_path, tiny_train_config):
    cfg = dataclasses.replace(tiny_train_config, max_steps=4, checkpoint_every=2)
    run = tmp_path / "run"
    train(dataclasses.replace(cfg, max_steps=2), run, progress=False)
    with open(run / "metrics.jsonl", "a") as f:  # as if killed after logging step 3
        f.write(json.dumps({"step": 3}) + "\n" + '{"step": 4, "trunc')
    resume(run, {"max_steps": 4}, progress=False)
    steps = [json.loads(x)["step"] for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == [2, 4]


def test_crash_resume_logs_the_same_means_as_an_uninterrupted_run(tmp_path, tiny_train_config, monkeypatch):
    # checkpoints every 3 steps, log rows every 4: a run killed in step 4 restarts from the
    # step-3 checkpoint and must still average steps 1-4 into its step-4 row
    cfg = dataclasses.replace(tiny_train_config, max_steps=8, log_every=4, checkpoint_every=3)
    train(cfg, tmp_path / "straight", progress=False)
    crashed = tmp_path / "crashed"
    real_step = Trainer.step

    def dying_step(self):
        if self.step_count == 3:
            raise KeyboardInterrupt
        return real_step(self)

    with monkeypatch.context() as m:
        m.setattr(Trainer, "step", dying_step)
        with pytest.raises(KeyboardInterrupt):
            train(cfg, crashed, progress=False)
    assert not (crashed / "metrics.jsonl").exists()
    resume(crashed, {}, progress=False)

    def rows(run):
        return [{k: v for k, v in json.loads(x).items() if k != "time_s"}
                for x in (run / "metrics.jsonl").read_text().splitlines()]

    assert [r["step"] for r in rows(crashed)] == [4, 8]
    assert rows(crashed) == rows(tmp_path / "straight")  # bitwise on the CPU


def test_max_minutes_stops_at_the_first_step_past_the_budget(tmp_path, tiny_train_config):
    cfg = dataclasses.replace(tiny_train_config, max_steps=50, checkpoint_every=100, log_every=100,
                              max_minutes=1e-9)
    run = tmp_path / "run"
    train(cfg, run, progress=False)  # a new run always makes one step
    state = load_checkpoint(run / "checkpoints" / "last.pt")
    assert state["step"] == 1 and state["elapsed"] > 0
    assert [json.loads(x)["step"] for x in (run / "metrics.jsonl").read_text().splitlines()] == [1]
    assert (run / "samples" / "step_0000001.png").exists()
    resume(run, {"max_minutes": 1e-9}, progress=False)  # budget already spent: no step
    assert load_checkpoint(run / "checkpoints" / "last.pt")["step"] == 1
    resume(run, {"max_minutes": None, "max_steps": 3}, progress=False)
    assert load_checkpoint(run / "checkpoints" / "last.pt")["step"] == 3


def test_the_progress_bar_shows_the_time_budget_left_only_under_max_minutes(tmp_path, tiny_train_config, capsys):
    cfg = dataclasses.replace(tiny_train_config, max_steps=2, log_every=1, max_minutes=90)
    train(cfg, tmp_path / "timed", progress=True)
    bar = capsys.readouterr().err
    assert re.search(r"stops in=1:2\d:\d\d", bar)  # 90 minutes less the seconds of two tiny steps
    train(dataclasses.replace(cfg, max_minutes=None), tmp_path / "untimed", progress=True)
    assert "stops in" not in capsys.readouterr().err


def test_elapsed_time_carries_across_resumes(tmp_path, tiny_train_config):
    from augment.checkpoint import save_checkpoint

    cfg = dataclasses.replace(tiny_train_config, max_steps=1, checkpoint_every=100, log_every=100)
    run = tmp_path / "run"
    train(cfg, run, progress=False)
    path = run / "checkpoints" / "last.pt"
    state = torch.load(path, weights_only=True)
    state["elapsed"] = 3600.0  # as if the first session had trained for an hour
    save_checkpoint(path, {k: v for k, v in state.items() if k not in ("format", "format_version")})
    resume(run, {"max_minutes": 30, "max_steps": 5}, progress=False)  # 60 of 30 minutes spent
    assert load_checkpoint(path)["step"] == 1
    resume(run, {"max_minutes": None, "max_steps": 2}, progress=False)
    after = load_checkpoint(path)
    assert after["step"] == 2 and 3600.0 <= after["elapsed"] < 3600.0 + 600


def test_non_empty_run_directory_is_refused(tmp_path, tiny_train_config):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "x").write_text("keep me")
    with pytest.raises(TrainingError, match="not empty"):
        train(tiny_train_config, tmp_path / "run", progress=False)
    assert [p.name for p in (tmp_path / "run").iterdir()] == ["x"]


def test_resume_without_checkpoint_and_bad_overrides(tmp_path, tiny_train_config):
    with pytest.raises(TrainingError, match="holds no run to resume"):
        resume(tmp_path / "nothing", progress=False)
    assert not (tmp_path / "nothing").exists()
    train(tiny_train_config, tmp_path / "run", progress=False)
    with pytest.raises(TrainingError, match="cannot change lr"):
        resume(tmp_path / "run", {"lr": 1.0}, progress=False)


def test_resume_refuses_ineffective_epochs_and_another_device_type(tmp_path, tiny_train_config):
    run = tmp_path / "run"
    train(dataclasses.replace(tiny_train_config, max_steps=2), run, progress=False)
    before = (run / "metrics.jsonl").read_text()
    with pytest.raises(TrainingError, match="max_steps=2, so epochs has no effect"):
        resume(run, {"epochs": 500}, progress=False)
    assert (run / "metrics.jsonl").read_text() == before
    resume(run, {"max_steps": 2}, progress=False)  # a finished run resumes as a no-op (rerun after a crash)
    assert load_checkpoint(run / "checkpoints" / "last.pt")["step"] == 2
    state = load_checkpoint(run / "checkpoints" / "last.pt")
    state["rng"]["noise"] = torch.zeros(16, dtype=torch.uint8)  # the size of a CUDA generator's state
    with pytest.raises(CheckpointError, match="trained on a CUDA device"):
        Trainer(tiny_train_config).load_state_dict(state)
    state = load_checkpoint(run / "checkpoints" / "last.pt")
    state["critic"].popitem()
    with pytest.raises(CheckpointError, match="does not fit"):
        Trainer(tiny_train_config).load_state_dict(state)


def _params(module_state: dict) -> dict:
    return {k: v for k, v in module_state.items() if "running_" not in k and "num_batches" not in k}


def test_init_generator_starts_from_the_file_and_resume_does_not_need_it(tmp_path, tiny_train_config,
                                                                         tiny_model_config):
    from augment.checkpoint import save_generator
    from augment.gan.models import Generator

    with torch.random.fork_rng():
        torch.manual_seed(123)
        start = Generator(tiny_model_config)
    init = tmp_path / "init.safetensors"
    save_generator(init, start)
    cfg = dataclasses.replace(tiny_train_config, init_generator=str(init), critic_warmup=2, max_steps=2,
                              ema_decay=0.99)
    train(cfg, tmp_path / "run", progress=False)
    state = _final_state(tmp_path / "run")
    for key in ("generator", "generator_ema"):
        for k, v in _params(start.state_dict()).items():
            assert torch.equal(state[key][k], v), f"{key}.{k}"
    init.unlink()  # the checkpoint holds the weights: a resume never reads the file again
    resume(tmp_path / "run", {"max_steps": 3}, progress=False)
    assert _final_state(tmp_path / "run")["step"] == 3


def test_init_generator_of_another_model_is_refused_before_anything_is_written(
        tmp_path, tiny_train_config, tiny_model_config):
    from augment.checkpoint import save_generator
    from augment.gan.models import Generator

    other = tmp_path / "other.safetensors"
    save_generator(other, Generator(dataclasses.replace(tiny_model_config, g_width=4)))
    cfg = dataclasses.replace(tiny_train_config, init_generator=str(other))
    with pytest.raises(TrainingError, match=r"another model config: g_width=4 \(this run: 8\)"):
        train(cfg, tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()
    missing = dataclasses.replace(tiny_train_config, init_generator=str(tmp_path / "nope.safetensors"))
    with pytest.raises(CheckpointError, match="not found"):
        train(missing, tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()
    # the critic's width is not the generator's business
    wide_critic = dataclasses.replace(tiny_train_config, init_generator=str(other), max_steps=1,
                                      model=dataclasses.replace(tiny_model_config, g_width=4, d_width=16))
    train(wide_critic, tmp_path / "run", progress=False)


def test_a_run_stopped_before_its_first_checkpoint_says_how_to_start_again(tmp_path, tiny_train_config):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(tiny_train_config.to_json())  # what a run writes first
    with pytest.raises(TrainingError, match="stopped before its first checkpoint.*delete the directory"):
        train(tiny_train_config, run, progress=False)
    with pytest.raises(TrainingError, match="no checkpoint to resume.*delete the directory"):
        resume(run, progress=False)
    assert [p.name for p in run.iterdir()] == ["config.json"]


@pytest.fixture
def interruptible():
    """SIGINT raising KeyboardInterrupt, as in a terminal (a background job, e.g. a CI runner,
    may start with SIGINT ignored, which training leaves ignored); restored afterwards."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_stops_the_run_after_a_checkpointed_step_and_resume_finishes_it(
        tmp_path, tiny_train_config, monkeypatch, signum, interruptible):
    """Ctrl-C (SIGINT) or SIGTERM: the step under way completes, a checkpoint of it is saved,
    and resuming gives bitwise the uninterrupted run, log rows included."""
    cfg = dataclasses.replace(tiny_train_config, max_steps=6, checkpoint_every=100)
    train(cfg, tmp_path / "straight", progress=False)
    full_step = Trainer.step
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}

    def signalled_step(self):
        stats = full_step(self)
        if self.step_count == 3:
            os.kill(os.getpid(), signum)  # arrives while the loop is between steps' work
        return stats

    monkeypatch.setattr(Trainer, "step", signalled_step)
    with pytest.raises(TrainingInterrupted, match=f"stopped by {signum.name} after step 3; checkpoint saved"):
        train(cfg, tmp_path / "split", progress=False)
    assert {s: signal.getsignal(s) for s in before} == before  # handlers restored
    assert load_checkpoint(tmp_path / "split" / "checkpoints" / "last.pt")["step"] == 3
    assert not (tmp_path / "split" / "generator.safetensors").exists()  # a stopped run is not finished
    monkeypatch.setattr(Trainer, "step", full_step)
    resume(tmp_path / "split", progress=False)
    a, b = _final_state(tmp_path / "straight"), _final_state(tmp_path / "split")
    for key in ("generator", "critic"):
        for name, tensor in a[key].items():
            assert torch.equal(tensor, b[key][name]), f"{key}.{name}"
    straight, split = ([{k: v for k, v in json.loads(x).items() if k != "time_s"}
                        for x in (tmp_path / d / "metrics.jsonl").read_text().splitlines()]
                       for d in ("straight", "split"))
    assert straight == split


def test_a_second_signal_stops_the_run_at_once(tmp_path, tiny_train_config, monkeypatch, interruptible):
    full_step = Trainer.step

    def twice_signalled_step(self):
        stats = full_step(self)
        if self.step_count == 2:
            os.kill(os.getpid(), signal.SIGINT)
            os.kill(os.getpid(), signal.SIGINT)  # the impatient user: no waiting for the step's end
        return stats

    monkeypatch.setattr(Trainer, "step", twice_signalled_step)
    with pytest.raises(KeyboardInterrupt):
        train(dataclasses.replace(tiny_train_config, checkpoint_every=100), tmp_path / "run", progress=False)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    assert not (tmp_path / "run" / "checkpoints" / "last.pt").exists()


def test_an_ignored_signal_stays_ignored(tmp_path, tiny_train_config, monkeypatch):
    """A background job started with SIGINT ignored keeps it ignored while it trains."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    full_step = Trainer.step

    def signalled_step(self):
        os.kill(os.getpid(), signal.SIGINT)
        return full_step(self)

    monkeypatch.setattr(Trainer, "step", signalled_step)
    try:
        train(dataclasses.replace(tiny_train_config, max_steps=3), tmp_path / "run", progress=False)
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)
    assert (tmp_path / "run" / "generator.safetensors").exists()


def test_train_takes_a_device_name_and_refuses_what_is_not_a_config(tmp_path, tiny_train_config):
    generator = train(dataclasses.replace(tiny_train_config, max_steps=1), tmp_path / "run", progress=False,
                      device="cpu")
    assert generator.exists()
    with pytest.raises(ConfigError, match="takes a TrainConfig"):
        train(tiny_train_config.to_dict(), tmp_path / "other", progress=False)
    (tmp_path / "file").write_text("x")
    with pytest.raises(TrainingError, match="is a file"):
        train(tiny_train_config, tmp_path / "file", progress=False)


class ScriptedMonitor:
    """A monitor whose scores are a function of the step: the average is best at step 4 (of 6)."""

    def __init__(self, trainer_steps):
        self.steps, self.calls = trainer_steps, []

    def __call__(self, generators):
        step = len(self.calls) * 2 + 2  # called at steps 2, 4, 6 (eval_every=2)
        self.calls.append(sorted(generators))
        return {"live": {"agreement": 0.1 * step, "class_frechet": 10.0, "coverage": 0.5},
                "average": {"agreement": 0.9 if step == 4 else 0.2, "class_frechet": 9.0, "coverage": 0.6}}


def test_a_monitor_logs_its_scores_and_keep_best_exports_the_best_weights(tmp_path, tiny_train_config):
    cfg = dataclasses.replace(tiny_train_config, max_steps=6, checkpoint_every=4, ema_decay=0.9, eval_every=2,
                              keep_best="agreement", log_every=3)
    monitor = ScriptedMonitor(6)
    run = tmp_path / "run"
    path = train(cfg, run, progress=False, monitor=monitor)
    assert monitor.calls == [["average", "live"]] * 3
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [2, 3, 4, 6]  # log_every rows and evaluation rows
    scored = [r for r in rows if "live_agreement" in r]
    assert [r["step"] for r in scored] == [2, 4, 6] and scored[1]["average_agreement"] == 0.9
    assert {"live_class_frechet", "live_coverage", "average_coverage"} <= set(scored[0])
    best, last = load_generator(path), load_generator(run / "generator_last.safetensors")
    _, _, meta = read_generator_file(path)
    assert json.loads(meta["selected_by"]) == {"metric": "agreement", "score": 0.9, "at_step": 4}
    assert meta["step"] == "4" and meta["weights"] == "average"
    assert any(not torch.equal(a, b) for a, b in zip(best.state_dict().values(), last.state_dict().values()))


def test_keep_best_survives_a_resume(tmp_path, tiny_train_config):
    cfg = dataclasses.replace(tiny_train_config, max_steps=6, checkpoint_every=2, ema_decay=0.9, eval_every=2,
                              keep_best="agreement")
    whole = train(cfg, tmp_path / "whole", progress=False, monitor=ScriptedMonitor(6))
    train(dataclasses.replace(cfg, max_steps=4), tmp_path / "part", progress=False, monitor=ScriptedMonitor(4))
    resumed = resume(tmp_path / "part", {"max_steps": 6}, progress=False, monitor=ScriptedMonitor(6))
    for a, b in zip(load_generator(whole).state_dict().values(), load_generator(resumed).state_dict().values()):
        assert torch.equal(a, b)


def test_eval_every_needs_a_monitor(tmp_path, tiny_train_config):
    with pytest.raises(ConfigError, match="eval_every and a monitor go together"):
        train(dataclasses.replace(tiny_train_config, eval_every=2), tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()


def test_a_resume_that_changes_keep_best_chooses_again(tmp_path, tiny_train_config):
    from augment.training.run_directory import BestGenerator

    cfg = dataclasses.replace(tiny_train_config, max_steps=4, checkpoint_every=2, ema_decay=0.9, eval_every=2,
                              keep_best="agreement")
    train(cfg, tmp_path / "run", progress=False, monitor=ScriptedMonitor(4))
    state = load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")
    assert state["best"]["metric"] == "agreement" and BestGenerator.from_state("agreement", state).saved
    assert BestGenerator.from_state("class_frechet", state).saved is None
    assert BestGenerator.from_state(None, state).saved is None
