"""The CWGAN-GP training loop: read ``_loop`` top to bottom, one comment per phase.

One generator step ("step", ``Trainer.step``) is ``n_critic`` critic updates and one generator update
(``augment.training.steps``). A run ends after ``max_steps`` (else ``epochs``) or, when
``max_minutes`` is set, at the first step that ends past that much training wall time (counted
across resumes); either way it writes its last log row, grid and checkpoint. ``init_generator``
starts the generator from a trained generator file (fine-tuning) and ``critic_warmup`` lets the
fresh critic train alone for that many steps first. With ``eval_every``, a ``monitor`` (built above
training, e.g. ``augment.evaluation.monitor.build_monitor``) scores the generator and its weight
average every that many steps, and ``keep_best`` exports the best-scoring weights. SIGINT (Ctrl-C)
or SIGTERM stops a single-process run after the step under way, with a checkpoint of it
(``TrainingInterrupted``); ``resume`` continues it, bitwise. What a run writes:
``augment.training.run_directory``.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from dataclasses import replace
from pathlib import Path
from typing import Callable, Iterator, Optional

import torch
from torch import nn

from augment import checkpoint as ckpt
from augment import torchrun
from augment.config import TrainConfig
from augment.device import resolve_device
from augment.errors import ConfigError, TrainingError
from augment.fileio import PathLike
from augment.training.real_data import load_training_data
from augment.training.run_directory import BestGenerator, Clock, RunDirectory
from augment.training.trainer import Trainer

# Settings a resumed run may change: its length, and how (not what) it computes, logs and evaluates.
RESUME_OVERRIDABLE = ("epochs", "max_steps", "max_minutes", "step_impl", "compile_step", "device", "log_every",
                      "sample_every", "checkpoint_every", "tensorboard", "eval_every", "eval_per_class",
                      "eval_classifier", "keep_best")
# In-training evaluation: {weights name ('live', 'average'): generator} -> {weights name: {metric: value}}
Monitor = Callable[[dict[str, nn.Module]], dict[str, dict[str, float]]]


# ---------------------------------------------------------------------------------- the loop


def train(cfg: TrainConfig, run_dir: PathLike, progress: bool = True,
          device: Optional[torch.device | str] = None, monitor: Optional[Monitor] = None) -> Path:
    """Train a new run in ``run_dir``; returns the path of its generator file.

    Under torchrun (WORLD_SIZE > 1) every process calls this; see
    ``augment.training.data_parallel``.

    Args:
        cfg: the whole run (``TrainConfig``: model, data, subset, optimiser, length, logging);
            saved in the run directory and in every checkpoint.
        run_dir: the run directory, absent or empty (see the module docstring for its files).
        progress: show a progress bar (rank 0 only).
        device: a ``torch.device`` or a name ('cpu', 'cuda', 'cuda:N', 'auto') that overrides
            ``cfg.device``.
        monitor: the in-training evaluation that ``cfg.eval_every`` asks for (``Monitor``).

    Returns:
        ``run_dir/generator.safetensors`` (the weight average when ``cfg.ema_decay`` is set; the
        best evaluated weights with ``cfg.keep_best``).
    """
    return _run(cfg, Path(run_dir), None, progress, device, monitor)


def resumed_config(run_dir: PathLike, overrides: Optional[dict] = None) -> TrainConfig:
    """The config a resume of ``run_dir`` would use: the saved one, with the
    ``RESUME_OVERRIDABLE`` fields of ``overrides`` (e.g. ``max_steps`` to extend a run)."""
    cfg = ckpt.load_checkpoint(_last_checkpoint(Path(run_dir)))["train_config"]
    return with_overrides(cfg, overrides)


def resume(run_dir: PathLike, overrides: Optional[dict] = None, progress: bool = True,
           device: Optional[torch.device | str] = None, monitor: Optional[Monitor] = None) -> Path:
    """Continue ``run_dir`` from ``checkpoints/last.pt``; the result equals an uninterrupted
    run (bitwise on CPU), with any world size.

    Args:
        run_dir: a run directory with a checkpoint.
        overrides: ``{field: value}`` for fields in ``RESUME_OVERRIDABLE`` (e.g. a larger
            ``max_steps`` to extend a run); any other field is refused.
        progress: show a progress bar (rank 0 only).
        device: overrides the saved ``device`` (same device type: the noise state is per type).
        monitor: the in-training evaluation that the config's ``eval_every`` asks for.

    Returns:
        ``run_dir/generator.safetensors``.
    """
    run_dir = Path(run_dir)
    state = ckpt.load_checkpoint(_last_checkpoint(run_dir))
    cfg = with_overrides(state["train_config"], overrides)
    return _run(cfg, run_dir, state, progress, device, monitor)


def preflight(run_dir: PathLike, cfg: TrainConfig, resuming: bool = False) -> None:
    """The checks a run makes before it writes anything, for a launcher that starts it in other
    processes (``augment train --nproc``): a resume needs a checkpoint, a new run an unused run
    directory; both need their training data (``load_training_data``) and a new run its
    ``init_generator``. Raises the one-line error the run itself would."""
    run_dir = Path(run_dir)
    if resuming:
        _last_checkpoint(run_dir)
    else:
        _check_unused_run_dir(run_dir)
    load_training_data(cfg)
    if cfg.init_generator is not None and not resuming:
        ckpt.read_generator_file(cfg.init_generator)


def _check_unused_run_dir(run_dir: Path) -> None:
    if run_dir.exists() and not run_dir.is_dir():
        raise TrainingError(f"run directory {run_dir} is a file")
    if run_dir.exists() and any(run_dir.iterdir()):
        if (run_dir / "config.json").is_file() and not (run_dir / "checkpoints" / "last.pt").exists():
            raise TrainingError(f"run directory {run_dir} holds a run that stopped before its first checkpoint, "
                                f"so it cannot resume; delete the directory to start again, or choose another")
        raise TrainingError(f"run directory {run_dir} is not empty; resume it (--resume) or choose another")


def _last_checkpoint(run_dir: Path) -> Path:
    """``run_dir/checkpoints/last.pt``; a one-line ``TrainingError`` that says why when it is
    missing (no run there, or a run stopped before its first checkpoint)."""
    last = run_dir / "checkpoints" / "last.pt"
    if last.exists():
        return last
    if (run_dir / "config.json").is_file():
        raise TrainingError(f"{run_dir} has no checkpoint to resume: its run stopped before the first one "
                            f"(see --checkpoint-every); delete the directory to start the run again")
    raise TrainingError(f"{run_dir} holds no run to resume (no {last.relative_to(run_dir)})")


def with_overrides(cfg: TrainConfig, overrides: Optional[dict]) -> TrainConfig:
    """``cfg`` with the ``RESUME_OVERRIDABLE`` fields of ``overrides``; others are refused."""
    overrides = overrides or {}
    refused = sorted(set(overrides) - set(RESUME_OVERRIDABLE))
    if refused:
        raise TrainingError(f"a resumed run cannot change {', '.join(refused)}; it may change "
                            f"{', '.join(RESUME_OVERRIDABLE)}")
    cfg = replace(cfg, **overrides)
    if "epochs" in overrides and cfg.max_steps is not None:
        raise TrainingError(f"this run's length is max_steps={cfg.max_steps}, so epochs has no effect; "
                            f"pass a larger max_steps (--max-steps) to extend it")
    return cfg


def _run(cfg: TrainConfig, run_dir: Path, state: Optional[dict], progress: bool,
         device: Optional[torch.device], monitor: Optional[Monitor]) -> Path:
    if not isinstance(cfg, TrainConfig):
        raise ConfigError(f"train takes a TrainConfig, got {type(cfg).__name__}")
    if (cfg.eval_every is None) != (monitor is None):
        raise ConfigError("eval_every and a monitor go together (augment.evaluation.monitor.build_monitor(cfg) "
                          "makes the monitor eval_every asks for)")
    device = resolve_device(device if device is not None else cfg.device)
    started_group = torchrun.launched_by_torchrun() and not torch.distributed.is_initialized()
    ctx = torchrun.init_from_env(device.type)
    try:
        return _loop(cfg, run_dir, state, progress, device, ctx, monitor)
    finally:
        if started_group:
            torchrun.shutdown()


def _loop(cfg: TrainConfig, run_dir: Path, state: Optional[dict], progress: bool, device: torch.device,
          ctx: torchrun.DistContext, monitor: Optional[Monitor]) -> Path:
    # the run: its state (new, or resumed from a checkpoint), its directory and log, its clock
    if state is None:
        _check_unused_run_dir(run_dir)
    torchrun.barrier(ctx)  # every rank has checked before rank 0 writes anything
    trainer = Trainer(cfg, device, ctx)
    cfg = trainer.cfg  # num_classes resolved from the labels
    if state is not None:
        trainer.load_state_dict(state)
    elif cfg.init_generator is not None:
        trainer.start_generator_from(cfg.init_generator)
    run = RunDirectory(run_dir, cfg, trainer, state, ctx, progress)
    clock, best = Clock(cfg.max_minutes, state, device, ctx), BestGenerator.from_state(cfg.keep_best, state)
    if trainer.step_count == 0:
        run.save_samples()
    # a new run makes at least one step; a resumed one none if its time is already spent
    done = trainer.step_count >= trainer.total_steps or (state is not None and clock.out_of_time())
    stopped = None  # the signal that asked the run to stop (one process only), once one has
    with run, _stop_requests(enabled=not ctx.enabled) as stop_request:
        while not done and stopped is None:
            # one generator step: n_critic critic updates on real batches and fakes, one generator
            # update, the weight average's update (augment.training.steps)
            run.window.add(trainer.step())
            step = trainer.step_count
            # stop at the last step or past the time budget; a signal stops after this step's checkpoint
            done = step >= trainer.total_steps or clock.out_of_time()
            stopped = None if done else stop_request()
            # evaluate the generator and its average with a classifier of the data; keep the best
            evaluate = monitor is not None and (step % cfg.eval_every == 0 or done)
            scores = monitor(trainer.generators()) if evaluate else {}
            best.consider(scores, trainer)
            # a log row: the means of the step statistics since the last row, and the scores
            if step % cfg.log_every == 0 or done or evaluate:
                run.write_row(clock.elapsed(), scores, clock.left())
            run.bar.update(1)
            # a grid of fixed-noise samples
            if step % cfg.sample_every == 0 or done:
                run.save_samples()
            # a checkpoint that resumes the run bitwise
            if step % cfg.checkpoint_every == 0 or done or stopped is not None:
                run.save_checkpoint(clock.elapsed(), best)
    if stopped is not None:
        raise TrainingInterrupted(f"stopped by {signal.Signals(stopped).name} after step {trainer.step_count}; "
                                  f"checkpoint saved, continue with --resume (run directory {run_dir})")
    # the generator file: the weights the run samples with, or the best evaluated ones
    generator_path = run.export(best)
    torchrun.barrier(ctx)
    return generator_path


class TrainingInterrupted(TrainingError):
    """The run was asked to stop (SIGINT, SIGTERM) and stopped after a checkpoint of its last step."""


@contextlib.contextmanager
def _stop_requests(enabled: bool) -> Iterator[Callable[[], Optional[int]]]:
    """Within the block, SIGINT (Ctrl-C) and SIGTERM ask the loop to stop after the current step
    instead of interrupting it midway, so that it can save a consistent checkpoint; a second
    signal interrupts at once (KeyboardInterrupt). Yields a function giving the signal number
    asked with, or None. Only a single process's main thread installs handlers (under torchrun
    the launcher owns signals); elsewhere, and when ``enabled`` is False, nothing changes."""
    asked: list[int] = []
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield lambda: None
        return
    # a signal the process ignores (e.g. SIGINT of a background job) stays ignored
    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)
                if signal.getsignal(s) is not signal.SIG_IGN}

    def restore() -> None:
        for s, handler in previous.items():
            if handler is not None:  # None: installed outside Python, cannot be put back
                signal.signal(s, handler)

    def ask(signum: int, frame) -> None:
        if asked:
            restore()
            raise KeyboardInterrupt
        asked.append(signum)

    for s in previous:
        signal.signal(s, ask)
    try:
        yield lambda: asked[0] if asked else None
    finally:
        restore()
