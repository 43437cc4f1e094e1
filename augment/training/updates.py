"""The two updates of a CWGAN-GP step, each written once: the critic update and the generator update.

``critic_terms`` composes the critic's loss (the negated Wasserstein estimate plus the weighted
gradient penalty) and ``generator_terms`` the generator's; each returns every statistic it logs, so a
new statistic is one more entry here. ``critic_update`` and ``generator_update`` take one optimizer
step on them (``descend``). Every step implementation (``augment.training.steps``: eager, batched,
explicit penalty, compiled, CUDA graph) calls these two updates and differs only in how it makes
the fakes and computes the terms, never in the maths. ``StepParts`` names everything a step reads
and updates, so a step is a function of its parts, its noise and its real-batch indices.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import torch
from torch import nn

from augment.gan import diffaugment
from augment.gan.losses import (
    InputGradient,
    autograd_input_gradient,
    critic_loss,
    generator_loss,
    gradient_penalty,
    wasserstein_estimate,
)
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


def critic_view(policy: str, images: torch.Tensor, params: Optional[torch.Tensor]) -> torch.Tensor:
    """``images`` (B, C, 32, 32) as the critic sees them: transformed by the DiffAugment ``policy``
    with ``params`` (B, P) from ``Trainer.draw_noise``; unchanged when there are none."""
    return diffaugment.apply(policy, images, params, BACKGROUND)


def critic_terms(D: nn.Module, real: torch.Tensor, fake: torch.Tensor, labels: torch.Tensor, alpha: torch.Tensor,
                 gp_weight: float, input_gradient: InputGradient = autograd_input_gradient,
                 one_forward: bool = True) -> dict:
    """The critic's loss and statistics on ``real`` and ``fake`` (B, C, 32, 32) as the critic sees
    them, for ``labels`` (B,), the penalty on interpolates with weights ``alpha`` (B, 1, 1, 1):
    ``loss_d`` = -(E[D(real)] - E[D(fake)]) + gp_weight * ``gp``, and ``wasserstein``, the
    estimate. ``one_forward`` scores real and fake in one forward of both (the critic treats
    samples independently: the same function, fewer kernels), else in two, as the reference does.
    A pure function of its arguments, so it compiles."""
    if one_forward:
        b = real.shape[0]
        real_scores, fake_scores = D(torch.cat([real, fake]), torch.cat([labels, labels])).split(b)
    else:
        real_scores, fake_scores = D(real, labels), D(fake, labels)
    gp = gradient_penalty(D, real, fake, labels, alpha, input_gradient)
    return {"loss_d": critic_loss(real_scores, fake_scores) + gp_weight * gp, "gp": gp,
            "wasserstein": wasserstein_estimate(real_scores, fake_scores)}


def generator_terms(G: nn.Module, D: nn.Module, z: torch.Tensor, labels: torch.Tensor, aug: Optional[torch.Tensor],
                    policy: str) -> dict:
    """The generator's loss ``loss_g`` = -E[D(G(z|y))] on latents ``z`` (B, z_dim) for ``labels``
    (B,), its fakes seen through DiffAugment (``policy``, parameters ``aug``). Pure, so it compiles."""
    return {"loss_g": generator_loss(D(critic_view(policy, G(z, labels), aug), labels))}


CriticTerms = Callable[..., dict]
GeneratorTerms = Callable[..., dict]


def descend(parts: StepParts, module: nn.Module, optimizer: torch.optim.Optimizer, loss: torch.Tensor) -> None:
    """One optimizer step of ``module`` on ``loss``: gradients from scratch, averaged over ranks."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    data_parallel.all_reduce_gradients(module, parts.dist)
    optimizer.step()


def critic_update(parts: StepParts, real: torch.Tensor, fake: torch.Tensor, labels: torch.Tensor,
                  alpha: torch.Tensor, terms: CriticTerms = critic_terms) -> dict:
    """One critic update on ``critic_terms`` (or a compiled or explicit-penalty ``terms`` of the same
    signature); returns its statistics, detached."""
    stats = terms(parts.D, real, fake, labels, alpha, parts.gp_weight)
    descend(parts, parts.D, parts.opt_d, stats["loss_d"])
    return {k: v.detach() for k, v in stats.items()}


def generator_update(parts: StepParts, labels: torch.Tensor, z: torch.Tensor, aug: Optional[torch.Tensor],
                     terms: GeneratorTerms = generator_terms) -> dict:
    """One generator update on ``generator_terms`` (or a compiled ``terms``), the critic frozen;
    returns its statistics, detached."""
    parts.D.requires_grad_(False)
    try:
        stats = terms(parts.G, parts.D, z, labels, aug, parts.critic_augment)
        descend(parts, parts.G, parts.opt_g, stats["loss_g"])
    finally:
        parts.D.requires_grad_(True)
    return {k: v.detach() for k, v in stats.items()}
