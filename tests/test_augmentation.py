import torch

from augment.augmentation import AffineRanges, random_affine


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
