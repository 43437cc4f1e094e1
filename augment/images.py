"""Pixel conventions: the models' images are ``(N, C, 32, 32)`` float32 in [-1, 1] (-1 = black
background); files and torchvision's MNIST hold ``(N, 28, 28)`` uint8 in [0, 255].

``to_model_images`` goes from files to the model (bilinear resize with half-pixel centres and
antialiasing, as torchvision's ``Resize``, then ``x / 127.5 - 1``); ``to_mnist_uint8`` comes
back (32 -> 28 the same way, then ``round((x + 1) * 127.5)``). The round trip blurs a digit
slightly: it is not an exact inverse.
"""

from __future__ import annotations

from typing import Optional, Union

import torch
import torch.nn.functional as F

from augment.config import IMAGE_SIZE

BACKGROUND = -1.0  # the value of an empty (black) pixel in the model range [-1, 1]
MNIST_SIZE = 28  # side of MNIST's (and a dump's) images in pixels


def to_model_images(images: torch.Tensor, device: Union[str, torch.device] = "cpu",
                    size: int = IMAGE_SIZE, chunk: int = 8192) -> torch.Tensor:
    """uint8 ``(N, H, W)`` or ``(N, C, H, W)`` in [0, 255] -> float32 ``(N, C, size, size)`` in [-1, 1].

    Bilinear resize (half-pixel centres, as torchvision's Resize) done once, on ``device``.
    """
    if images.dim() == 3:
        images = images.unsqueeze(1)
    out = torch.empty((images.shape[0], images.shape[1], size, size), device=device)
    for start in range(0, len(images), chunk):
        x = images[start:start + chunk].to(device=device, dtype=torch.float32)
        if x.shape[-2:] != (size, size):
            x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False,
                              antialias=True)
        out[start:start + chunk] = (x / 127.5 - 1.0).clamp_(-1.0, 1.0)
    return out


def to_uint8_images(images: torch.Tensor, size: Optional[tuple] = None) -> torch.Tensor:
    """float ``(N, C, H, W)`` in [-1, 1] -> uint8 ``(N, C, *size)`` in [0, 255] on the CPU: resized to
    ``size`` ``(H, W)`` first when given and different (antialiased bilinear, on the images' device),
    then rounded to nearest. The one way model images become pixels (dumps, PIL items, audits)."""
    x = images.detach().float()
    if size is not None and tuple(x.shape[-2:]) != tuple(size):
        x = F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False, antialias=True)
    return ((x.clamp(-1.0, 1.0) + 1.0) * 127.5).round_().to(torch.uint8).cpu()


def to_mnist_uint8(images: torch.Tensor) -> torch.Tensor:
    """(B, 1, 32, 32) float in [-1, 1] -> (B, 28, 28) uint8 on the CPU (antialiased bilinear)."""
    return to_uint8_images(images, (MNIST_SIZE, MNIST_SIZE))[:, 0]


def to_mnist_tensor(image: torch.Tensor) -> torch.Tensor:
    """One model image ``(1, 32, 32)`` in [-1, 1] -> ``(1, 28, 28)`` float32 in [0, 1]: what
    ``torchvision.transforms.ToTensor()`` makes of the same item as a 28x28 MNIST PIL image (the
    transform an MNIST script needs for ``SyntheticMNIST``'s tensor items; ``output="pil"``
    needs none)."""
    return to_mnist_uint8(image[None])[None, 0].float() / 255.0
