"""The critic's input gradient written out equals autograd's, and its penalty trains the critic
with the same gradient as the double-backward penalty (float64)."""

import pytest
import torch

from augment.config import ModelConfig
from augment.gan import diffaugment
from augment.gan.critic_gradient import (explicit_input_gradient, instance_norm_backward, leaky_relu_backward,
                                         scores_and_input_gradient)
from augment.gan.losses import autograd_input_gradient, gradient_penalty
from augment.gan.models import Critic
from augment.errors import ConfigError


def critic(d_width: int, seed: int = 0) -> Critic:
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return Critic(ModelConfig(d_width=d_width, embed_dim=4)).double()


def batch(n: int = 5, seed: int = 1):
    gen = torch.Generator().manual_seed(seed)
    return (torch.rand(n, 1, 32, 32, generator=gen, dtype=torch.float64) * 2 - 1,
            torch.randint(0, 10, (n,), generator=gen))


@pytest.mark.parametrize("d_width", [1, 2, 3, 8, 16])
def test_the_explicit_input_gradient_is_autograds_per_sample(d_width):
    D = critic(d_width)
    x, labels = batch()
    scores, grad = scores_and_input_gradient(D, x, labels)
    x_ = x.clone().requires_grad_(True)
    reference = D(x_, labels)
    (expected,) = torch.autograd.grad(reference.sum(), x_)
    torch.testing.assert_close(scores, reference.detach(), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(grad, expected, rtol=1e-10, atol=1e-12)
    _, alone = scores_and_input_gradient(D, x[2:3], labels[2:3])  # per sample: the batch does not matter
    torch.testing.assert_close(alone[0], grad[2], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("policy", ["none", "translation,cutout"])
def test_the_explicit_penalty_trains_the_critic_as_the_double_backward_one(policy):
    """The same penalty and the same parameter gradient, with and without DiffAugment (the
    penalty interpolates the augmented pair, whatever computes the input gradient)."""
    D = critic(4)
    real, labels = batch(6, seed=2)
    fake, _ = batch(6, seed=3)
    gen = torch.Generator().manual_seed(4)
    alpha = torch.rand(6, 1, 1, 1, generator=gen, dtype=torch.float64)
    params = diffaugment.draw_params(policy, (6,), 32, gen, torch.device("cpu"))
    real, fake = diffaugment.apply(policy, real, params), diffaugment.apply(policy, fake, params)
    grads = []
    for input_gradient in (autograd_input_gradient, explicit_input_gradient):
        D.zero_grad(set_to_none=True)
        value = gradient_penalty(D, real, fake, labels, alpha, input_gradient)
        value.backward()
        grads.append((value.detach(), [torch.zeros_like(p) if p.grad is None else p.grad.clone()
                                       for p in D.parameters()]))
    (v_ref, g_ref), (v_new, g_new) = grads
    torch.testing.assert_close(v_new, v_ref, rtol=1e-10, atol=1e-12)
    for a, b in zip(g_new, g_ref):
        torch.testing.assert_close(a, b, rtol=1e-8, atol=1e-11)


def test_the_hand_written_backwards_pass_gradcheck():
    """The pieces are differentiable functions (their own gradients checked numerically): a
    penalty on them trains through them."""
    gen = torch.Generator().manual_seed(5)
    a = torch.randn(2, 3, 4, 4, generator=gen, dtype=torch.float64)
    g = torch.randn(2, 3, 4, 4, generator=gen, dtype=torch.float64, requires_grad=True)
    pre = a.clone().requires_grad_(True)

    def norm_backward(grad, pre):
        mean = pre.mean((2, 3), keepdim=True)
        inv_std = torch.rsqrt((pre - mean).pow(2).mean((2, 3), keepdim=True) + 1e-5)
        return instance_norm_backward(grad, (pre - mean) * inv_std, inv_std)

    assert torch.autograd.gradcheck(norm_backward, (g, pre))
    assert torch.autograd.gradcheck(lambda grad: leaky_relu_backward(grad, a, 0.2), (g,))
    D = critic(1)
    x, labels = batch(1)
    weights = [p for p in D.parameters()]
    assert torch.autograd.gradcheck(lambda w: scores_and_input_gradient(_with_first_weight(D, w), x, labels)[1],
                                    (weights[1].detach().clone().requires_grad_(True),))


def _with_first_weight(D: Critic, weight: torch.Tensor) -> Critic:
    """D with its first convolution's weight replaced by ``weight`` (for gradcheck)."""
    conv = D.net[0]
    del conv.weight
    conv.weight = weight
    return D


def test_another_critic_layout_is_refused():
    D = critic(2)
    D.net.insert(2, torch.nn.BatchNorm2d(4))
    with pytest.raises(ConfigError, match="reference critic"):
        scores_and_input_gradient(D, *batch())
