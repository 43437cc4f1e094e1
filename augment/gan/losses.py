"""WGAN-GP losses as pure functions of critic scores and images.

Critic loss:    -(E[D(real)] - E[D(fake)]) + lambda * GP
Generator loss: -E[D(G(z|y))]
GP:             E[(||grad_x D(x_hat)||_2 - 1)^2], x_hat = a * real + (1 - a) * fake, a ~ U(0, 1)
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn


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


Critic = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
InputGradient = Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]


def autograd_input_gradient(critic: Critic, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """dD/d(images) (B, C, H, W) by autograd, kept differentiable (``create_graph``: the penalty's
    training gradient is then a double backward)."""
    images = images.requires_grad_(True)
    (grads,) = torch.autograd.grad(critic(images, labels).sum(), images, create_graph=True)
    return grads


def gradient_penalty(critic: Critic, real: torch.Tensor, fake: torch.Tensor, labels: torch.Tensor,
                     alpha: torch.Tensor, input_gradient: InputGradient = autograd_input_gradient) -> torch.Tensor:
    """The WGAN-GP penalty E[(||dD/dx(x_hat)||_2 - 1)^2] on interpolates x_hat of ``real`` and ``fake``
    (B, C, H, W) with weights ``alpha`` (B, 1, 1, 1); differentiable, so it trains the critic.
    ``input_gradient(critic, x_hat, labels)`` computes dD/dx: by autograd, or written out
    (``augment.gan.critic_gradient.explicit_input_gradient``, one backward instead of two)."""
    x_hat = interpolate(real, fake.detach(), alpha)
    norms = input_gradient(critic, x_hat, labels).flatten(1).norm(2, dim=1)
    return ((norms - 1.0) ** 2).mean()
