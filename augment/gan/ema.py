"""An exponential moving average (EMA) of a model's weights, for sampling from a GAN generator.

A GAN generator's weights wander around a good solution from one step to the next; the
average over the last few thousand steps usually makes better samples than the last step
alone (Yazıcı et al., "The Unusual Effectiveness of Averaging in GAN Training", ICLR 2019;
used by ProGAN, BigGAN and StyleGAN). After generator step ``t`` (1-based)::

    average <- d_t * average + (1 - d_t) * weights,   d_t = min(decay, (1 + t) / (10 + t))

The warm-up ``(1 + t) / (10 + t)`` (as TensorFlow's ``ExponentialMovingAverage`` with
``num_updates``) keeps the first steps from being dominated by the random initialisation.
Buffers (BatchNorm running statistics, counters) are copied, not averaged, as StyleGAN2 does:
they describe the activations of the live weights, which the average tracks.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


def decay_at(step: int, decay: float) -> float:
    """The decay applied after generator step ``step`` (1-based): ``min(decay, (1+t)/(10+t))``."""
    return min(decay, (1.0 + step) / (10.0 + step))


def averaged_copy(model: nn.Module) -> nn.Module:
    """A frozen copy of ``model`` in eval mode, to hold the average; starts equal to it."""
    return copy.deepcopy(model).eval().requires_grad_(False)


@torch.no_grad()
def update_average(average: nn.Module, model: nn.Module, decay: float) -> None:
    """``average``'s parameters move ``1 - decay`` of the way to ``model``'s; buffers are copied.

    The two modules must have the same structure (``average`` from ``averaged_copy(model)``).
    """
    avg_params, params = list(average.parameters()), list(model.parameters())
    avg_buffers, buffers = list(average.buffers()), list(model.buffers())
    if len(avg_params) != len(params) or len(avg_buffers) != len(buffers):
        raise ValueError("the average and the model have different parameters or buffers")
    torch._foreach_lerp_(avg_params, params, 1.0 - decay)
    for avg_buf, buf in zip(avg_buffers, buffers):
        avg_buf.copy_(buf)
