"""A fast, inference-only generator: the same function as ``Generator`` in eval mode, rewritten.

``FastGenerator(G)(z (B, z_dim), labels (B,) int64) -> (B, C, 32, 32) float32 in [-1, 1]``
equals ``G.eval()(z, labels)`` to float tolerance (fp32: max |diff| 2e-7 to 3e-6; tested). Rewrites,
each exact in real arithmetic:

- BatchNorm (eval: running statistics) is folded into the preceding transposed convolution:
  ``W' = W * s``, ``b' = b * s + t`` per output channel, with ``s = gamma / sqrt(var + eps)``,
  ``t = beta - mean * s``. LeakyReLU and tanh run in place.
- Layer 1 (ConvTranspose2d 4x4 on a 1x1 input) is a matrix product laid out NHWC; the label
  embedding's share plus the folded bias is a per-class table, so ``h = table[y] + z @ W_z``.
- Each stride-2 ConvTranspose2d(k=4, s=2, p=1) runs in one of two exact forms ("strategies"),
  each the fastest measured for its layers (experiments/results/bench_sampling.md):

  * ``deconv``: the library's transposed convolution with the folded weights (oneDNN's direct
    kernel on CPU), for the wide layers;
  * ``gemm``: one matrix product ``X (B*H*W, Cin) @ W (Cin, 16*Cout)`` and col2im: output pixel
    ``(2a + r, 2b + s)`` sums four shifted tap planes (kernel taps ``(3, 1)`` for phase 0 and
    ``(2, 0)`` for phase 1), for narrow outputs such as the 1-channel last layer (20x oneDNN's).

- Activations are channels_last (NHWC) throughout; the forward runs under
  ``torch.inference_mode``; ``dtype=torch.bfloat16`` is allowed on CUDA only (CPU: an error,
  so a CPU run never silently changes precision). Only the final tanh runs outside inference
  mode (under no_grad), so the returned images are ordinary tensors usable in autograd.

Every sample is computed independently (no batch statistics), so a sample does not depend on
the rest of its batch beyond floating-point reassociation inside the BLAS/conv kernels.
"""

from __future__ import annotations

from typing import Optional, Sequence, Union

import torch
import torch.nn.functional as F
from torch import nn

from augment.errors import ConfigError
from augment.gan.models import Generator

STRATEGIES = ("deconv", "gemm")
_TAPS = ((3, 1), (2, 0))  # kernel index output phase r takes from input row a + r + dr - 1, dr = 0, 1

DTypeLike = Union[str, torch.dtype, None]
_DTYPES = {"float32": torch.float32, "fp32": torch.float32, "float": torch.float32,
           "bfloat16": torch.bfloat16, "bf16": torch.bfloat16}


def resolve_dtype(dtype: DTypeLike, device: Union[str, torch.device]) -> torch.dtype:
    """float32 (default) or bfloat16 (CUDA only); raises ConfigError otherwise."""
    if dtype is None:
        return torch.float32
    if isinstance(dtype, str):
        if dtype.lower() not in _DTYPES:
            raise ConfigError(f"unknown dtype {dtype!r}; expected float32 or bfloat16")
        dtype = _DTYPES[dtype.lower()]
    if dtype not in (torch.float32, torch.bfloat16):
        raise ConfigError(f"unsupported sampling dtype {dtype}; expected float32 or bfloat16")
    if dtype == torch.bfloat16 and torch.device(device).type != "cuda":
        raise ConfigError("bfloat16 sampling is supported on CUDA devices only; use float32 on "
                          f"{torch.device(device).type}")
    return dtype


def default_strategies(widths: Sequence[int]) -> tuple[str, ...]:
    """Strategy of each stride-2 layer of output ``widths``, as measured fastest
    (experiments/results/bench_sampling*): ``deconv`` for wide layers, ``gemm`` for narrow
    outputs (< 16 channels), on CPU and CUDA alike."""
    return tuple("deconv" if w >= 16 else "gemm" for w in widths)


class _Upsample2x(nn.Module):
    """One folded stride-2 ConvTranspose2d(k=4, s=2, p=1) block: (B, Cin, H, W) NHWC memory ->
    (B, Cout, 2H, 2W) NHWC memory, activation applied in place (or deferred when ``act`` is None)."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor, strategy: str,
                 act: Optional[float]):
        super().__init__()
        if strategy not in STRATEGIES:
            raise ConfigError(f"unknown strategy {strategy!r}; expected one of {', '.join(STRATEGIES)}")
        self.strategy, self.slope = strategy, act
        cin, cout = weight.shape[:2]
        self.cout = cout
        self.register_buffer("bias", bias.clone())
        if strategy == "deconv":
            self.register_buffer("weight", weight.contiguous(memory_format=torch.channels_last))
        else:  # gemm: (Cin, 4 * 4 * Cout), columns ordered (kh, kw, cout)
            self.register_buffer("weight", weight.permute(0, 2, 3, 1).reshape(cin, 16 * cout).contiguous())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        if self.strategy == "deconv":
            out = F.conv_transpose2d(x, self.weight, self.bias, stride=2, padding=1)
        else:
            grid = x.new_empty((b, h, 2, w, 2, self.cout))  # NHWC of the 2x map, phase-split
            self._gemm(x, grid)
            out = grid.view(b, 2 * h, 2 * w, self.cout).permute(0, 3, 1, 2)
        if self.slope is not None:
            F.leaky_relu_(out, self.slope)
        return out

    def _gemm(self, x: torch.Tensor, grid: torch.Tensor) -> None:
        b, cin, h, w = x.shape
        rows = x.permute(0, 2, 3, 1).reshape(b * h * w, cin)
        taps = (rows @ self.weight).view(b, h, w, 4, 4, self.cout)
        for r in (0, 1):
            for s in (0, 1):
                dest = grid[:, :, r, :, s, :]
                # offsets dr, ds in {0, 1} read input row a + r + dr - 1; start with the aligned one
                dest.copy_(taps[:, :, :, _TAPS[r][1 - r], _TAPS[s][1 - s]])
                for dr in (0, 1):
                    for ds in (0, 1):
                        if (dr, ds) == (1 - r, 1 - s):
                            continue
                        rd, rs = _shifted(r + dr - 1, h)
                        cd, cs = _shifted(s + ds - 1, w)
                        dest[:, rd, cd].add_(taps[:, rs, cs, _TAPS[r][dr], _TAPS[s][ds]])
        grid.add_(self.bias)


def _shifted(shift: int, n: int) -> tuple[slice, slice]:
    """(destination, source) slices for ``dest[a] += src[a + shift]`` over a length-n axis."""
    if shift < 0:
        return slice(1, n), slice(0, n - 1)
    if shift > 0:
        return slice(0, n - 1), slice(1, n)
    return slice(0, n), slice(0, n)


def _fold_bn(conv: nn.ConvTranspose2d, bn: Optional[nn.BatchNorm2d]) -> tuple[torch.Tensor, torch.Tensor]:
    """Weight (Cin, Cout, kh, kw) and bias (Cout,) of ``bn(conv(x))`` in eval mode, in float64."""
    weight = conv.weight.detach().double()
    bias = conv.bias.detach().double() if conv.bias is not None else weight.new_zeros(weight.shape[1])
    if bn is not None:
        scale = bn.weight.detach().double() / torch.sqrt(bn.running_var.detach().double() + bn.eps)
        shift = bn.bias.detach().double() - bn.running_mean.detach().double() * scale
        weight = weight * scale[None, :, None, None]
        bias = bias * scale + shift
    return weight, bias


def _blocks(generator: Generator) -> list[tuple[nn.ConvTranspose2d, Optional[nn.BatchNorm2d], Optional[float]]]:
    """(conv, batchnorm or None, LeakyReLU slope or None for tanh) of each generator layer."""
    blocks: list = []
    for m in generator.net:
        if isinstance(m, nn.ConvTranspose2d):
            blocks.append([m, None, None])
        elif isinstance(m, nn.BatchNorm2d) and blocks:
            blocks[-1][1] = m
        elif isinstance(m, nn.LeakyReLU) and blocks:
            blocks[-1][2] = float(m.negative_slope)
        elif not isinstance(m, nn.Tanh):
            raise ConfigError(f"FastGenerator does not support layer {type(m).__name__}")
    first, rest = blocks[0][0], [b[0] for b in blocks[1:]]
    if (first.kernel_size, first.stride, first.padding) != ((4, 4), (1, 1), (0, 0)) or any(
            (c.kernel_size, c.stride, c.padding, c.output_padding, c.dilation, c.groups)
            != ((4, 4), (2, 2), (1, 1), (0, 0), (1, 1), 1) for c in rest):
        raise ConfigError("FastGenerator supports the reference Generator layout only")
    return [tuple(b) for b in blocks]


class FastGenerator(nn.Module):
    """Inference-only ``(z (B, z_dim), labels (B,) int64) -> (B, C, 32, 32) float32 in [-1, 1]``,
    the same function as ``generator.eval()`` (see the module docstring for the rewrites).

    ``device`` defaults to the generator's; ``strategies`` (one per stride-2 layer) default to
    ``default_strategies``. The generator is not modified.
    """

    def __init__(self, generator: Generator, device: Union[str, torch.device, None] = None,
                 dtype: DTypeLike = None, strategies: Optional[Sequence[str]] = None):
        super().__init__()
        self.config = generator.config
        device = torch.device(device) if device is not None else next(generator.parameters()).device
        self.dtype = resolve_dtype(dtype, device)
        blocks = _blocks(generator)
        z_dim = self.config.z_dim
        weight, bias = _fold_bn(blocks[0][0], blocks[0][1])  # (Z+E, C1, 4, 4)
        self.c1 = weight.shape[1]
        self.slope1 = blocks[0][2]
        lin = weight.permute(0, 2, 3, 1).reshape(weight.shape[0], 16 * self.c1)  # NHWC columns
        table = generator.embed.weight.detach().double() @ lin[z_dim:] + bias.repeat(16)
        self.register_buffer("w_z", lin[:z_dim].contiguous())
        self.register_buffer("table", table.contiguous())
        widths = [b[0].weight.shape[1] for b in blocks[1:]]
        strategies = tuple(strategies) if strategies is not None else default_strategies(widths)
        if len(strategies) != len(widths):
            raise ConfigError(f"need {len(widths)} strategies (one per stride-2 layer), got {len(strategies)}")
        self.strategies = strategies
        self.layers = nn.ModuleList(
            _Upsample2x(*_fold_bn(conv, bn), strategy, slope)
            for (conv, bn, slope), strategy in zip(blocks[1:], strategies))
        self.to(device=device, dtype=self.dtype)
        self.eval()

    @property
    def device(self) -> torch.device:
        return self.w_z.device

    def forward(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            pre = self._pre_tanh(z, labels)
        with torch.no_grad():  # outside inference mode: the result is an ordinary tensor
            images = torch.tanh(pre.float() if pre.dtype != torch.float32 else pre)
            return images.contiguous()

    def _pre_tanh(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        b = z.shape[0]
        z = z.to(device=self.device, dtype=self.dtype)
        labels = labels.to(device=self.device)
        h = torch.addmm(self.table.index_select(0, labels), z, self.w_z)
        h = h.view(b, 4, 4, self.c1).permute(0, 3, 1, 2)  # NCHW view of NHWC memory
        if self.slope1 is not None:
            F.leaky_relu_(h, self.slope1)
        for layer in self.layers:
            h = layer(h)
        return h

    def extra_repr(self) -> str:
        return f"dtype={self.dtype}, strategies={self.strategies}"


def plain_forward(generator: Generator, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The reference: ``generator`` in eval mode under inference_mode (mode restored after)."""
    was_training = generator.training
    generator.eval()
    try:
        with torch.inference_mode():
            return generator(z, labels)
    finally:
        generator.train(was_training)
