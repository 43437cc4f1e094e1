"""Pixel conventions: files to the model's range and back."""


import torch

from augment.images import to_model_images, to_uint8_images
from tests.conftest import bar_digits


def test_model_images_range_shape_and_inverse():
    images, _ = bar_digits(5)
    x = to_model_images(images)
    assert x.shape == (5, 1, 32, 32) and x.dtype == torch.float32
    assert x.min() >= -1 and x.max() <= 1
    flat = torch.full((1, 28, 28), 255, dtype=torch.uint8)
    assert torch.all(to_model_images(flat) == 1.0)
    assert torch.equal(to_uint8_images(to_model_images(images, size=28)), images.unsqueeze(1))


def test_model_images_are_torchvision_resize_scaled_to_minus_one_one():
    """Checked against torchvision's Resize (bilinear, antialias, half-pixel centres), not
    against the code under test; the texture makes a corner convention show."""
    import torchvision.transforms.functional as TF

    images, _ = bar_digits(20, 3)
    images[:, ::3, ::2] = 200
    expected = TF.resize(images.unsqueeze(1).float(), [32, 32], antialias=True) / 127.5 - 1
    torch.testing.assert_close(to_model_images(images), expected, rtol=0, atol=1e-5)
