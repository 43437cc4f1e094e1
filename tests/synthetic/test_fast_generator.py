"""FastGenerator computes the same function as the plain Generator in eval mode."""

from __future__ import annotations

import pytest
import torch

from augment.config import ModelConfig
from augment.errors import ConfigError
from augment.gan.models import Generator
from augment.synthetic.fast_generator import (
    STRATEGIES,
    FastGenerator,
    default_strategies,
    plain_forward,
)

TINY = ModelConfig(z_dim=8, embed_dim=4, g_width=8, d_width=8)


def make_generator(cfg: ModelConfig, seed: int = 0) -> Generator:
    """A generator with random weights and non-trivial BatchNorm statistics."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        g = Generator(cfg)
        for m in g.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.data.uniform_(0.5, 1.5)
                m.bias.data.normal_(0, 0.2)
    return g


def inputs(cfg: ModelConfig, n: int, seed: int = 1):
    gen = torch.Generator().manual_seed(seed)
    return (torch.randn(n, cfg.z_dim, generator=gen),
            torch.randint(0, cfg.num_classes, (n,), generator=gen))


@pytest.mark.parametrize("strategies", [(s, s, s) for s in STRATEGIES] + [
    ("deconv", "gemm", "gemm"), ("gemm", "deconv", "gemm"), ("gemm", "gemm", "deconv")])
def test_every_strategy_matches_plain_generator(strategies):
    g = make_generator(TINY)
    z, y = inputs(TINY, 9)
    expected = plain_forward(g, z, y)
    got = FastGenerator(g, strategies=strategies)(z, y)
    assert got.shape == expected.shape == (9, 1, 32, 32)
    torch.testing.assert_close(got, expected, atol=2e-6, rtol=0)


@pytest.mark.parametrize("cfg", [ModelConfig(), ModelConfig(channels=3, g_width=16, embed_dim=3, z_dim=5)])
@pytest.mark.parametrize("wide", STRATEGIES)
def test_wider_models_match(cfg, wide):
    g = make_generator(cfg)
    z, y = inputs(cfg, 3)
    expected = plain_forward(g, z, y)
    got = FastGenerator(g, strategies=(wide, wide, "gemm"))(z, y)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)
    assert got.is_contiguous()


def test_default_strategies_and_output_kind():
    g = make_generator(ModelConfig(g_width=16))
    fast = FastGenerator(g)
    assert fast.strategies == default_strategies([32, 16, 1]) == ("deconv", "deconv", "gemm")
    z, y = inputs(fast.config, 4)
    out = fast(z, y)
    assert out.dtype == torch.float32 and not out.requires_grad
    assert not out.is_inference()  # usable as an input to autograd
    assert float(out.abs().max()) <= 1.0
    (torch.nn.Linear(1024, 1)(out.flatten(1))).sum().backward()


def test_uses_running_statistics_and_leaves_generator_untouched():
    g = make_generator(TINY)
    g.train()
    before = {k: v.clone() for k, v in g.state_dict().items()}
    fast = FastGenerator(g)
    z, y = inputs(TINY, 5)
    torch.testing.assert_close(fast(z, y), plain_forward(g, z, y), atol=2e-6, rtol=0)
    assert g.training  # plain_forward restores the mode
    for k, v in g.state_dict().items():
        assert torch.equal(v, before[k])


def test_samples_are_independent_of_their_batch():
    fast = FastGenerator(make_generator(TINY))
    z, y = inputs(TINY, 64)
    full = fast(z, y)
    perm = torch.randperm(64, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(fast(z[perm], y[perm]), full[perm], atol=1e-6, rtol=0)


def test_no_global_rng_use():
    state = torch.random.get_rng_state()
    fast = FastGenerator(make_generator(TINY))
    fast(*inputs(TINY, 3))
    assert torch.equal(state, torch.random.get_rng_state())


def test_bad_arguments():
    g = make_generator(TINY)
    with pytest.raises(ConfigError, match="CUDA"):
        FastGenerator(g, dtype="bf16")
    with pytest.raises(ConfigError, match="unknown dtype"):
        FastGenerator(g, dtype="float16x")
    with pytest.raises(ConfigError, match="unsupported"):
        FastGenerator(g, dtype=torch.float16)
    with pytest.raises(ConfigError, match="unknown strategy"):
        FastGenerator(g, strategies=("deconv", "phase", "gemm"))
    with pytest.raises(ConfigError, match="3 strategies"):
        FastGenerator(g, strategies=("deconv",))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_float32_and_bfloat16():
    g = make_generator(ModelConfig())
    z, y = inputs(g.config, 256)
    expected = plain_forward(g, z, y)
    for strategies in (None, ("gemm", "gemm", "gemm"), ("deconv", "deconv", "deconv")):
        fast = FastGenerator(g, device="cuda", strategies=strategies)
        torch.testing.assert_close(fast(z, y).cpu(), expected, atol=1e-3, rtol=0)  # TF32 allowed
        fast16 = FastGenerator(g, device="cuda", dtype="bf16", strategies=strategies)
        out = fast16(z, y)
        assert out.dtype == torch.float32
        assert float((out.cpu() - expected).abs().mean()) < 0.02
