"""One CWGAN-GP run's state and its generator step: models, optimizers, real data, noise.

``Trainer.step()`` is one generator step: ``n_critic`` critic updates, then one generator
update (critic updates only during the first ``critic_warmup`` steps), then the weight
average's update when the run keeps one. The step itself is ``augment.training.steps``
(``training_step``, run eager, batched, with the explicit penalty, or as a CUDA graph as
``step_impl`` says: ``build_step``). All randomness of a step is drawn up front from one explicit
``torch.Generator`` (``draw_noise``) and real batches are a pure function of (seed, batch
counter) (``augment.training.real_data``), so ``state_dict()`` alone resumes a run bitwise.
The loop around it (logs, samples, checkpoints, resume) is ``augment.training.loop``.
"""

from __future__ import annotations

from typing import Callable, Optional

import torch

from augment import checkpoint as ckpt
from augment import torchrun
from augment.config import TrainConfig
from augment.device import resolve_device
from augment.errors import CheckpointError, TrainingError
from augment.fileio import PathLike
from augment.gan import diffaugment, ema
from augment.gan.models import Critic, Generator
from augment.images import to_model_images
from augment.training import data_parallel
from augment.training.cuda_graph import CudaGraphStep
from augment.training.real_data import BalancedBatches, RealBatches, load_training_data, resolved_real_sampling
from augment.training.steps import Step
from augment.training.updates import StepParts


class Trainer:
    """Models, optimizers, data and RNG of one run; ``step()`` is one generator step.

    With a distributed context of W ranks, each rank computes its 1/W share of every global
    batch and gradients are averaged (see ``augment.training.data_parallel``): the same function as one
    process on the whole batch.
    """

    def __init__(self, cfg: TrainConfig, device: Optional[torch.device] = None,
                 dist_ctx: torchrun.DistContext = torchrun.SINGLE):
        self.device = device or resolve_device(cfg.device)
        self.dist = dist_ctx
        self.local = data_parallel.local_slice(cfg.batch_size, dist_ctx)
        cfg, images, labels, self.trained_on = load_training_data(cfg)
        self.class_names = list(self.trained_on.class_names)
        self.cfg = cfg
        self.real = to_model_images(images, self.device)  # (N, C, 32, 32) in [-1, 1]
        self.labels = labels.to(self.device)
        if resolved_real_sampling(cfg) == "balanced":
            self.batches = BalancedBatches(labels, cfg.batch_size, cfg.seed, self.device)
        else:
            self.batches = RealBatches(len(self.labels), cfg.batch_size, cfg.seed, self.device)
        with torch.random.fork_rng(devices=[]):  # seeded init without touching global RNG state
            torch.default_generator.manual_seed(cfg.seed)  # (torch.manual_seed would seed CUDA too)
            self.G, self.D = Generator(cfg.model), Critic(cfg.model)
        if dist_ctx.enabled:
            data_parallel.use_global_batchnorm(self.G)
        self.G.to(self.device).train()
        self.D.to(self.device).train()
        # the weight average of G (eval mode, no gradients) when cfg.ema_decay is set
        self.G_ema = ema.averaged_copy(self.G) if cfg.ema_decay is not None else None
        betas = (cfg.beta1, cfg.beta2)
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=cfg.lr, betas=betas)
        critic_lr = cfg.lr if cfg.critic_lr is None else cfg.critic_lr
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=critic_lr, betas=betas)
        self.noise = torch.Generator(device=self.device).manual_seed(cfg.seed + 1)  # z and alpha
        self.step_count = 0
        self.batches_per_step = 1 if cfg.real_batches == "shared" else cfg.n_critic
        steps_per_epoch = max(1, self.batches.per_epoch // self.batches_per_step)
        self.total_steps = cfg.max_steps or cfg.epochs * steps_per_epoch
        self.step_fn = build_step(self)

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
                params = diffaugment.draw_params(policy, shape, size, self.noise, self.device)
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

    def step_parts(self) -> StepParts:
        """The networks, optimizers, data and settings a step reads and updates, named."""
        return StepParts(self.G, self.D, self.opt_g, self.opt_d, self.real, self.labels, self.cfg.gp_weight,
                         self.cfg.critic_augment, self.batches_per_step == 1, self.dist)

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
        if self.step_count < self.cfg.critic_warmup:  # the critic alone (eager): the generator's loss measured only
            stats = Step(self, batched=False)(update_generator=False)
        else:
            stats = self.step_fn()
        self.step_count += 1
        if self.G_ema is not None:
            ema.update_average(self.G_ema, self.G, ema.decay_at(self.step_count, self.cfg.ema_decay))
        return stats

    def generators(self) -> dict[str, torch.nn.Module]:
        """The generators an in-training evaluation scores: 'live', and 'average' when kept."""
        return {"live": self.G} if self.G_ema is None else {"live": self.G, "average": self.G_ema}

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
            "class_names": list(self.class_names),
            **self.trained_on.metadata(),
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


def build_step(trainer: Trainer) -> Callable[[], dict]:
    """The step ``trainer.cfg.step_impl`` asks for on ``trainer.device`` (``augment.training.steps``):
    'eager'; 'fast' (a CUDA graph on one CUDA process, else batched); 'auto' (fast on CUDA, eager
    elsewhere, where batching measured no faster); 'explicit-gp' (batched with the explicit penalty,
    compiled with ``compile_step``)."""
    impl, on_cuda = trainer.cfg.step_impl, trainer.device.type == "cuda"
    if impl == "explicit-gp":
        return Step(trainer, batched=True, explicit_gp=True, compile_step=trainer.cfg.compile_step)
    if impl == "eager" or (impl == "auto" and not on_cuda):
        return Step(trainer, batched=False)
    if on_cuda and not trainer.dist.enabled:  # collectives inside a captured graph are not attempted
        return CudaGraphStep(trainer, required=impl == "fast")
    return Step(trainer, batched=True)
