"""Generator and Critic of the conditional WGAN-GP, built from a ``ModelConfig``.

Generator: label -> Embedding(C, E); cat(z, emb) -> (B, Z+E, 1, 1) -> ConvTranspose2d 4x4
(stride 1, then 2, 2, 2) with widths 4w, 2w, w, channels: 1 -> 4 -> 8 -> 16 -> 32 pixels,
BatchNorm + LeakyReLU(1e-4) between layers, tanh at the end.

Critic: label -> Embedding(C, E) broadcast as E extra image channels; Conv2d 4x4 (stride 2,
2, 2, then 1) with widths w, 2w, 4w, 1: 32 -> 16 -> 8 -> 4 -> 1 pixels, InstanceNorm on the
hidden layers after the first, LeakyReLU(0.2). No BatchNorm in the critic: the gradient
penalty is per sample, and InstanceNorm keeps every sample's score independent of the batch.
"""

from __future__ import annotations

import torch
from torch import nn

from augment.config import ModelConfig
from augment.errors import ConfigError


def _require_classes(cfg: ModelConfig) -> int:
    if cfg.num_classes is None:
        raise ConfigError("ModelConfig.num_classes is unset; resolve it from the labels first")
    return cfg.num_classes


class Generator(nn.Module):
    """(z: (B, z_dim) float, labels: (B,) int64 in [0, C)) -> images (B, channels, 32, 32) in [-1, 1]."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.config = cfg
        w = cfg.g_width
        self.embed = nn.Embedding(_require_classes(cfg), cfg.embed_dim)
        self.net = nn.Sequential(
            nn.ConvTranspose2d(cfg.z_dim + cfg.embed_dim, 4 * w, 4, 1, 0),  # 1 -> 4
            nn.BatchNorm2d(4 * w),
            nn.LeakyReLU(1e-4),
            nn.ConvTranspose2d(4 * w, 2 * w, 4, 2, 1),  # 4 -> 8
            nn.BatchNorm2d(2 * w),
            nn.LeakyReLU(1e-4),
            nn.ConvTranspose2d(2 * w, w, 4, 2, 1),  # 8 -> 16
            nn.BatchNorm2d(w),
            nn.LeakyReLU(1e-4),
            nn.ConvTranspose2d(w, cfg.channels, 4, 2, 1),  # 16 -> 32
            nn.Tanh(),
        )

    def forward(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        h = torch.cat([z, self.embed(labels)], dim=1)
        return self.net(h[:, :, None, None])


class Critic(nn.Module):
    """(images: (B, channels, 32, 32) in [-1, 1], labels: (B,) int64) -> scores (B,) unbounded.

    ``critic_label='channels'`` (the reference): the label's embedding enters as ``embed_dim``
    constant input channels. ``'projection'``: the image alone goes through the convolutions, and
    the score gains ``<embed(y), mean over pixels of the last features>`` (Miyato & Koyama 2018),
    the embedding starting at zero, so the untrained critic ignores the label rather than score
    at random by it.
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.config = cfg
        w, projection = cfg.d_width, cfg.critic_label == "projection"
        classes = _require_classes(cfg)
        self.embed = nn.Embedding(classes, 4 * w if projection else cfg.embed_dim)
        if projection:
            nn.init.zeros_(self.embed.weight)
        self.net = nn.Sequential(
            nn.Conv2d(cfg.channels + (0 if projection else cfg.embed_dim), w, 4, 2, 1),  # 32 -> 16
            nn.LeakyReLU(0.2),
            nn.Conv2d(w, 2 * w, 4, 2, 1),  # 16 -> 8
            nn.InstanceNorm2d(2 * w),
            nn.LeakyReLU(0.2),
            nn.Conv2d(2 * w, 4 * w, 4, 2, 1),  # 8 -> 4
            nn.InstanceNorm2d(4 * w),
            nn.LeakyReLU(0.2),
            nn.Conv2d(4 * w, 1, 4, 1, 0),  # 4 -> 1
        )

    def forward(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if self.config.critic_label == "projection":
            features = self.net[:-1](images)  # (B, 4w, 4, 4)
            return self.net[-1](features).flatten() + (self.embed(labels) * features.mean((2, 3))).sum(1)
        b, _, h, w = images.shape
        label_maps = self.embed(labels)[:, :, None, None].expand(b, -1, h, w)
        return self.net(torch.cat([images, label_maps], dim=1)).flatten()


def build_models(cfg: ModelConfig) -> tuple[Generator, Critic]:
    return Generator(cfg), Critic(cfg)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
