import pytest
import torch
from torchvision.transforms import InterpolationMode
from torchvision.transforms.v2 import functional as TF

from augment.downstream.affine import AffineRanges, affine_warp, random_affine


def _digits():
    x = torch.full((4, 1, 32, 32), -1.0)
    x[:, :, 8:24, 14:18] = 1.0  # a vertical bar
    return x


def test_identity_ranges_leave_images_unchanged():
    x = _digits()
    ident = AffineRanges(degrees=0, translate_px=0, scale=(1, 1), shear_degrees=0)
    out = random_affine(x, torch.Generator().manual_seed(0), ident)
    torch.testing.assert_close(out, x, atol=1e-5, rtol=0)


def test_each_image_gets_its_own_seeded_warp():
    x = _digits()
    a = random_affine(x, torch.Generator().manual_seed(1))
    b = random_affine(x, torch.Generator().manual_seed(1))
    assert torch.equal(a, b)
    assert a.shape == x.shape and a.min() >= -1 - 1e-6 and a.max() <= 1 + 1e-6
    assert not torch.allclose(a[0], a[1])  # same input, different per-sample warps
    assert (a[:, :, :2, :] == -1).all()  # borders stay background, not grey


def test_pure_translation_moves_content():
    x = _digits()
    shift = AffineRanges(degrees=0, translate_px=4, scale=(1, 1), shear_degrees=0)
    out = random_affine(x, torch.Generator().manual_seed(3), shift)
    column_mass = (out + 1).sum(dim=(0, 1, 2))
    assert not torch.allclose(column_mass, (x + 1).sum(dim=(0, 1, 2)))
    torch.testing.assert_close((out + 1).sum(), (x + 1).sum(), rtol=0.05, atol=0)  # mass kept


def _warp_one(image, angle=0.0, shear=0.0, scale=1.0, tx=0.0, ty=0.0):
    def t(v):
        return torch.tensor([v])
    return affine_warp(image, t(angle), t(shear), t(scale), t(tx), t(ty))


@pytest.mark.parametrize("ours, theirs", [
    (dict(angle=10.0), dict(angle=-10.0)),
    (dict(angle=-7.5), dict(angle=7.5)),
    (dict(shear=8.0), dict(shear=[8.0, 0.0])),
    (dict(shear=-5.0), dict(shear=[-5.0, 0.0])),
    (dict(scale=0.9), dict(scale=0.9)),
    (dict(scale=1.1), dict(scale=1.1)),
    (dict(tx=2.0, ty=-1.5), dict(translate=[-2.0, 1.5])),
])
def test_each_part_is_torchvisions_affine(ours, theirs):
    """Rotation, shear, zoom and shift alone match transforms.v2.functional.affine (rotation and
    shift with the opposite sign) away from the border, where the two fills differ."""
    image = torch.rand(1, 1, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1
    args = dict(angle=0.0, translate=[0.0, 0.0], scale=1.0, shear=[0.0, 0.0])
    expected = TF.affine(image, **{**args, **theirs}, interpolation=InterpolationMode.BILINEAR, fill=-1.0)
    torch.testing.assert_close(_warp_one(image, **ours)[..., 4:-4, 4:-4], expected[..., 4:-4, 4:-4],
                               atol=1e-5, rtol=0)


def test_background_border_stays_background_where_torchvision_greys_it():
    x = _digits()[:1]
    ours = _warp_one(x, angle=10.0)
    theirs = TF.affine(x, angle=-10.0, translate=[0.0, 0.0], scale=1.0, shear=[0.0, 0.0],
                       interpolation=InterpolationMode.BILINEAR, fill=-1.0)
    assert (ours[..., :3, :] == -1).all() and (ours[..., :, :3] == -1).all()
    assert theirs.max() > -1 and (theirs[..., :3, :] > -1 + 1e-3).any()  # blended fill at the corners


def test_random_affine_draws_per_sample_parts_within_ranges():
    """random_affine is affine_warp with parts drawn uniformly in the ranges, from the generator."""
    x = _digits()
    ranges = AffineRanges(degrees=5.0, translate_px=1.0, scale=(0.95, 1.05), shear_degrees=3.0)
    g = torch.Generator().manual_seed(7)
    draws = [torch.rand(4, generator=g) for _ in range(5)]
    angle, shear = draws[0] * 10 - 5, draws[1] * 6 - 3
    scale, tx, ty = draws[2] * 0.1 + 0.95, draws[3] * 2 - 1, draws[4] * 2 - 1
    expected = affine_warp(x, angle, shear, scale, tx, ty)
    torch.testing.assert_close(random_affine(x, torch.Generator().manual_seed(7), ranges), expected,
                               atol=1e-6, rtol=0)
