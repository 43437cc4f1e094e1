"""The critic's gradient with respect to its input image, written out as a forward computation.

The WGAN-GP penalty needs ``g = dD(x)/dx`` per sample and then trains the critic on
``(||g|| - 1)^2``: with autograd that is a gradient of a gradient (``create_graph=True``, a
double backward), which ``torch.compile`` does not support. Here ``g`` is computed by hand, as
an ordinary differentiable function of the critic's parameters, so the penalty's training
gradient takes ONE backward. For the reference ``Critic`` (``augment.gan.models``)::

    h0 = cat(x, label maps)                         (B, C + E, 32, 32)
    a1 = conv1(h0); h1 = lrelu(a1)                  16x16
    a2 = conv2(h1); n2 = IN(a2); h2 = lrelu(n2)     8x8
    a3 = conv3(h2); n3 = IN(a3); h3 = lrelu(n3)     4x4
    D  = conv4(h3)                                  1x1 -> (B,)

and its input gradient, layer by layer backwards (``g_h`` = dD/dh, per sample):

* a convolution's input gradient is the transposed convolution of the output gradient with the
  same weights, stride and padding (``F.conv_transpose2d``); biases do not enter;
* LeakyReLU(s): ``g_a = g_h * (1 if a > 0 else s)``;
* InstanceNorm without affine, ``n = (a - mean) / sqrt(var + eps)`` over each sample's and
  channel's pixels (biased variance): ``g_a = (g_n - mean(g_n) - n * mean(g_n * n)) / sqrt(var + eps)``;
* the label channels are the embedding's, not the image's: only the image channels of the first
  convolution's input gradient are kept.

``scores_and_input_gradient(D, x, labels)`` returns D(x) and this gradient (``explicit_input_gradient``
the gradient alone, for ``augment.gan.losses.gradient_penalty``); tests check it
against ``torch.autograd.grad`` in float64 for every critic width.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from augment.errors import ConfigError


def leaky_relu_backward(grad: torch.Tensor, pre: torch.Tensor, slope: float) -> torch.Tensor:
    """dL/da of ``leaky_relu(a, slope)`` given dL/d(output) ``grad``."""
    return torch.where(pre > 0, grad, grad * slope)


def instance_norm_backward(grad: torch.Tensor, normed: torch.Tensor, inv_std: torch.Tensor) -> torch.Tensor:
    """dL/da of ``n = (a - mean) * inv_std`` (per sample and channel, over H, W) given dL/dn
    ``grad``, the normalised ``n`` and ``inv_std`` (B, C, 1, 1)."""
    mean_grad = grad.mean(dim=(2, 3), keepdim=True)
    mean_grad_n = (grad * normed).mean(dim=(2, 3), keepdim=True)
    return (grad - mean_grad - normed * mean_grad_n) * inv_std


def _instance_norm(a: torch.Tensor, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    mean = a.mean(dim=(2, 3), keepdim=True)
    var = (a - mean).pow(2).mean(dim=(2, 3), keepdim=True)
    inv_std = torch.rsqrt(var + eps)
    return (a - mean) * inv_std, inv_std


def _layers(critic: nn.Module) -> list:
    """(conv, has_instance_norm, leaky slope or None) per convolution of the reference critic;
    a ConfigError for any other layout."""
    if critic.config.critic_label != "channels":
        raise ConfigError("the explicit input gradient supports the reference critic only (critic_label 'channels')")
    layers, modules = [], list(critic.net)
    for k, m in enumerate(modules):
        if isinstance(m, nn.Conv2d):
            layers.append([m, None, None])
        elif isinstance(m, nn.InstanceNorm2d) and layers and not m.affine and not m.track_running_stats:
            layers[-1][1] = m.eps
        elif isinstance(m, nn.LeakyReLU) and layers:
            layers[-1][2] = float(m.negative_slope)
        else:
            raise ConfigError(f"the explicit input gradient supports the reference critic only, not a "
                              f"{type(m).__name__} at position {k}")
    if any(conv.dilation != (1, 1) or conv.groups != 1 for conv, _, _ in layers) or layers[-1][2] is not None:
        raise ConfigError("the explicit input gradient supports the reference critic layout only")
    return layers


def scores_and_input_gradient(critic: nn.Module, images: torch.Tensor, labels: torch.Tensor
                              ) -> tuple[torch.Tensor, torch.Tensor]:
    """(D(images) (B,), dD/d(images) (B, C, H, W)) of the reference ``Critic``, both ordinary
    differentiable functions of the critic's parameters (and of ``images``): no
    ``autograd.grad``, so a penalty on the gradient trains with one backward."""
    b, c, h, w = images.shape
    label_maps = critic.embed(labels)[:, :, None, None].expand(b, -1, h, w)
    x = torch.cat([images, label_maps], dim=1)
    saved = []  # per layer: (pre-activation, normed, inv_std)
    for conv, eps, slope in _layers(critic):
        pre = conv(x)
        normed = inv_std = None
        if eps is not None:
            normed, inv_std = _instance_norm(pre, eps)
            act_in = normed
        else:
            act_in = pre
        saved.append((conv, eps, slope, act_in, normed, inv_std, x.shape))
        x = F.leaky_relu(act_in, slope) if slope is not None else act_in
    scores = x.flatten()
    grad = torch.ones_like(x)
    for conv, eps, slope, act_in, normed, inv_std, in_shape in reversed(saved):
        if slope is not None:
            grad = leaky_relu_backward(grad, act_in, slope)
        if eps is not None:
            grad = instance_norm_backward(grad, normed, inv_std)
        out_pad = _output_padding(conv, grad.shape[-2:], in_shape[-2:])
        grad = F.conv_transpose2d(grad, conv.weight, stride=conv.stride, padding=conv.padding,
                                  output_padding=out_pad)
    return scores, grad[:, :c]


def _output_padding(conv: nn.Conv2d, out_hw, in_hw) -> tuple[int, int]:
    """The output padding that makes the transposed convolution give the input's size back (a
    strided convolution maps several input sizes to one output size)."""
    pads = []
    for o, i, k, s, p in zip(out_hw, in_hw, conv.kernel_size, conv.stride, conv.padding):
        pads.append(i - ((o - 1) * s - 2 * p + k))
    return tuple(pads)


def explicit_input_gradient(critic: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """dD/d(images) (B, C, H, W) of the reference ``Critic``, written out: the ``input_gradient`` of
    ``augment.gan.losses.gradient_penalty`` that needs no double backward."""
    return scores_and_input_gradient(critic, images, labels)[1]
