"""DiffAugment transforms: exact shifts and holes, per-sample, differentiable; drawn params."""

import pytest
import torch

from augment.errors import ConfigError
from augment.gan import diffaugment as critic_augment


def ramp(n=3, size=8):
    return torch.arange(n * size * size, dtype=torch.float64).reshape(n, 1, size, size)


def test_translate_shifts_whole_pixels_and_fills_background():
    x = ramp()
    out = critic_augment.translate(x, torch.tensor([0, 2, -1]), torch.tensor([0, -3, 1]), -1.0)
    assert torch.equal(out[0], x[0])
    assert torch.equal(out[1, 0, 2:, :5], x[1, 0, :6, 3:])  # moved down 2, left 3
    assert (out[1, 0, :2] == -1).all() and (out[1, 0, :, 5:] == -1).all()
    assert torch.equal(out[2, 0, :7, 1:], x[2, 0, 1:, :7])  # up 1, right 1
    assert (out[2, 0, 7] == -1).all() and (out[2, 0, :, 0] == -1).all()


def test_cutout_blanks_a_square_clipped_at_the_border():
    x = ramp(2)
    out = critic_augment.cutout(x, torch.tensor([4, 0]), torch.tensor([4, 7]), 4, -1.0)
    hole = out[0, 0] == -1
    assert hole[2:6, 2:6].all() and hole.sum() == 16
    assert torch.equal(out[0, 0][~hole], x[0, 0][~hole])
    assert (out[1, 0, :2, 5:] == -1).all() and (out[1, 0] == -1).sum() == 2 * 3  # rows 0-1, cols 5-7


def test_cutout_centres_cover_the_image_and_are_row_then_column():
    params = critic_augment.draw_params("cutout", (4000,), 32, torch.Generator().manual_seed(0), torch.device("cpu"))
    assert params.min(0).values.tolist() == [0, 0] and params.max(0).values.tolist() == [31, 31]
    out = critic_augment.apply("cutout", torch.zeros(1, 1, 32, 32), torch.tensor([[2, 20]]))  # (row, column)
    hole = out[0, 0] == -1
    assert hole[:10, 12:28].all() and int(hole.sum()) == 10 * 16  # side 16, clipped at the top


def test_apply_is_per_sample_and_differentiable():
    gen = torch.Generator().manual_seed(0)
    params = critic_augment.draw_params("translation,cutout", (5,), 8, gen, torch.device("cpu"))
    assert params.shape == (5, 4) and params.dtype == torch.int64
    assert params[:, :2].abs().max() <= 1 and params[:, 2:].min() >= 0 and params[:, 2:].max() < 8
    x = torch.randn(5, 1, 8, 8, dtype=torch.float64, requires_grad=True)
    out = critic_augment.apply("translation,cutout", x, params)
    for k in range(5):  # a sample's output depends on that sample alone
        alone = critic_augment.apply("translation,cutout", x[k:k + 1], params[k:k + 1])
        assert torch.equal(alone[0], out[k])
    out.pow(2).sum().backward()
    visible = out != -1
    assert x.grad.abs().sum() > 0 and x.grad.count_nonzero() <= visible.sum()
    assert critic_augment.apply("translation", x, None) is x


def test_none_draws_nothing_and_unknown_policy_is_refused():
    gen = torch.Generator().manual_seed(0)
    state = gen.get_state()
    assert critic_augment.draw_params("none", (2, 3), 32, gen, torch.device("cpu")) is None
    assert torch.equal(gen.get_state(), state)
    with pytest.raises(ConfigError, match="not one of"):
        critic_augment.draw_params("flip", (2,), 32, gen, torch.device("cpu"))
