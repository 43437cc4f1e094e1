import numpy as np
import pytest
import torch
from PIL import Image

from augment.errors import AugmentError, ConfigError
from augment.gan.models import Generator
from augment.visualize import class_grid, run_frames, save_gif, save_grid


def test_class_grid_rows_are_classes_and_seeded(tiny_model_config):
    g = Generator(tiny_model_config)
    a = class_grid(g, per_class=3, seed=1)
    assert a.shape == (30, 1, 32, 32)
    assert torch.equal(a, class_grid(g, per_class=3, seed=1))
    assert g.training  # mode restored
    z = torch.randn(30, tiny_model_config.z_dim, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():  # row c (items 3c .. 3c+2) is class c, from the seed's latents in order
        expected = g.eval()(z, torch.arange(10).repeat_interleave(3))
    g.train()
    torch.testing.assert_close(a, expected, rtol=0, atol=1e-6)
    assert not torch.allclose(class_grid(g, per_class=3, seed=2), a)
    sub = class_grid(g, per_class=3, seed=1, classes=[2, 5])
    assert sub.shape == (6, 1, 32, 32)
    for classes, match in (([10], "unknown class 10"), ([], "classes is empty"), ([3, 3], "duplicates")):
        with pytest.raises(AugmentError, match=match):
            class_grid(g, classes=classes)


def test_grid_png_and_gif(tmp_path, tiny_model_config):
    images = class_grid(Generator(tiny_model_config), per_class=4)
    for step in (0, 5):
        save_grid(images if step == 0 else -images, tmp_path / "samples" / f"step_{step:07d}.png", nrow=4)
    png = Image.open(tmp_path / "samples" / "step_0000000.png")
    assert png.size == (4 * 34 + 2, 10 * 34 + 2)
    gif = save_gif(run_frames(tmp_path), tmp_path / "a.gif")
    assert Image.open(gif).n_frames == 2
    with pytest.raises(AugmentError, match="no sample grids"):
        run_frames(tmp_path / "samples")


def test_row_labels_sit_on_a_white_margin(tiny_model_config, tmp_path):
    images = class_grid(Generator(tiny_model_config), per_class=2)
    path = save_grid(images, tmp_path / "g.png", nrow=2, row_labels=[f"{c} name" for c in range(10)])
    png = Image.open(path).convert("RGB")
    assert png.width > 2 * 34 + 2 and png.getpixel((1, 1)) == (255, 255, 255)  # not red: (255, 0, 0)
    assert (np.asarray(png.crop((0, 0, 30, png.height))) < 128).all(axis=-1).any()  # some dark text


@pytest.mark.parametrize("labels, word", [(["a\nb"] * 10, "row label"), (["x" * 5_000_000] + ["a"] * 9, "row label"),
                                          (["a"] * 9, "9 row labels for 10 rows")])
def test_row_labels_that_pillow_cannot_draw_are_refused_before_drawing(tmp_path, labels, word):
    with pytest.raises(ConfigError, match=word):
        save_grid(torch.zeros(20, 1, 8, 8), tmp_path / "g.png", nrow=2, row_labels=labels)
    assert not list(tmp_path.iterdir())
