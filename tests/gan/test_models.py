import pytest
import torch

from augment.config import ModelConfig, TrainConfig
from augment.errors import ConfigError
from augment.gan.models import Critic, Generator, build_models, count_parameters


def test_reference_parameter_counts():
    g, d = build_models(ModelConfig())
    assert count_parameters(g) == 3_527_397
    assert count_parameters(d) == 671_269


def test_shapes_and_ranges(tiny_model_config):
    g, d = Generator(tiny_model_config), Critic(tiny_model_config)
    z = torch.randn(5, tiny_model_config.z_dim)
    y = torch.tensor([0, 1, 2, 9, 9])
    x = g(z, y)
    assert x.shape == (5, 1, 32, 32)
    assert x.min() >= -1 and x.max() <= 1
    assert d(x, y).shape == (5,)


def test_critic_has_no_batch_coupling(tiny_model_config):
    """Each sample's score is independent of the rest of the batch (InstanceNorm, no BatchNorm),
    which the gradient penalty and the batched fast path rely on."""
    d = Critic(tiny_model_config)
    x, y = torch.randn(6, 1, 32, 32), torch.arange(6)
    together = d(x, y)
    alone = torch.cat([d(x[i:i + 1], y[i:i + 1]) for i in range(6)])
    torch.testing.assert_close(together, alone, rtol=1e-5, atol=1e-5)


def test_label_changes_output(tiny_model_config):
    g = Generator(tiny_model_config).eval()
    z = torch.randn(1, tiny_model_config.z_dim).repeat(2, 1)
    x = g(z, torch.tensor([0, 1]))
    assert not torch.allclose(x[0], x[1])


def test_a_projection_critic_scores_by_label_and_refuses_the_explicit_gradient():
    from augment.gan.critic_gradient import scores_and_input_gradient

    cfg = ModelConfig(z_dim=8, embed_dim=4, g_width=8, d_width=8, critic_label="projection")
    torch.manual_seed(0)
    D = Critic(cfg)
    images = torch.randn(5, 1, 32, 32)
    assert torch.equal(D(images, torch.zeros(5, dtype=torch.long)), D(images, torch.ones(5, dtype=torch.long)))
    torch.nn.init.normal_(D.embed.weight)  # (a fresh one ignores the label; a trained one does not)
    same, other = D(images, torch.zeros(5, dtype=torch.long)), D(images, torch.ones(5, dtype=torch.long))
    assert same.shape == (5,) and not torch.allclose(same, other)
    assert D.net[0].in_channels == 1  # the image alone goes through the convolutions
    with pytest.raises(ConfigError, match="critic_label 'channels'"):
        scores_and_input_gradient(D, images, torch.zeros(5, dtype=torch.long))
    with pytest.raises(ConfigError, match="critic_label 'channels'"):
        TrainConfig(model=cfg, step_impl="explicit-gp")
