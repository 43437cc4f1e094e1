"""Classical augmentation as batched tensor ops: a random affine warp drawn per sample.

torchvision's ``transforms.v2.RandomAffine`` draws one set of parameters per call, so on a
whole GPU batch every image gets the same warp; here each image gets its own, from an explicit
``torch.Generator``, in one ``affine_grid`` + ``grid_sample``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from augment.images import BACKGROUND


@dataclass(frozen=True)
class AffineRanges:
    """Per-sample ranges: rotation and shear in degrees, scale factor, translation in pixels."""

    degrees: float = 12.0
    translate_px: float = 2.5
    scale: tuple = (0.9, 1.1)
    shear_degrees: float = 8.0


def random_affine(images: torch.Tensor, generator: torch.Generator,
                  ranges: AffineRanges = AffineRanges()) -> torch.Tensor:
    """Warp each image of ``(B, C, H, W)`` in [-1, 1] by its own random affine map.

    Rotation, shear, scale and translation are drawn uniformly in ``ranges`` from
    ``generator`` (on the images' device), then applied by ``affine_warp``. Returns a new
    tensor of the same shape and range.
    """
    b = images.shape[0]
    dev = images.device

    def uniform(lo: float, hi: float) -> torch.Tensor:
        return torch.rand(b, generator=generator, device=dev) * (hi - lo) + lo

    angle = uniform(-ranges.degrees, ranges.degrees)
    shear = uniform(-ranges.shear_degrees, ranges.shear_degrees)
    scale = uniform(*ranges.scale)
    tx = uniform(-ranges.translate_px, ranges.translate_px)
    ty = uniform(-ranges.translate_px, ranges.translate_px)
    return affine_warp(images, angle, shear, scale, tx, ty)


def affine_warp(images: torch.Tensor, angle: torch.Tensor, shear: torch.Tensor, scale: torch.Tensor,
                tx: torch.Tensor, ty: torch.Tensor) -> torch.Tensor:
    """Warp image i of ``(B, C, H, W)`` in [-1, 1] by its own affine map: rotation ``angle[i]``
    and x-shear ``shear[i]`` in degrees, zoom ``scale[i]``, shift ``(tx[i], ty[i])`` in pixels
    (each ``(B,)``). Bilinear; pixels from outside the image are background (-1), exactly.

    Each part alone is ``torchvision.transforms.v2.functional.affine`` with bilinear
    interpolation and fill -1, except that rotation and shift have the opposite sign (the ranges
    are symmetric, so the distribution is the same); ``tests/downstream/test_affine.py`` checks it.
    Combined, the parts compose in another order (here the shear acts after the rotation and
    the shift is taken in the input's frame), so a full warp is not torchvision's for the same
    numbers. At the border, torchvision's bilinear fill blends towards the fill value twice (a
    background-only border turns grey); here a background border stays background.
    """
    _, _, h, w = images.shape
    angle = angle * (math.pi / 180)
    shear = shear * (math.pi / 180)
    tx = tx * (2.0 / w)  # normalised coordinates
    ty = ty * (2.0 / h)
    cos, sin, tan = torch.cos(angle), torch.sin(angle), torch.tan(shear)
    # theta maps output coordinates to input coordinates: (rotation @ shear) / scale, then shift
    theta = torch.stack([
        torch.stack([cos / scale, (cos * tan - sin) / scale, tx], dim=1),
        torch.stack([sin / scale, (sin * tan + cos) / scale, ty], dim=1),
    ], dim=1)
    coords = F.affine_grid(theta.to(images.dtype), list(images.shape), align_corners=False)  # where each pixel samples
    shifted = images - BACKGROUND  # so that grid_sample's zero padding is background
    return F.grid_sample(shifted, coords, mode="bilinear", padding_mode="zeros",
                         align_corners=False) + BACKGROUND
