"""The pieces of a generator step that the eager and the batched step share.

``StepParts`` names everything one step reads and updates (networks, optimizers, the real
images, the loss settings), so that a step is a function of its parts, its noise and its
real-batch indices, not of a trainer's attributes. ``critic_view`` is an image as the critic
sees it (DiffAugment, when on); ``descend`` is one optimizer step; ``generator_update`` is the
one generator update of a step.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import torch
from torch import nn

from augment.gan import diffaugment
from augment.gan.losses import generator_loss
from augment.images import BACKGROUND
from augment.torchrun import DistContext
from augment.training import data_parallel


@dataclass(frozen=True)
class StepParts:
    """What one generator step reads and updates.

    ``real`` (N, C, 32, 32) in [-1, 1] and ``labels`` (N,) int64 are the run's training set on
    its device; ``shared_batches``: the n_critic critic updates reuse one real batch;
    ``dist``: the process group whose ranks average gradients (one process: none).
    """

    G: nn.Module
    D: nn.Module
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    real: torch.Tensor
    labels: torch.Tensor
    gp_weight: float
    critic_augment: str
    shared_batches: bool
    dist: DistContext

    def sync_gradients(self, module: nn.Module) -> None:
        """Average ``module``'s gradients over ranks (no-op on one process); call after backward."""
        data_parallel.all_reduce_gradients(module, self.dist)


def critic_view(parts: StepParts, images: torch.Tensor, params: Optional[torch.Tensor]) -> torch.Tensor:
    """``images`` (B, C, 32, 32) as the critic sees them: transformed by ``critic_augment`` with
    ``params`` (B, P) from ``Trainer.draw_noise``; unchanged when there are none."""
    return diffaugment.apply(parts.critic_augment, images, params, BACKGROUND)


def descend(parts: StepParts, module: nn.Module, optimizer: torch.optim.Optimizer, loss: torch.Tensor) -> None:
    """One optimizer step of ``module`` on ``loss``: gradients from scratch, averaged over ranks."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    parts.sync_gradients(module)
    optimizer.step()


def generator_term(G: nn.Module, D: nn.Module, z: torch.Tensor, labels: torch.Tensor, aug: Optional[torch.Tensor],
                   policy: str) -> torch.Tensor:
    """The generator loss -E[D(G(z|y))] of one generator update (fakes augmented by ``aug`` under
    ``policy``, as ``critic_view`` does): a pure function of its arguments, so it compiles."""
    return generator_loss(D(diffaugment.apply(policy, G(z, labels), aug, BACKGROUND), labels))


def generator_update(parts: StepParts, labels: torch.Tensor, z: torch.Tensor,
                     aug: Optional[torch.Tensor] = None,
                     loss_fn: Callable[..., torch.Tensor] = generator_term) -> torch.Tensor:
    """One generator update on latents ``z`` (B, z_dim) for ``labels`` (B,) (fakes augmented by
    ``aug`` when given), the critic frozen; returns the detached generator loss. ``loss_fn(G, D,
    z, labels, aug, critic_augment)`` computes the loss (``generator_term``, or a compiled one)."""
    parts.D.requires_grad_(False)
    try:
        loss = loss_fn(parts.G, parts.D, z, labels, aug, parts.critic_augment)
        descend(parts, parts.G, parts.opt_g, loss)
    finally:
        parts.D.requires_grad_(True)
    return loss.detach()
