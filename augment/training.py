"""The CWGAN-GP training loop: n_critic critic steps per generator step, logs, samples, resume.

Read ``train`` top to bottom. One generator step ("step") is ``n_critic`` critic updates and
one generator update. Real batches are either ``fresh`` (a new batch per critic update, as the
WGAN-GP paper) or ``shared`` (the n_critic updates reuse one batch, as the reference loop);
the batch order is a pure function of (seed, batch counter), so resuming needs only the step.
A run ends after ``max_steps`` (else ``epochs``) or, when ``max_minutes`` is set, at the first
step that ends past that much training wall time (counted across resumes); either way it
writes its last log row, grid and checkpoint. ``init_generator`` starts the generator from a
trained generator file (fine-tuning) and ``critic_warmup`` lets the fresh critic train alone
for that many steps first.

Run directory::

    config.json  metrics.jsonl  samples/step_NNNNNNN.png  samples.gif  losses.png
    checkpoints/last.pt  generator.safetensors  tensorboard/ (when tensorboard is installed)
"""

from __future__ import annotations

import contextlib
import math
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Optional

import torch

from . import checkpoint as ckpt
from . import critic_augment, distributed, ema
from .config import TrainConfig
from .data import (BACKGROUND, check_labels, infer_num_classes, load_split, per_class_subset, resolve_data_dir,
                   to_model_images)
from .errors import AugmentError, CheckpointError
from .fileio import PathLike, append_jsonl, atomic_write_text, remove_stale_temp_files, truncate_jsonl
from .losses import critic_loss, generator_loss, gradient_penalty, wasserstein_estimate
from .models import Critic, Generator
from .visualize import class_grid, run_frames, save_gif, save_grid, save_loss_plot

SAMPLE_SEED_OFFSET = 1_000_003  # fixed-noise grid seed = cfg.seed + this
# Settings a resumed run may change: its length, and how (not what) it computes and logs.
RESUME_OVERRIDABLE = ("epochs", "max_steps", "max_minutes", "step_impl", "device", "log_every", "sample_every",
                      "checkpoint_every", "tensorboard")


class TrainingError(AugmentError):
    """Training cannot go on (non-finite loss, unusable run directory)."""


def resolve_device(name: str) -> torch.device:
    """'auto' -> cuda if available else cpu; otherwise the named device (checked). Under
    torchrun, 'auto' and 'cuda' mean this process's GPU, cuda:LOCAL_RANK."""
    name = distributed.local_device_name(name)
    try:
        device = torch.device(name)
    except RuntimeError:
        raise AugmentError(f"unknown device {name!r}; use 'auto', 'cpu', 'cuda' or 'cuda:N'") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise AugmentError(f"device {name!r} requested but CUDA is not available")
    return device


class RealBatches:
    """Batch ``k`` of a seeded, per-epoch shuffled, drop-last pass over ``n`` examples."""

    def __init__(self, n: int, batch_size: int, seed: int, device: torch.device):
        if n < batch_size:
            raise TrainingError(f"{n} training images are fewer than batch_size={batch_size}")
        self.n, self.batch_size, self.seed, self.device = n, batch_size, seed, device
        self.per_epoch = n // batch_size
        self._epoch, self._perm = -1, None

    def indices(self, k: int) -> torch.Tensor:
        """Indices (batch_size,) on the device of the k-th batch (k >= 0)."""
        epoch, pos = divmod(k, self.per_epoch)
        if epoch != self._epoch:
            gen = torch.Generator().manual_seed(self.seed * 1_000_033 + epoch)
            self._perm = torch.randperm(self.n, generator=gen).to(self.device)
            self._epoch = epoch
        return self._perm[pos * self.batch_size:(pos + 1) * self.batch_size]


class Trainer:
    """Models, optimizers, data and RNG of one run; ``step()`` is one generator step.

    With a distributed context of W ranks, each rank computes its 1/W share of every global
    batch and gradients are averaged (see ``augment.distributed``): the same function as one
    process on the whole batch.
    """

    def __init__(self, cfg: TrainConfig, device: Optional[torch.device] = None,
                 dist_ctx: distributed.DistContext = distributed.SINGLE):
        self.device = device or resolve_device(cfg.device)
        self.dist = dist_ctx
        self.local = distributed.local_slice(cfg.batch_size, dist_ctx)
        images, labels = load_split(resolve_data_dir(cfg.data_dir), "train", mnist=cfg.dataset == "mnist")
        if cfg.model.num_classes is None:
            cfg = replace(cfg, model=replace(cfg.model, num_classes=infer_num_classes(labels)))
        check_labels(labels, cfg.model.num_classes)
        if cfg.n_per_class is not None:
            keep = per_class_subset(labels, cfg.n_per_class, cfg.seed, cfg.model.num_classes)
            images, labels = images[keep], labels[keep]
        if images.dim() == 3 and cfg.model.channels != 1:
            raise TrainingError(f"grayscale data but model.channels={cfg.model.channels}")
        self.cfg = cfg
        self.real = to_model_images(images, self.device)  # (N, C, 32, 32) in [-1, 1]
        self.labels = labels.to(self.device)
        self.batches = RealBatches(len(self.labels), cfg.batch_size, cfg.seed, self.device)
        with torch.random.fork_rng(devices=[]):  # seeded init without touching global RNG state
            torch.default_generator.manual_seed(cfg.seed)  # (torch.manual_seed would seed CUDA too)
            self.G, self.D = Generator(cfg.model), Critic(cfg.model)
        if dist_ctx.enabled:
            distributed.use_global_batchnorm(self.G)
        self.G.to(self.device).train()
        self.D.to(self.device).train()
        # the weight average of G (eval mode, no gradients) when cfg.ema_decay is set
        self.G_ema = ema.averaged_copy(self.G) if cfg.ema_decay is not None else None
        betas = (cfg.beta1, cfg.beta2)
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=cfg.lr, betas=betas)
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=cfg.lr, betas=betas)
        self.noise = torch.Generator(device=self.device).manual_seed(cfg.seed + 1)  # z and alpha
        self.step_count = 0
        self.batches_per_step = 1 if cfg.real_batches == "shared" else cfg.n_critic
        steps_per_epoch = max(1, self.batches.per_epoch // self.batches_per_step)
        self.total_steps = cfg.max_steps or cfg.epochs * steps_per_epoch
        self.step_fn = self.eager_step
        if cfg.step_impl != "eager":
            from .fast import build_fast_step  # the same function, fewer kernels

            self.step_fn = build_fast_step(self, required=cfg.step_impl == "fast")

    # ----------------------------------------------------------------------------- one step

    def draw_noise(self) -> dict:
        """All randomness of one generator step, drawn up front in a fixed order from
        ``self.noise``: critic latents (n_critic, B, z_dim), interpolation weights
        (n_critic, B, 1, 1, 1) in [0, 1), generator latents (B, z_dim) and, with
        ``critic_augment``, transform parameters of the critic's real and fake inputs
        (n_critic, B, P) and of the generator update's fakes (B, P). Any step implementation
        that uses these computes the same function."""
        n, b, z_dim = self.cfg.n_critic, self.cfg.batch_size, self.cfg.model.z_dim
        z_critic = torch.randn(n, b, z_dim, generator=self.noise, device=self.device)
        alpha = torch.rand(n, b, 1, 1, 1, generator=self.noise, device=self.device)
        z_gen = torch.randn(b, z_dim, generator=self.noise, device=self.device)
        part = self.local  # this rank's share of the global batch (all of it on one process)
        noise = {"z_critic": z_critic[:, part], "alpha": alpha[:, part], "z_gen": z_gen[part]}
        if self.cfg.critic_augment != "none":  # drawn last: runs without it keep their stream
            policy, size = self.cfg.critic_augment, self.real.shape[-1]
            for key, shape in (("aug_real", (n, b)), ("aug_fake", (n, b)), ("aug_gen", (b,))):
                params = critic_augment.draw_params(policy, shape, size, self.noise, self.device)
                noise[key] = params[:, part] if len(shape) == 2 else params[part]
        return noise

    def real_indices(self) -> torch.Tensor:
        """Indices (n_critic, B_local) of the real batches of the current step (this rank's share)."""
        first = self.step_count * self.batches_per_step
        if self.batches_per_step == 1:
            idx = self.batches.indices(first).expand(self.cfg.n_critic, -1)
        else:
            idx = torch.stack([self.batches.indices(first + i) for i in range(self.cfg.n_critic)])
        return idx[:, self.local]

    def sync_gradients(self, module: torch.nn.Module) -> None:
        """Average ``module``'s gradients over ranks (no-op on one process); call after backward."""
        distributed.all_reduce_gradients(module, self.dist)

    def critic_view(self, images: torch.Tensor, params: Optional[torch.Tensor]) -> torch.Tensor:
        """``images`` (B, C, 32, 32) as the critic sees them: transformed by ``critic_augment``
        with ``params`` (B, P) from ``draw_noise``; unchanged when there are none."""
        return critic_augment.apply(self.cfg.critic_augment, images, params, BACKGROUND)

    def critic_step(self, real: torch.Tensor, labels: torch.Tensor, z: torch.Tensor,
                    alpha: torch.Tensor, aug_real: Optional[torch.Tensor] = None,
                    aug_fake: Optional[torch.Tensor] = None) -> dict:
        """One critic update on a real batch and fakes G(z | labels), each augmented by its
        ``aug_*`` parameters when given; the penalty interpolates the augmented pair."""
        with torch.no_grad():
            fake = self.critic_view(self.G(z, labels), aug_fake)
        real = self.critic_view(real, aug_real)
        real_scores, fake_scores = self.D(real, labels), self.D(fake, labels)
        gp = gradient_penalty(self.D, real, fake, labels, alpha)
        loss = critic_loss(real_scores, fake_scores) + self.cfg.gp_weight * gp
        self.opt_d.zero_grad(set_to_none=True)
        loss.backward()
        self.sync_gradients(self.D)
        self.opt_d.step()
        return {"loss_d": loss.detach(), "gp": gp.detach(),
                "wasserstein": wasserstein_estimate(real_scores, fake_scores).detach()}

    def generator_step(self, labels: torch.Tensor, z: torch.Tensor,
                       aug: Optional[torch.Tensor] = None) -> torch.Tensor:
        """One generator update on latents ``z`` for ``labels`` (fakes augmented by ``aug``
        when given); the critic is frozen."""
        self.D.requires_grad_(False)
        loss = generator_loss(self.D(self.critic_view(self.G(z, labels), aug), labels))
        self.opt_g.zero_grad(set_to_none=True)
        loss.backward()
        self.sync_gradients(self.G)
        self.opt_g.step()
        self.D.requires_grad_(True)
        return loss.detach()

    def critic_steps(self, noise: dict, indices: torch.Tensor) -> tuple[dict, torch.Tensor]:
        """The n_critic critic updates of one step, op by op, from its ``noise`` and real-batch
        ``indices`` (n_critic, B); returns the last update's stats and real labels (B,)."""
        for i in range(self.cfg.n_critic):
            real, labels = self.real[indices[i]], self.labels[indices[i]]
            stats = self.critic_step(real, labels, noise["z_critic"][i], noise["alpha"][i],
                                     critic_augment.row(noise.get("aug_real"), i),
                                     critic_augment.row(noise.get("aug_fake"), i))
        return stats, labels

    def eager_step(self) -> dict:
        """The reference computation, op by op: n_critic critic updates, one generator update
        (conditioned on the labels of the last real batch). Returns detached scalars."""
        noise = self.draw_noise()
        stats, labels = self.critic_steps(noise, self.real_indices())
        stats["loss_g"] = self.generator_step(labels, noise["z_gen"], noise.get("aug_gen"))
        return stats

    def critic_warmup_step(self) -> dict:
        """n_critic critic updates as in ``eager_step`` and no generator update (the first
        ``cfg.critic_warmup`` steps). Draws the same noise as a full step; ``loss_g`` is the
        generator's loss on its latents, measured without a gradient."""
        noise = self.draw_noise()
        stats, labels = self.critic_steps(noise, self.real_indices())
        with torch.no_grad():
            fake = self.critic_view(self.G(noise["z_gen"], labels), noise.get("aug_gen"))
            stats["loss_g"] = generator_loss(self.D(fake, labels))
        return stats

    def start_generator_from(self, path: PathLike) -> None:
        """Load the generator's weights and BatchNorm statistics from a generator file
        (``cfg.init_generator``) before the first step; its model config must be this run's
        (the critic's width may differ). The weight average, when kept, starts from the same
        weights."""
        model_cfg, state, _ = ckpt.read_generator_file(path)
        diff = ", ".join(f"{k}={v} (this run: {getattr(self.cfg.model, k)})" for k, v in vars(model_cfg).items()
                         if k != "d_width" and v != getattr(self.cfg.model, k))
        if diff:
            raise TrainingError(f"{path}: a generator of another model config: {diff}")
        self.G.load_state_dict(state, strict=True)
        if self.G_ema is not None:
            self.G_ema.load_state_dict(self.G.state_dict())

    def step(self) -> dict:
        """One generator step (n_critic critic updates + one generator update; critic updates
        only during the first ``cfg.critic_warmup`` steps), then the update of the weight
        average when there is one."""
        warming_up = self.step_count < self.cfg.critic_warmup
        stats = self.critic_warmup_step() if warming_up else self.step_fn()
        self.step_count += 1
        if self.G_ema is not None:
            ema.update_average(self.G_ema, self.G, ema.decay_at(self.step_count, self.cfg.ema_decay))
        return stats

    @property
    def sampling_generator(self) -> torch.nn.Module:
        """The generator that sample grids and the exported file use: the weight average when
        the run keeps one, else the live generator."""
        return self.G if self.G_ema is None else self.G_ema

    # ------------------------------------------------------------------------------ state

    def state_dict(self) -> dict:
        return {
            "train_config": self.cfg.to_dict(),
            "generator": self.G.state_dict(),
            "critic": self.D.state_dict(),
            "opt_g": self.opt_g.state_dict(),
            "opt_d": self.opt_d.state_dict(),
            "step": self.step_count,
            "rng": {"noise": self.noise.get_state()},
            **({} if self.G_ema is None else {"generator_ema": self.G_ema.state_dict()}),
        }

    def load_state_dict(self, state: dict) -> None:
        """Restore a ``state_dict()``; a checkpoint of other models or from another device type
        raises ``CheckpointError`` (the noise generator's state is specific to its device type)."""
        noise = state["rng"]["noise"].cpu()
        if noise.numel() != self.noise.get_state().numel():
            saved_on = "a CUDA device" if self.device.type == "cpu" else "another device type"
            raise CheckpointError(f"this checkpoint was trained on {saved_on}; resume it with the device "
                                  f"type it was trained on (not {self.device.type})")
        try:
            self.G.load_state_dict(state["generator"])
            self.D.load_state_dict(state["critic"])
            self.opt_g.load_state_dict(state["opt_g"])
            self.opt_d.load_state_dict(state["opt_d"])
            if self.G_ema is not None:
                self.G_ema.load_state_dict(state["generator_ema"])
        except (RuntimeError, ValueError, KeyError) as e:
            raise CheckpointError(f"checkpoint does not fit its models: {str(e).splitlines()[0]}") from None
        self.noise.set_state(noise)
        self.step_count = int(state["step"])


# ---------------------------------------------------------------------------------- the loop


def train(cfg: TrainConfig, run_dir: PathLike, progress: bool = True,
          device: Optional[torch.device] = None) -> Path:
    """Train a new run in ``run_dir`` (absent or empty); returns the exported generator file.

    Under torchrun (WORLD_SIZE > 1) every process calls this; see ``augment.distributed``.
    """
    return _run(cfg, Path(run_dir), None, progress, device)


def resumed_config(run_dir: PathLike, overrides: Optional[dict] = None) -> TrainConfig:
    """The config a resume of ``run_dir`` would use: the saved one, with the
    ``RESUME_OVERRIDABLE`` fields of ``overrides`` (e.g. ``max_steps`` to extend a run)."""
    cfg = ckpt.load_checkpoint(Path(run_dir) / "checkpoints" / "last.pt")["train_config"]
    return _with_overrides(cfg, overrides)


def resume(run_dir: PathLike, overrides: Optional[dict] = None, progress: bool = True,
           device: Optional[torch.device] = None) -> Path:
    """Continue ``run_dir`` from ``checkpoints/last.pt``; the result equals an uninterrupted
    run (bitwise on CPU), with any world size."""
    run_dir = Path(run_dir)
    state = ckpt.load_checkpoint(run_dir / "checkpoints" / "last.pt")
    cfg = _with_overrides(state["train_config"], overrides)
    return _run(cfg, run_dir, state, progress, device)


def _with_overrides(cfg: TrainConfig, overrides: Optional[dict]) -> TrainConfig:
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
    device = device or resolve_device(cfg.device)
    started_group = distributed.launched_by_torchrun() and not torch.distributed.is_initialized()
    ctx = distributed.init_from_env(device.type)
    try:
        return _loop(cfg, run_dir, state, progress, device, ctx)
    finally:
        if started_group:
            distributed.shutdown()


def _loop(cfg: TrainConfig, run_dir: Path, state: Optional[dict], progress: bool,
          device: torch.device, ctx: distributed.DistContext) -> Path:
    if state is None and run_dir.exists() and (not run_dir.is_dir() or any(run_dir.iterdir())):
        raise TrainingError(f"run directory {run_dir} is not empty; pass --resume or choose another")
    distributed.barrier(ctx)  # every rank has checked before rank 0 writes anything
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
            from torchvision.utils import make_grid
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
        return bool(distributed.all_reduce_mean(flag, ctx).item() > 0)

    # a new run makes at least one step; a resumed one none if its time is already spent
    done = trainer.step_count >= trainer.total_steps or (state is not None and out_of_time())
    with contextlib.ExitStack() as stack:
        stack.callback(bar.close)
        if tb is not None:
            stack.callback(tb.close)
        while not done:
            stats = trainer.step()
            for k, v in stats.items():
                window.setdefault(k, []).append(v)
            step = trainer.step_count
            done = step >= trainer.total_steps or out_of_time()
            bar.update(1)
            if step % cfg.log_every == 0 or done:
                keys = sorted(window)
                means = torch.stack([torch.stack(window[k]).float().mean() for k in keys])
                row = dict(zip(keys, distributed.all_reduce_mean(means, ctx).tolist()))
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
            if step % cfg.checkpoint_every == 0 or done:
                _check_finite_parameters(trainer, last)  # never overwrite a good checkpoint with NaNs
                pending = {k: distributed.all_reduce_mean(torch.stack(v), ctx).cpu() for k, v in window.items()}
                if main:
                    elapsed = elapsed_before + time.time() - started
                    ckpt.save_checkpoint(last, {**trainer.state_dict(), "elapsed": elapsed,
                                                "log_window": pending})

    generator_path = run_dir / "generator.safetensors"
    if main:
        ckpt.save_generator(generator_path, trainer.sampling_generator,
                            {"step": trainer.step_count, **ckpt.weights_metadata(cfg.ema_decay, trainer.step_count)})
        save_gif(run_frames(run_dir), run_dir / "samples.gif")
        if metrics_path.exists():
            save_loss_plot(metrics_path, run_dir / "losses.png")
    distributed.barrier(ctx)
    return generator_path


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
    from tqdm.auto import tqdm

    return tqdm(total=trainer.total_steps, initial=trainer.step_count, file=sys.stderr,
                disable=not enabled, unit="step", dynamic_ncols=True)
