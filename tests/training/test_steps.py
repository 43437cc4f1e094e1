"""The step implementations compute one function: eager, batched, explicit penalty (compiled or not)."""

import copy
import shutil
import warnings

import pytest
import torch

from augment.config import ModelConfig, TrainConfig
from augment.data.idx import encode_idx
from augment.gan.models import Generator
from augment.training import steps
from augment.training.steps import CompiledOrPlain, FastStepFallback, Step, per_group_batch_norm
from augment.training.trainer import Trainer

TINY = ModelConfig(z_dim=8, embed_dim=4, g_width=8, d_width=8)


@pytest.fixture(scope="module")
def idx_dir(tmp_path_factory):
    """48 random 28x28 'digits' with labels 0..9 as an IDX train split (and a test split of 10,
    so that training uses all 48: a train split alone would be held out from)."""
    d = tmp_path_factory.mktemp("idx")
    gen = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (48, 28, 28), generator=gen, dtype=torch.uint8)
    labels = (torch.arange(48) % 10).to(torch.uint8)
    for prefix, n in (("train", 48), ("t10k", 10)):
        (d / f"{prefix}-images-idx3-ubyte").write_bytes(encode_idx(images[:n]))
        (d / f"{prefix}-labels-idx1-ubyte").write_bytes(encode_idx(labels[:n]))
    return d


def config(idx_dir, **kw) -> TrainConfig:
    base = dict(model=TINY, dataset="idx", data_dir=str(idx_dir), batch_size=8, n_critic=3,
                device="cpu", seed=3, tensorboard=False)
    return TrainConfig(**{**base, **kw})


def in_float64(trainer: Trainer) -> Trainer:
    """The trainer's models and data in float64 (before any step), so that rounding noise stays
    far below the test's tolerance: the biases just before BatchNorm/InstanceNorm have an exactly
    zero true gradient, and Adam turns their float32 rounding noise into updates of up to lr."""
    trainer.G.double(), trainer.D.double()
    trainer.real = trainer.real.double()
    return trainer


def full_state(trainer: Trainer) -> dict:
    """Parameters and buffers of G and D, and both optimizers' moments."""
    state = {f"G.{k}": v for k, v in trainer.G.state_dict().items()}
    state.update({f"D.{k}": v for k, v in trainer.D.state_dict().items()})
    for name, opt in (("opt_g", trainer.opt_g), ("opt_d", trainer.opt_d)):
        for i, s in enumerate(opt.state_dict()["state"].values()):
            state.update({f"{name}.{i}.{k}": torch.as_tensor(v) for k, v in s.items()})
    return state


def assert_same_state(a: Trainer, b: Trainer) -> None:
    sa, sb = full_state(a), full_state(b)
    assert sa.keys() == sb.keys()
    for k in sa:
        if sa[k].is_floating_point():
            torch.testing.assert_close(sa[k], sb[k], rtol=1e-7, atol=1e-9, msg=lambda m: f"{k}: {m}")
        else:
            assert torch.equal(sa[k], sb[k]), k


@pytest.mark.parametrize("real_batches,critic_augment", [
    ("fresh", "none"), ("shared", "none"), ("fresh", "translation,cutout"), ("shared", "translation,cutout")])
def test_fast_step_equals_eager_step(idx_dir, real_batches, critic_augment):
    kw = dict(real_batches=real_batches, critic_augment=critic_augment)
    eager = in_float64(Trainer(config(idx_dir, **kw)))
    fast = in_float64(Trainer(config(idx_dir, step_impl="fast", **kw)))
    assert_same_state(eager, fast)  # same seeded initialisation
    for step in range(3):  # 3 * 3 batches of 8 in fresh mode: crosses the 6-batch epoch
        stats_e, stats_f = eager.step(), fast.step()
        assert set(stats_f) == {"loss_d", "gp", "wasserstein", "loss_g"}
        for k, v in stats_f.items():
            assert v.dim() == 0 and not v.requires_grad
            torch.testing.assert_close(v, stats_e[k], rtol=1e-7, atol=1e-9)
        assert_same_state(eager, fast)
    assert fast.noise.get_state().equal(eager.noise.get_state())  # same randomness consumed
    for opt in (fast.opt_d, fast.opt_g):  # fused Adam only while the step runs
        assert opt.param_groups[0]["fused"] is None and opt.param_groups[0]["capturable"] is False
    bn = fast.G.net[1]
    assert int(bn.num_batches_tracked) == 3 * (3 + 1)  # n_critic + 1 BatchNorm updates a step
    assert not bn.running_mean.equal(torch.zeros_like(bn.running_mean))


def test_fast_step_equals_eager_step_in_float32(idx_dir):
    """In float32 the models (as functions) agree; parameters that normalisation makes
    redundant (biases just before BatchNorm/InstanceNorm) drift by rounding noise x lr, exactly
    as two eager runs with different thread counts do."""
    eager = Trainer(config(idx_dir, real_batches="shared"))
    fast = Trainer(config(idx_dir, real_batches="shared", step_impl="fast"))
    for _ in range(2):
        eager.step(), fast.step()
    gen = torch.Generator().manual_seed(7)
    z, labels = torch.randn(16, TINY.z_dim, generator=gen), torch.arange(16) % 10
    with torch.no_grad():
        images = [t.G(z, labels) for t in (eager, fast)]  # train mode: batch statistics
        scores = [t.D(images[0], labels) for t in (eager, fast)]
    torch.testing.assert_close(images[1], images[0], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(scores[1], scores[0], rtol=1e-4, atol=1e-5)


def test_fast_step_resumes_like_eager(idx_dir):
    """A fast trainer loaded from an eager trainer's state continues as the eager one does."""
    eager = in_float64(Trainer(config(idx_dir)))
    fast = in_float64(Trainer(config(idx_dir, step_impl="fast")))
    eager.step(), fast.step(), fast.step()  # fast is now a step ahead; the load rewinds it
    fast.load_state_dict(copy.deepcopy(eager.state_dict()))  # Adam's load aliases tensors
    eager.step(), fast.step()
    assert_same_state(eager, fast)


def test_per_group_batch_norm_equals_separate_forwards():
    cfg = ModelConfig(z_dim=8, embed_dim=4, g_width=8, d_width=8)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        a, b = Generator(cfg), Generator(cfg)
    b.load_state_dict(a.state_dict())
    gen = torch.Generator().manual_seed(1)
    z = torch.randn(3, 5, cfg.z_dim, generator=gen)
    labels = torch.randint(0, 10, (3, 5), generator=gen)
    with torch.no_grad():
        separate = torch.cat([a(z[i], labels[i]) for i in range(3)])
        with per_group_batch_norm(b, 3):
            grouped = b(z.reshape(15, -1), labels.reshape(-1))
        whole = b(z.reshape(15, -1), labels.reshape(-1))  # patch removed: one group of 15
    torch.testing.assert_close(grouped, separate, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(whole, separate, atol=1e-3)
    for (k, va), vb in zip(a.state_dict().items(), b.state_dict().values()):
        if k.endswith("num_batches_tracked"):
            assert int(va) == 3 and int(vb) == 4, k
        elif "running" not in k:
            assert torch.equal(va, vb), k
    assert "forward" not in b.net[1].__dict__


def test_each_step_impl_runs_the_step_it_names_on_a_cpu(idx_dir):
    """On a CPU the batched step measured no faster than the eager one
    (experiments/results/bench_train.md), so 'auto' runs the eager step there, silently; 'fast'
    selects the batched one, 'explicit-gp' the batched one with the explicit penalty."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        impls = {impl: Trainer(config(idx_dir, step_impl=impl)).step_fn
                 for impl in ("auto", "eager", "fast", "explicit-gp")}
    assert all(isinstance(fn, Step) for fn in impls.values())
    assert [impls[k].batched for k in ("auto", "eager", "fast", "explicit-gp")] == [False, False, True, True]
    assert impls["explicit-gp"].critic is steps.explicit_critic_terms and impls["fast"].critic is steps.critic_terms
    assert impls["eager"].critic is steps.eager_critic_terms


@pytest.mark.parametrize("real_batches,critic_augment",
                         [("fresh", "none"), ("shared", "none"), ("fresh", "translation,cutout")])
def test_the_explicit_step_equals_the_eager_step_in_float64(idx_dir, real_batches, critic_augment):
    kw = dict(real_batches=real_batches, critic_augment=critic_augment)
    eager = in_float64(Trainer(config(idx_dir, **kw)))
    explicit = in_float64(Trainer(config(idx_dir, step_impl="explicit-gp", **kw)))
    for _ in range(3):
        stats_e, stats_x = eager.step(), explicit.step()
        for k, v in stats_x.items():
            torch.testing.assert_close(v, stats_e[k], rtol=1e-7, atol=1e-9)
        assert_same_state(eager, explicit)
    assert explicit.noise.get_state().equal(eager.noise.get_state())


@pytest.mark.skipif(shutil.which("c++") is None and shutil.which("g++") is None,
                    reason="torch.compile's CPU backend needs a C++ compiler")
def test_the_compiled_explicit_step_equals_the_eager_step(idx_dir):
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

    monkeypatch.setattr(steps.torch, "compile", lambda fn, dynamic=False: Broken())
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

    monkeypatch.setattr(steps.torch, "compile", lambda fn, dynamic=False: Wrong())
    with pytest.raises(RuntimeError, match="shape mismatch"):
        CompiledOrPlain(lambda x: x)(1)


def test_an_error_of_the_step_itself_is_not_swallowed(monkeypatch):
    class Broken:
        def __call__(self, *args):
            raise ValueError("shapes do not match")

    monkeypatch.setattr(steps.torch, "compile", lambda fn, dynamic=False: Broken())
    with pytest.raises(ValueError, match="shapes"):
        CompiledOrPlain(lambda x: x)(1)
