"""The explicit-penalty step (step_impl='explicit-gp') computes the eager step's function, with
and without torch.compile, and falls back cleanly where compilation is unavailable."""

import shutil
import warnings

import pytest
import torch

from augment.training import explicit_step
from augment.training.batched_step import FastStepFallback
from augment.training.explicit_step import CompiledOrPlain, ExplicitGPStep
from augment.training.trainer import Trainer
from tests.training.test_batched_step import assert_same_state, config, idx_dir, in_float64  # noqa: F401


@pytest.mark.parametrize("real_batches,critic_augment",
                         [("fresh", "none"), ("shared", "none"), ("fresh", "translation,cutout")])
def test_the_explicit_step_equals_the_eager_step_in_float64(idx_dir, real_batches, critic_augment):  # noqa: F811
    kw = dict(real_batches=real_batches, critic_augment=critic_augment)
    eager = in_float64(Trainer(config(idx_dir, **kw)))
    explicit = in_float64(Trainer(config(idx_dir, step_impl="explicit-gp", **kw)))
    assert isinstance(explicit.step_fn, ExplicitGPStep)
    for _ in range(3):
        stats_e, stats_x = eager.step(), explicit.step()
        for k, v in stats_x.items():
            torch.testing.assert_close(v, stats_e[k], rtol=1e-7, atol=1e-9)
        assert_same_state(eager, explicit)
    assert explicit.noise.get_state().equal(eager.noise.get_state())


@pytest.mark.skipif(shutil.which("c++") is None and shutil.which("g++") is None,
                    reason="torch.compile's CPU backend needs a C++ compiler")
def test_the_compiled_explicit_step_equals_the_eager_step(idx_dir):  # noqa: F811
    """torch.compile (inductor on the CPU) of the critic's and generator's updates: the same
    function, in float32 to the rounding of another kernel order."""
    eager = Trainer(config(idx_dir, real_batches="shared"))
    compiled = Trainer(config(idx_dir, real_batches="shared", step_impl="explicit-gp", compile_step=True))
    with warnings.catch_warnings():
        warnings.simplefilter("error", FastStepFallback)  # compiled here, no fallback
        stats_c = compiled.step()
    stats_e = eager.step()
    for k, v in stats_c.items():
        torch.testing.assert_close(v, stats_e[k], rtol=1e-4, atol=1e-5)
    gen = torch.Generator().manual_seed(7)
    z, labels = torch.randn(16, 8, generator=gen), torch.arange(16) % 10
    with torch.no_grad():
        torch.testing.assert_close(compiled.G(z, labels), eager.G(z, labels), rtol=1e-3, atol=1e-4)


def test_a_failing_compilation_falls_back_once_with_a_warning(monkeypatch):
    calls = []

    def plain(x):
        calls.append(x)
        return x + 1

    class Broken:
        def __call__(self, *args):
            raise torch._inductor.exc.InvalidCxxCompiler()

    monkeypatch.setattr(explicit_step.torch, "compile", lambda fn, dynamic=False: Broken())
    wrapped = CompiledOrPlain(plain)
    with pytest.warns(FastStepFallback, match="runs plain uncompiled"):
        assert wrapped(1) == 2
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert wrapped(2) == 3  # once: no second warning
    assert calls == [1, 2]


def test_an_error_of_the_step_itself_is_not_taken_for_a_compile_failure(monkeypatch):
    class Wrong:
        def __call__(self, *args):
            raise RuntimeError("shape mismatch (no 'compile' in sight)... or even torch.compile mentioned")

    monkeypatch.setattr(explicit_step.torch, "compile", lambda fn, dynamic=False: Wrong())
    with pytest.raises(RuntimeError, match="shape mismatch"):
        CompiledOrPlain(lambda x: x)(1)


def test_an_error_of_the_step_itself_is_not_swallowed(monkeypatch):
    class Broken:
        def __call__(self, *args):
            raise ValueError("shapes do not match")

    monkeypatch.setattr(explicit_step.torch, "compile", lambda fn, dynamic=False: Broken())
    with pytest.raises(ValueError, match="shapes"):
        CompiledOrPlain(lambda x: x)(1)
