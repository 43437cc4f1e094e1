"""Differentiable augmentation of every critic input (DiffAugment, Zhao et al., NeurIPS 2020).

With few real images (the fair regime: 10-500 per class) the critic memorises them and stops
giving the generator a useful gradient. DiffAugment transforms every image the critic sees -
real batches, fakes in the critic and in the generator update, and (here) the penalty's
interpolates, taken between the augmented reals and fakes - with random transforms that are
differentiable in the image, so the generator is still trained towards the un-augmented data.

Transforms (per sample; no batch coupling, so the batched training step stays exact):

* ``translation``: shift by (dy, dx) whole pixels, each uniform in [-S, S] with S = size / 8
  (4 px at 32x32); uncovered pixels become background;
* ``cutout``: a (size / 2)-square (16x16) centred uniformly in the image (clipped at the
  border) becomes background.

Their parameters are drawn up front by ``draw_params`` from the trainer's noise generator, so
every step implementation (eager, batched, CUDA graph) applies the same transforms.
"""

from __future__ import annotations

from typing import Optional

import torch

from augment.config import CRITIC_AUGMENT_POLICIES as POLICIES
from augment.errors import ConfigError


def _ops(policy: str) -> tuple[str, ...]:
    if policy not in POLICIES:
        raise ConfigError(f"critic augmentation {policy!r} is not one of {', '.join(POLICIES)}")
    return () if policy == "none" else tuple(policy.split(","))


def draw_params(policy: str, shape: tuple[int, ...], size: int, generator: torch.Generator,
                device: torch.device) -> Optional[torch.Tensor]:
    """Transform parameters ``(*shape, P)`` int64 for images of side ``size`` (None for
    ``"none"``): two columns per op of the policy, in its order."""
    columns = []
    for op in _ops(policy):
        if op == "translation":
            reach = size // 8
            columns.append(torch.randint(-reach, reach + 1, (*shape, 2), generator=generator, device=device))
        else:
            columns.append(torch.randint(0, size, (*shape, 2), generator=generator, device=device))
    return torch.cat(columns, dim=-1) if columns else None


def row(params: Optional[torch.Tensor], i: int) -> Optional[torch.Tensor]:
    """``params[i]`` (the parameters of critic update ``i``), or None when there are none."""
    return None if params is None else params[i]


def apply(policy: str, images: torch.Tensor, params: Optional[torch.Tensor],
          background: float = -1.0) -> torch.Tensor:
    """``images`` (B, C, H, W) transformed by ``params`` (B, P) from ``draw_params``; the
    result is differentiable in ``images``. ``params=None`` returns ``images`` unchanged."""
    if params is None:
        return images
    for k, op in enumerate(_ops(policy)):
        a, b = params[:, 2 * k], params[:, 2 * k + 1]
        images = translate(images, a, b, background) if op == "translation" else \
            cutout(images, a, b, images.shape[-1] // 2, background)
    return images


def translate(images: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor, background: float) -> torch.Tensor:
    """out[b, :, i, j] = images[b, :, i - dy[b], j - dx[b]], background where that is outside."""
    n, c, h, w = images.shape
    rows = torch.arange(h, device=images.device) - dy[:, None]  # (B, H) source row of each row
    cols = torch.arange(w, device=images.device) - dx[:, None]  # (B, W)
    inside = ((rows >= 0) & (rows < h))[:, None, :, None] & ((cols >= 0) & (cols < w))[:, None, None, :]
    out = images.gather(2, rows.clamp(0, h - 1)[:, None, :, None].expand(n, c, h, w))
    out = out.gather(3, cols.clamp(0, w - 1)[:, None, None, :].expand(n, c, h, w))
    return torch.where(inside, out, torch.full_like(out, background))


def cutout(images: torch.Tensor, cy: torch.Tensor, cx: torch.Tensor, side: int,
           background: float) -> torch.Tensor:
    """Rows [cy - side/2, cy + side/2) x columns [cx - side/2, cx + side/2) of each image set
    to background."""
    h, w = images.shape[-2:]
    rows = torch.arange(h, device=images.device) - cy[:, None] + side // 2  # (B, H)
    cols = torch.arange(w, device=images.device) - cx[:, None] + side // 2
    hole = ((rows >= 0) & (rows < side))[:, None, :, None] & ((cols >= 0) & (cols < side))[:, None, None, :]
    return torch.where(hole, torch.full_like(images, background), images)
