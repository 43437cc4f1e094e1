"""Per-index latents and labels: pure functions of (seed, index), no RNG state.

Latents. The latent of item ``i`` is a pure function of ``(seed, i)``: 64-bit words
``w(seed, i, c) = mix(mix(mix(seed) + i*G) + mix(c*G + S))`` (``mix`` = splitmix64's finalizer,
``G`` = 0x9E3779B97F4A7C15, all mod 2^64) for column counters ``c``, computed in torch int64
arithmetic; two words give two uniforms in (0, 1] (top 53 bits) and Box-Muller turns them into
components ``2p`` and ``2p + 1``. The logarithm, sine and cosine are evaluated with polynomials
in float64 using only correctly rounded operations (+, -, *, /, sqrt, frexp), so a latent has
the same bits whatever the batch, its position in it or the SIMD width (and, by construction,
the device: CPU and CUDA agree). No global RNG state is touched.

Labels. ``label(i)`` is the i-th seat of a Sainte-Lague (Webster) apportionment sequence over
the class weights: class c's k-th item sits at key ``(k + 0.5) / w_c``, items are ordered by key
(ties by class order). Equal weights (the default) give ``classes[i % K]``, so N items are
exactly balanced when N is a multiple of K; integer weights summing to N give exactly those
counts; any prefix is within about one item per class of its share. ``targets`` is computed
without running the generator.

Truncation (fidelity vs diversity). With ``truncation=t`` every latent component with |z| > t
is redrawn from the next counter round (``"resample"``, a normal truncated to [-t, t]; after 64
rounds any remainder is clamped) or clamped to +-t (``"clamp"``). Smaller t: more typical,
less varied images.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence

import torch


_M64 = (1 << 64) - 1


# ------------------------------------------------------------------------------ counter RNG


def _signed(x: int) -> int:
    x &= _M64
    return x - (1 << 64) if x >> 63 else x


_GOLDEN, _MIX1, _MIX2 = 0x9E3779B97F4A7C15, 0xBF58476D1CE4E5B9, 0x94D049BB133111EB
_SALT = 0x5851F42D4C957F2D
_ROUND_SHIFT = 1 << 24  # column counter c = 2 * (round * 2^24 + pair) + which
_MAX_ROUNDS = 64


def splitmix64(x: int) -> int:
    """splitmix64's finalizer on a Python int (mod 2^64); the reference of ``_mix``."""
    x &= _M64
    x = ((x ^ (x >> 30)) * _MIX1) & _M64
    x = ((x ^ (x >> 27)) * _MIX2) & _M64
    return x ^ (x >> 31)


def _srl(x: torch.Tensor, k: int) -> torch.Tensor:  # logical shift right of int64
    return (x >> k) & ((1 << (64 - k)) - 1)


def _mix(x: torch.Tensor) -> torch.Tensor:
    x = (x ^ _srl(x, 30)) * _signed(_MIX1)
    x = (x ^ _srl(x, 27)) * _signed(_MIX2)
    return x ^ _srl(x, 31)


def _row_keys(seed: int, indices: torch.Tensor) -> torch.Tensor:
    return _mix(indices * _signed(_GOLDEN) + _signed(splitmix64(seed)))


def _uniform(row_keys: torch.Tensor, counters: torch.Tensor) -> torch.Tensor:
    """float64 uniforms in (0, 1] of (row, counter) pairs (broadcast)."""
    col = _mix(counters * _signed(_GOLDEN) + _signed(_SALT))
    word = _mix(row_keys + col)
    return (_srl(word, 11) + 1).double() * 2.0 ** -53


_LOG_COEF = [1.0 / (2 * k + 1) for k in range(11)]
_SIN_COEF = [(-1) ** k * (math.pi / 2) ** (2 * k + 1) / math.factorial(2 * k + 1) for k in range(9)]
_COS_COEF = [(-1) ** k * (math.pi / 2) ** (2 * k) / math.factorial(2 * k) for k in range(10)]


def _poly(x2: torch.Tensor, coef: Sequence[float]) -> torch.Tensor:
    p = torch.full_like(x2, coef[-1])
    for c in reversed(coef[:-1]):
        p = p * x2 + c
    return p


def _log(u: torch.Tensor) -> torch.Tensor:
    """ln u for float64 u > 0: u = m 2^e, m in [sqrt(1/2), sqrt(2)), ln m = 2 atanh((m-1)/(m+1))."""
    m, e = torch.frexp(u)
    small = m < math.sqrt(0.5)
    m = torch.where(small, m * 2.0, m)
    e = (e - small.to(e.dtype)).double()
    s = (m - 1.0) / (m + 1.0)
    return e * math.log(2.0) + (s * 2.0) * _poly(s * s, _LOG_COEF)


def _cos_sin_2pi(u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """cos(2 pi u), sin(2 pi u) for float64 u: quadrant n = round(4u), x = 4u - n in [-1/2, 1/2]."""
    t = u * 4.0
    n = torch.round(t)
    x = t - n
    x2 = x * x
    c, s = _poly(x2, _COS_COEF), x * _poly(x2, _SIN_COEF)
    q = n.long() % 4
    swap = (q % 2) == 1
    cos_t, sin_t = torch.where(swap, s, c), torch.where(swap, c, s)
    cos_t = torch.where((q == 1) | (q == 2), -cos_t, cos_t)
    sin_t = torch.where(q >= 2, -sin_t, sin_t)
    return cos_t, sin_t


def _normals(row_keys: torch.Tensor, pairs: torch.Tensor, parity: torch.Tensor,
             rounds: torch.Tensor) -> torch.Tensor:
    """Component ``2 * pair + parity`` (Box-Muller) of counter round ``rounds``, float64."""
    base = (rounds * _ROUND_SHIFT + pairs) * 2
    radius = torch.sqrt(_log(_uniform(row_keys, base)) * -2.0)
    cos_t, sin_t = _cos_sin_2pi(_uniform(row_keys, base + 1))
    return radius * torch.where(parity == 1, sin_t, cos_t)


def index_latents(seed: int, indices: torch.Tensor, z_dim: int, truncation: Optional[float] = None,
                  mode: str = "resample") -> torch.Tensor:
    """Latents ``(len(indices), z_dim)`` float32 on ``indices``' device: row k depends only on
    ``(seed, indices[k])`` (see the module docstring); ``truncation`` and ``mode`` ("resample" or
    "clamp") as there, checked by ``SamplingOptions``; ``z_dim`` < 2**24 (``ModelConfig``: <= 4096)."""
    indices = torch.as_tensor(indices, dtype=torch.long)
    rows = _row_keys(int(seed), indices)[:, None]
    cols = torch.arange(z_dim, device=indices.device)
    z = _normals(rows, cols // 2, cols % 2, torch.zeros_like(cols))
    if truncation is not None:
        if mode == "clamp":
            z = z.clamp(-truncation, truncation)
        else:
            z = _resample_tails(z, rows, cols, float(truncation))
    return z.float()


def _resample_tails(z: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor, t: float) -> torch.Tensor:
    far = (z.abs() > t).nonzero()
    for round_ in range(1, _MAX_ROUNDS + 1):
        if len(far) == 0:
            return z
        r, c = far[:, 0], cols[far[:, 1]]
        values = _normals(rows[r, 0], c // 2, c % 2, torch.full_like(c, round_))
        z[r, far[:, 1]] = values
        far = far[values.abs() > t]
    return z.clamp(-t, t)


def stratified_labels(num_samples: int, classes: Sequence[int],
                      weights: Optional[Sequence[float]] = None) -> torch.Tensor:
    """Labels ``(num_samples,)`` int64: the Sainte-Lague seat sequence of ``weights`` over
    ``classes`` (module docstring); equal weights give ``classes[i % len(classes)]``."""
    classes = list(classes)
    if weights is None:
        return torch.tensor(classes, dtype=torch.long).repeat(-(-num_samples // len(classes)))[:num_samples]
    w = torch.tensor([float(x) for x in weights], dtype=torch.float64)
    share = (w / w.max()) / float((w / w.max()).sum())  # of each class; finite even for weights near 1e308
    keys, owners = [], []
    for pos, (wc, sc) in enumerate(zip(w.tolist(), share.tolist())):
        if wc <= 0:
            continue
        # the first num_samples seats hold at most num_samples * share + K / 2 + 1 of class c
        k = torch.arange(math.ceil(num_samples * sc) + len(classes) + 2, dtype=torch.float64)
        keys.append((k + 0.5) / wc)
        owners.append(torch.full(k.shape, pos, dtype=torch.long))
    order = torch.sort(torch.cat(keys), stable=True).indices[:num_samples]
    return torch.tensor(classes, dtype=torch.long)[torch.cat(owners)[order]]
