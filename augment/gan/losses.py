"""WGAN-GP losses as pure functions of critic scores and images.

Critic loss:    -(E[D(real)] - E[D(fake)]) + lambda * GP
Generator loss: -E[D(G(z|y))]
GP:             E[(||grad_x D(x_hat)||_2 - 1)^2], x_hat = a * real + (1 - a) * fake, a ~ U(0, 1)
"""

from __future__ import annotations

from typing import Callable

import torch


def wasserstein_estimate(real_scores: torch.Tensor, fake_scores: torch.Tensor) -> torch.Tensor:
    """E[D(real)] - E[D(fake)]: the critic's estimate of the Wasserstein-1 distance (scalar)."""
    return real_scores.mean() - fake_scores.mean()


def critic_loss(real_scores: torch.Tensor, fake_scores: torch.Tensor) -> torch.Tensor:
    """-(E[D(real)] - E[D(fake)]) for scores of shape (B,); the penalty is added separately."""
    return -wasserstein_estimate(real_scores, fake_scores)


def generator_loss(fake_scores: torch.Tensor) -> torch.Tensor:
    """-E[D(G(z|y))] for scores of shape (B,)."""
    return -fake_scores.mean()


def interpolate(real: torch.Tensor, fake: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """alpha * real + (1 - alpha) * fake with alpha of shape (B, 1, 1, 1) in [0, 1]."""
    return alpha * real + (1.0 - alpha) * fake


def penalty_from_gradients(gradients: torch.Tensor) -> torch.Tensor:
    """mean over samples of (||g_i||_2 - 1)^2, g_i flattened per sample; gradients (B, ...)."""
    norms = gradients.flatten(1).norm(2, dim=1)
    return ((norms - 1.0) ** 2).mean()


def gradient_penalty(critic: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
                     real: torch.Tensor, fake: torch.Tensor, labels: torch.Tensor,
                     alpha: torch.Tensor) -> torch.Tensor:
    """The WGAN-GP penalty on interpolates of ``real`` and ``fake`` (B, C, H, W) with weights
    ``alpha`` (B, 1, 1, 1). Differentiable (create_graph=True) so it trains the critic."""
    x_hat = interpolate(real, fake.detach(), alpha).requires_grad_(True)
    scores = critic(x_hat, labels)
    (grads,) = torch.autograd.grad(scores.sum(), x_hat, create_graph=True)
    return penalty_from_gradients(grads)
