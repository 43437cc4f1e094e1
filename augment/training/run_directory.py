"""What a training run writes, and the bookkeeping behind it: ``RunDirectory`` (config, log rows,
TensorBoard, sample grids, checkpoints, the exported generator), ``StatsWindow`` (the step statistics
since the last log row), ``Clock`` (training wall time across resumes, the time budget) and
``BestGenerator`` (the best-scoring weights of the in-training evaluations). Rank 0 alone writes.

Run directory::

    config.json  metrics.jsonl  samples/step_NNNNNNN.png  samples.gif  losses.png
    checkpoints/last.pt  generator.safetensors  tensorboard/ (when tensorboard is installed)
    generator_last.safetensors (with keep_best: the last weights, beside the best ones)
"""

from __future__ import annotations

import copy
import math
import sys
import time
from pathlib import Path
from typing import Optional

import torch
from torchvision.utils import make_grid
from tqdm.auto import tqdm

from augment import checkpoint as ckpt
from augment import torchrun
from augment.config import TrainConfig
from augment.errors import TrainingError
from augment.fileio import append_jsonl, atomic_write_text, remove_stale_temp_files, truncate_jsonl
from augment.training.trainer import Trainer
from augment.visualize import class_grid, run_frames, save_gif, save_grid, save_loss_plot

SAMPLE_SEED_OFFSET = 1_000_003  # fixed-noise grid seed = cfg.seed + this
LOWER_IS_BETTER = ("class_frechet",)


class StatsWindow:
    """The per-step statistics since the last log row, averaged over steps and ranks when a row is
    written; kept in checkpoints, so a crash-resumed run logs the means of an uninterrupted one."""

    def __init__(self, state: Optional[dict], device: torch.device, ctx: torchrun.DistContext):
        self.ctx = ctx
        self.values: dict[str, list] = {k: list(v.to(device).unbind())
                                        for k, v in (state or {}).get("log_window", {}).items()}

    def add(self, stats: dict) -> None:
        for k, v in stats.items():
            self.values.setdefault(k, []).append(v)

    def means(self) -> dict:
        """The means (all ranks) since the last row, as floats; the window starts again."""
        keys = sorted(self.values)
        means = torch.stack([torch.stack(self.values[k]).float().mean() for k in keys])
        self.values.clear()
        return dict(zip(keys, torchrun.all_reduce_mean(means, self.ctx).tolist()))

    def pending(self) -> dict:
        """The window's values (all ranks' means), for a checkpoint."""
        return {k: torchrun.all_reduce_mean(torch.stack(v), self.ctx).cpu() for k, v in self.values.items()}


class Clock:
    """Training wall time in seconds, counted across resumes (the checkpoint's ``elapsed``), and
    the ``max_minutes`` budget, decided alike on every rank."""

    def __init__(self, max_minutes: Optional[float], state: Optional[dict], device: torch.device,
                 ctx: torchrun.DistContext):
        self.max_minutes, self.device, self.ctx = max_minutes, device, ctx
        self.before, self.started = float((state or {}).get("elapsed", 0.0)), time.time()

    def elapsed(self) -> float:
        return self.before + time.time() - self.started

    def left(self) -> Optional[float]:
        """Seconds left of the ``max_minutes`` budget (None without one)."""
        return None if self.max_minutes is None else max(0.0, 60.0 * self.max_minutes - self.elapsed())

    def out_of_time(self) -> bool:
        if self.max_minutes is None:
            return False
        late = self.elapsed() >= 60.0 * self.max_minutes
        if not self.ctx.enabled:
            return late
        flag = torch.tensor([float(late)], device=self.device)
        return bool(torchrun.all_reduce_mean(flag, self.ctx).item() > 0)


class BestGenerator:
    """The weights (live or average) that scored best by ``metric`` at an in-training evaluation
    (``TrainConfig.keep_best``), with the step and score; nothing when ``metric`` is None."""

    def __init__(self, metric: Optional[str], saved: Optional[dict] = None):
        self.metric, self.saved = metric, saved  # saved: {metric, score, step, weights, state_dict}

    @classmethod
    def from_state(cls, metric: Optional[str], state: Optional[dict]) -> "BestGenerator":
        """The best kept in a checkpoint's ``state``, unless it was chosen by another metric (a resume
        that changed ``keep_best``): then the choice starts again."""
        saved = (state or {}).get("best")
        return cls(metric, saved if saved is not None and saved.get("metric") == metric else None)

    def consider(self, scores: dict, trainer: Trainer) -> None:
        """Keep the best of ``scores`` ({weights name: {metric: value}}) if it beats the kept one."""
        if self.metric is None:
            return
        sign = -1.0 if self.metric in LOWER_IS_BETTER else 1.0
        for name, metrics in scores.items():
            score = metrics[self.metric]
            if math.isfinite(score) and (self.saved is None or sign * score > sign * self.saved["score"]):
                state = {k: v.detach().cpu().clone() for k, v in trainer.generators()[name].state_dict().items()}
                self.saved = {"metric": self.metric, "score": score, "step": trainer.step_count, "weights": name,
                              "state_dict": state}

    def state(self) -> Optional[dict]:
        return self.saved


class RunDirectory:
    """The files of one run (module docstring); ``writes`` is False on every rank but 0."""

    def __init__(self, path: Path, cfg: TrainConfig, trainer: Trainer, state: Optional[dict],
                 ctx: torchrun.DistContext, progress: bool):
        self.path, self.cfg, self.trainer, self.writes = path, cfg, trainer, ctx.is_main
        self.metrics, self.last = path / "metrics.jsonl", path / "checkpoints" / "last.pt"
        self.window = StatsWindow(state, trainer.device, ctx)
        self.tb = None
        if self.writes:
            path.mkdir(parents=True, exist_ok=True)
            remove_stale_temp_files(path)
            atomic_write_text(path / "config.json", cfg.to_json() + "\n")
            # drop log rows written after the checkpoint this run starts from
            truncate_jsonl(self.metrics, lambda row: row["step"] <= trainer.step_count)
            self.tb = _tensorboard_writer(path / "tensorboard") if cfg.tensorboard else None
        self.bar = tqdm(total=trainer.total_steps, initial=trainer.step_count, file=sys.stderr,
                        disable=not (progress and self.writes), unit="step", dynamic_ncols=True)
        self.latest_quality: dict = {}

    def __enter__(self) -> "RunDirectory":
        return self

    def __exit__(self, *exc) -> None:
        self.bar.close()
        if self.tb is not None:
            self.tb.close()

    def save_samples(self) -> None:
        """The fixed-noise grid of the generator the run samples with: samples/step_NNNNNNN.png."""
        if not self.writes:
            return
        t = self.trainer
        images = class_grid(t.sampling_generator, per_class=10, seed=self.cfg.seed + SAMPLE_SEED_OFFSET)
        save_grid(images, self.path / "samples" / f"step_{t.step_count:07d}.png", nrow=10)
        if self.tb is not None:
            self.tb.add_image("samples", make_grid(images, nrow=10, normalize=True, value_range=(-1, 1)), t.step_count)

    def write_row(self, elapsed: float, scores: dict, budget_left: Optional[float] = None) -> None:
        """A row of metrics.jsonl (and TensorBoard, and the progress bar): the step, epoch and training
        seconds, the means of the step statistics since the last row, and the evaluation ``scores``
        ({weights name: {metric: value}}, as ``name_metric`` keys). Non-finite statistics stop the run.
        ``budget_left``: seconds left of ``max_minutes``, shown on the bar (whose own time left counts
        to the last step of the epochs or ``max_steps``)."""
        t = self.trainer
        stats = self.window.means()
        bad = [k for k, v in stats.items() if not math.isfinite(v)]
        if bad:
            raise TrainingError(f"non-finite {', '.join(bad)} at step {t.step_count}; last good "
                                f"checkpoint kept at {self.last}")
        quality = {f"{name}_{k}": v if math.isfinite(v) else None  # (undefined: null, standard JSON)
                   for name, metrics in scores.items() for k, v in metrics.items()}
        epoch = t.step_count * t.batches_per_step / t.batches.per_epoch
        row = {"step": t.step_count, "epoch": round(epoch, 4), "time_s": round(elapsed, 3), **stats, **quality}
        if self.writes:
            append_jsonl(self.metrics, row)
        if self.tb is not None:
            for k, v in stats.items():
                self.tb.add_scalar(f"train/{k}", v, t.step_count)
            for k, v in quality.items():
                if v is not None:
                    self.tb.add_scalar(f"eval/{k}", v, t.step_count)
        self.latest_quality.update({k: v for k, v in quality.items() if k.endswith("agreement") and v is not None})
        self.bar.set_postfix({**{k: f"{v:.3f}" for k, v in stats.items()},
                              **{k: f"{v:.1%}" for k, v in self.latest_quality.items()},
                              **({} if budget_left is None else {"stops in": tqdm.format_interval(budget_left)})})

    def save_checkpoint(self, elapsed: float, best: BestGenerator) -> None:
        """checkpoints/last.pt: the trainer's state, training time, the open stats window and the
        best generator so far; never over a good checkpoint with non-finite weights."""
        t = self.trainer
        nets = list(t.generators().values()) + [t.D]
        if not bool(torch.stack([p.detach().isfinite().all() for net in nets for p in net.parameters()]).all()):
            raise TrainingError(f"non-finite weights at step {t.step_count}; last good checkpoint kept at {self.last}")
        pending = self.window.pending()
        if self.writes:
            extra = {} if best.state() is None else {"best": best.state()}
            ckpt.save_checkpoint(self.last, {**t.state_dict(), "elapsed": elapsed, "log_window": pending, **extra})

    def export(self, best: BestGenerator) -> Path:
        """generator.safetensors (the weights the run samples with, or with ``keep_best`` the best
        evaluated ones, and then generator_last.safetensors), samples.gif and losses.png."""
        t, generator_path = self.trainer, self.path / "generator.safetensors"
        if not self.writes:
            return generator_path
        last = {"step": t.step_count, **ckpt.weights_metadata(self.cfg.ema_decay, t.step_count),
                "class_names": t.class_names, **t.trained_on.metadata()}
        if best.state() is None:
            ckpt.save_generator(generator_path, t.sampling_generator, last)
        else:
            ckpt.save_generator(self.path / "generator_last.safetensors", t.sampling_generator, last)
            saved = best.state()
            chosen = copy.deepcopy(t.G if saved["weights"] == "live" else t.sampling_generator)
            chosen.load_state_dict(saved["state_dict"])
            weights = {"weights": "live"} if saved["weights"] == "live" else \
                ckpt.weights_metadata(self.cfg.ema_decay, saved["step"])
            ckpt.save_generator(generator_path, chosen, {
                "step": saved["step"], **weights, "class_names": t.class_names, **t.trained_on.metadata(),
                "selected_by": {"metric": best.metric, "score": saved["score"], "at_step": saved["step"]}})
        save_gif(run_frames(self.path), self.path / "samples.gif")
        if self.metrics.exists():
            save_loss_plot(self.metrics, self.path / "losses.png")
        return generator_path


def _tensorboard_writer(log_dir: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter  # optional extra: absent without tensorboard
    except ImportError:
        return None
    return SummaryWriter(str(log_dir))
