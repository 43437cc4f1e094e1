"""The CWGAN-GP training loop: n_critic critic steps per generator step, logs, samples, resume.

Read ``train`` top to bottom; the state and the step are ``augment.training.trainer.Trainer``. One
generator step ("step") is ``n_critic`` critic updates and one generator update. Real batches
are either ``fresh`` (a new batch per critic update, as the WGAN-GP paper) or ``shared`` (the
n_critic updates reuse one batch, as the reference loop); the batch order is a pure function
of (seed, batch counter), so resuming needs only the step.
A run ends after ``max_steps`` (else ``epochs``) or, when ``max_minutes`` is set, at the first
step that ends past that much training wall time (counted across resumes); either way it
writes its last log row, grid and checkpoint. ``init_generator`` starts the generator from a
trained generator file (fine-tuning) and ``critic_warmup`` lets the fresh critic train alone
for that many steps first. SIGINT (Ctrl-C) or SIGTERM stops a single-process run after the
step under way, with a checkpoint of it (``TrainingInterrupted``); ``resume`` continues it.

Run directory::

    config.json  metrics.jsonl  samples/step_NNNNNNN.png  samples.gif  losses.png
    checkpoints/last.pt  generator.safetensors  tensorboard/ (when tensorboard is installed)
"""

from __future__ import annotations

import contextlib
import math
import signal
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Callable, Iterator, Optional

import torch
from torchvision.utils import make_grid
from tqdm.auto import tqdm

from augment import checkpoint as ckpt
from augment import torchrun
from augment.config import TrainConfig
from augment.device import resolve_device
from augment.errors import ConfigError, TrainingError
from augment.fileio import PathLike, append_jsonl, atomic_write_text, remove_stale_temp_files, truncate_jsonl
from augment.training.real_data import load_training_data
from augment.training.trainer import Trainer
from augment.visualize import class_grid, run_frames, save_gif, save_grid, save_loss_plot

SAMPLE_SEED_OFFSET = 1_000_003  # fixed-noise grid seed = cfg.seed + this
# Settings a resumed run may change: its length, and how (not what) it computes and logs.
RESUME_OVERRIDABLE = ("epochs", "max_steps", "max_minutes", "step_impl", "compile_step", "device", "log_every",
                      "sample_every",
                      "checkpoint_every", "tensorboard")


# ---------------------------------------------------------------------------------- the loop


def train(cfg: TrainConfig, run_dir: PathLike, progress: bool = True,
          device: Optional[torch.device | str] = None) -> Path:
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

    Returns:
        ``run_dir/generator.safetensors`` (the weight average when ``cfg.ema_decay`` is set).
    """
    return _run(cfg, Path(run_dir), None, progress, device)


def resumed_config(run_dir: PathLike, overrides: Optional[dict] = None) -> TrainConfig:
    """The config a resume of ``run_dir`` would use: the saved one, with the
    ``RESUME_OVERRIDABLE`` fields of ``overrides`` (e.g. ``max_steps`` to extend a run)."""
    cfg = ckpt.load_checkpoint(_last_checkpoint(Path(run_dir)))["train_config"]
    return with_overrides(cfg, overrides)


def resume(run_dir: PathLike, overrides: Optional[dict] = None, progress: bool = True,
           device: Optional[torch.device | str] = None) -> Path:
    """Continue ``run_dir`` from ``checkpoints/last.pt``; the result equals an uninterrupted
    run (bitwise on CPU), with any world size.

    Args:
        run_dir: a run directory with a checkpoint.
        overrides: ``{field: value}`` for fields in ``RESUME_OVERRIDABLE`` (e.g. a larger
            ``max_steps`` to extend a run); any other field is refused.
        progress: show a progress bar (rank 0 only).
        device: overrides the saved ``device`` (same device type: the noise state is per type).

    Returns:
        ``run_dir/generator.safetensors``.
    """
    run_dir = Path(run_dir)
    state = ckpt.load_checkpoint(_last_checkpoint(run_dir))
    cfg = with_overrides(state["train_config"], overrides)
    return _run(cfg, run_dir, state, progress, device)


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
         device: Optional[torch.device]) -> Path:
    if not isinstance(cfg, TrainConfig):
        raise ConfigError(f"train takes a TrainConfig, got {type(cfg).__name__}")
    device = resolve_device(device if device is not None else cfg.device)
    started_group = torchrun.launched_by_torchrun() and not torch.distributed.is_initialized()
    ctx = torchrun.init_from_env(device.type)
    try:
        return _loop(cfg, run_dir, state, progress, device, ctx)
    finally:
        if started_group:
            torchrun.shutdown()


def _loop(cfg: TrainConfig, run_dir: Path, state: Optional[dict], progress: bool,
          device: torch.device, ctx: torchrun.DistContext) -> Path:
    if state is None:
        _check_unused_run_dir(run_dir)
    torchrun.barrier(ctx)  # every rank has checked before rank 0 writes anything
    last = run_dir / "checkpoints" / "last.pt"
    metrics_path = run_dir / "metrics.jsonl"
    trainer = Trainer(cfg, device, ctx)
    cfg = trainer.cfg  # num_classes resolved from the labels
    if state is not None:
        trainer.load_state_dict(state)
    elif cfg.init_generator is not None:
        trainer.start_generator_from(cfg.init_generator)
    main = ctx.is_main  # rank 0 alone logs and writes
    if main:
        run_dir.mkdir(parents=True, exist_ok=True)
        remove_stale_temp_files(run_dir)
        atomic_write_text(run_dir / "config.json", cfg.to_json() + "\n")
        # drop log rows written after the checkpoint this run starts from
        truncate_jsonl(metrics_path, lambda row: row["step"] <= trainer.step_count)
    tb = _tensorboard_writer(run_dir / "tensorboard") if cfg.tensorboard and main else None
    fixed_noise_seed = cfg.seed + SAMPLE_SEED_OFFSET

    def save_samples() -> None:
        images = class_grid(trainer.sampling_generator, per_class=10, seed=fixed_noise_seed)
        save_grid(images, run_dir / "samples" / f"step_{trainer.step_count:07d}.png", nrow=10)
        if tb is not None:
            tb.add_image("samples", make_grid(images, nrow=10, normalize=True, value_range=(-1, 1)),
                         trainer.step_count)

    bar = _progress_bar(trainer, progress and main)
    # per-step stats since the last log row; kept in checkpoints so a crash-resumed run logs
    # the same means as an uninterrupted one
    window: dict[str, list] = {k: list(v.to(device).unbind())
                               for k, v in (state or {}).get("log_window", {}).items()}
    started, elapsed_before = time.time(), float(state.get("elapsed", 0.0)) if state else 0.0
    if trainer.step_count == 0 and main:
        save_samples()

    def out_of_time() -> bool:  # every rank takes the same decision
        if cfg.max_minutes is None:
            return False
        late = elapsed_before + time.time() - started >= 60.0 * cfg.max_minutes
        if not ctx.enabled:
            return late
        flag = torch.tensor([float(late)], device=device)
        return bool(torchrun.all_reduce_mean(flag, ctx).item() > 0)

    # a new run makes at least one step; a resumed one none if its time is already spent
    done = trainer.step_count >= trainer.total_steps or (state is not None and out_of_time())
    stopped = None  # the signal that asked the run to stop (one process only), once one has
    with contextlib.ExitStack() as stack:
        stack.callback(bar.close)
        if tb is not None:
            stack.callback(tb.close)
        stop_request = stack.enter_context(_stop_requests(enabled=not ctx.enabled))
        while not done and stopped is None:
            stats = trainer.step()
            for k, v in stats.items():
                window.setdefault(k, []).append(v)
            step = trainer.step_count
            done = step >= trainer.total_steps or out_of_time()
            stopped = None if done else stop_request()  # a finished run finishes
            bar.update(1)
            if step % cfg.log_every == 0 or done:
                keys = sorted(window)
                means = torch.stack([torch.stack(window[k]).float().mean() for k in keys])
                row = dict(zip(keys, torchrun.all_reduce_mean(means, ctx).tolist()))
                window.clear()
                bad = [k for k, v in row.items() if not math.isfinite(v)]
                if bad:
                    raise TrainingError(f"non-finite {', '.join(bad)} at step {step}; last good "
                                        f"checkpoint kept at {last}")
                epoch = step * trainer.batches_per_step / trainer.batches.per_epoch
                row = {"step": step, "epoch": round(epoch, 4),
                       "time_s": round(elapsed_before + time.time() - started, 3), **row}
                if main:
                    append_jsonl(metrics_path, row)
                bar.set_postfix(d=f"{row['loss_d']:.3f}", g=f"{row['loss_g']:.3f}",
                                gp=f"{row['gp']:.3f}", w=f"{row['wasserstein']:.3f}")
                if tb is not None:
                    for k in ("loss_d", "loss_g", "gp", "wasserstein"):
                        tb.add_scalar(f"train/{k}", row[k], step)
            if main and (step % cfg.sample_every == 0 or done):
                save_samples()
            if step % cfg.checkpoint_every == 0 or done or stopped is not None:
                _check_finite_parameters(trainer, last)  # never overwrite a good checkpoint with NaNs
                pending = {k: torchrun.all_reduce_mean(torch.stack(v), ctx).cpu() for k, v in window.items()}
                if main:
                    elapsed = elapsed_before + time.time() - started
                    ckpt.save_checkpoint(last, {**trainer.state_dict(), "elapsed": elapsed,
                                                "log_window": pending})

    if stopped is not None:
        raise TrainingInterrupted(f"stopped by {signal.Signals(stopped).name} after step {trainer.step_count}; "
                                  f"checkpoint saved, continue with --resume (run directory {run_dir})")
    generator_path = run_dir / "generator.safetensors"
    if main:
        ckpt.save_generator(generator_path, trainer.sampling_generator,
                            {"step": trainer.step_count, **ckpt.weights_metadata(cfg.ema_decay, trainer.step_count),
                             "class_names": trainer.class_names})
        save_gif(run_frames(run_dir), run_dir / "samples.gif")
        if metrics_path.exists():
            save_loss_plot(metrics_path, run_dir / "losses.png")
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


def _check_finite_parameters(trainer: Trainer, last: Path) -> None:
    nets = (trainer.G, trainer.D) + (() if trainer.G_ema is None else (trainer.G_ema,))
    params = [p for net in nets for p in net.parameters()]
    if not bool(torch.stack([p.detach().isfinite().all() for p in params]).all()):
        raise TrainingError(f"non-finite weights at step {trainer.step_count}; last good checkpoint "
                            f"kept at {last}")


def _tensorboard_writer(log_dir: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(str(log_dir))


def _progress_bar(trainer: Trainer, enabled: bool):

    return tqdm(total=trainer.total_steps, initial=trainer.step_count, file=sys.stderr,
                disable=not enabled, unit="step", dynamic_ncols=True)
