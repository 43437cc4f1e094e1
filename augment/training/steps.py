"""One generator step, written once (``training_step``), and the ways to run it (``Step``; the trainer picks one).

A generator step is ``n_critic`` critic updates and one generator update
(``augment.training.updates``). The implementations compute the same function and differ only in how:

* **eager** (``step_impl='eager'``, and 'auto' on a CPU): the fakes of each critic update come from
  their own generator forward, real and fake are scored in separate forwards, Adam runs its default
  (for-each) kernels: the reference, op by op.
* **batched** ('fast' off CUDA graphs): the generator does not change during the critic updates, so
  ONE forward of ``n_critic * B`` latents makes all their fakes; inside it every BatchNorm normalises
  each group of B with that group's own statistics and updates its running statistics once per group,
  in order (``per_group_batch_norm``), exactly as separate forwards do. Adam runs fused while the
  step runs (flags restored after it, so checkpoints look like eager ones).
* **explicit penalty** ('explicit-gp'): batched, with the penalty's input gradient written out
  (``augment.gan.critic_gradient``): one backward per critic update instead of a double backward,
  and with ``compile_step`` both updates' terms go through ``torch.compile`` (``CompiledOrPlain``).
* **CUDA graph** ('fast' and 'auto' on CUDA): the batched step captured once and replayed
  (``augment.training.cuda_graph``).

``Trainer`` picks one by ``step_impl`` and device (``augment.training.trainer.build_step``).

All randomness is drawn by the trainer before the step (``Trainer.draw_noise``), real batches are
indices (``Trainer.real_indices``), so every implementation consumes the same stream.
"""

from __future__ import annotations

import contextlib
import warnings
from typing import Callable, Iterator, Optional

import torch
import torch._dynamo.exc
import torch._inductor.exc
from torch import nn

from augment.errors import one_line
from augment.gan import diffaugment
from augment.gan.critic_gradient import explicit_input_gradient
from augment.training.updates import (
    CriticTerms,
    GeneratorTerms,
    StepParts,
    critic_terms,
    critic_update,
    critic_view,
    generator_terms,
    generator_update,
)

FUSED_ADAM_DEVICES = ("cpu", "cuda")
_BATCH_NORM = nn.modules.batchnorm._BatchNorm


class FastStepFallback(UserWarning):
    """The step could not use its fastest path and runs a slower one (same function)."""


def training_step(parts: StepParts, noise: dict, indices: torch.Tensor, batched: bool = False,
                  critic: CriticTerms = critic_terms, generator: GeneratorTerms = generator_terms,
                  update_generator: bool = True) -> dict:
    """One generator step on ``parts`` from its ``noise`` (``Trainer.draw_noise``) and real-batch
    ``indices`` (n_critic, B) (``Trainer.real_indices``). ``batched`` makes the fakes in one forward;
    ``critic``/``generator`` compute the updates' terms (plain, explicit-penalty or compiled).
    Without ``update_generator`` (the critic warm-up) the generator's loss is measured, not descended.
    Returns detached scalars: the last critic update's statistics and the generator update's."""
    n, b = indices.shape
    labels = parts.labels.index_select(0, indices.reshape(-1))  # (n * B,)
    # the fakes of the n critic updates (the generator is fixed meanwhile)
    with torch.no_grad():
        z = noise["z_critic"].reshape(n * b, -1)
        if batched:
            with per_group_batch_norm(parts.G, n):
                fakes = parts.G(z, labels)
        else:
            fakes = torch.cat([parts.G(z_i, y_i) for z_i, y_i in zip(z.split(b), labels.split(b))])
    # n critic updates, each on its real batch and its fakes, as the critic sees them
    real = parts.real.index_select(0, indices[0])
    for i in range(n):
        if i > 0 and not parts.shared_batches:
            real = parts.real.index_select(0, indices[i])
        real_i = critic_view(parts.critic_augment, real, diffaugment.row(noise.get("aug_real"), i))
        fake_i = critic_view(parts.critic_augment, fakes[i * b:(i + 1) * b],
                             diffaugment.row(noise.get("aug_fake"), i))
        stats = critic_update(parts, real_i, fake_i, labels[i * b:(i + 1) * b], noise["alpha"][i], critic)
    # one generator update, for the labels of the last real batch
    last = labels[(n - 1) * b:]
    if update_generator:
        stats.update(generator_update(parts, last, noise["z_gen"], noise.get("aug_gen"), generator))
    else:
        with torch.no_grad():
            stats.update(generator(parts.G, parts.D, noise["z_gen"], last, noise.get("aug_gen"), parts.critic_augment))
    return stats


@contextlib.contextmanager
def per_group_batch_norm(module: nn.Module, groups: int) -> Iterator[None]:
    """Within the block, each BatchNorm of ``module`` splits its input (groups * B, ...) into
    ``groups`` consecutive slices and runs its own forward on each in turn, so a forward of the
    concatenation equals (outputs and running statistics) ``groups`` forwards of the slices,
    provided every other layer treats samples independently (true of ``augment.gan.models``)."""
    norms = [m for m in module.modules() if isinstance(m, _BATCH_NORM)]
    if groups == 1 or not norms:
        yield
        return
    for m in norms:
        m.forward = _grouped(m.forward, groups)  # an instance attribute shadows the method
    try:
        yield
    finally:
        for m in norms:
            del m.forward


def _grouped(forward: Callable[[torch.Tensor], torch.Tensor], groups: int):
    def grouped_forward(x: torch.Tensor) -> torch.Tensor:  # x: (groups * B, ...)
        return torch.cat([forward(chunk) for chunk in x.chunk(groups)])
    return grouped_forward


@contextlib.contextmanager
def adam_flags(optimizers, fused: bool, capturable: bool) -> Iterator[None]:
    """Adam param groups set fused and/or capturable for the block, restored afterwards (the
    flags only matter while ``step()`` runs; restoring them keeps checkpoints CPU-loadable)."""
    keys = ("capturable", "fused", "foreach")
    saved = [[{k: g.get(k) for k in keys} for g in opt.param_groups] for opt in optimizers]
    for opt in optimizers:
        for g in opt.param_groups:
            g["capturable"] = g.get("capturable") or capturable
            if fused:
                g["fused"], g["foreach"] = True, False
    try:
        yield
    finally:
        for opt, groups in zip(optimizers, saved):
            for g, flags in zip(opt.param_groups, groups):
                g.update(flags)


def eager_critic_terms(D: nn.Module, real: torch.Tensor, fake: torch.Tensor, labels: torch.Tensor,
                       alpha: torch.Tensor, gp_weight: float) -> dict:
    """``critic_terms`` op by op, as the reference computes it: real and fake scored in two forwards."""
    return critic_terms(D, real, fake, labels, alpha, gp_weight, one_forward=False)


def explicit_critic_terms(D: nn.Module, real: torch.Tensor, fake: torch.Tensor, labels: torch.Tensor,
                          alpha: torch.Tensor, gp_weight: float) -> dict:
    """``critic_terms`` with the penalty's input gradient written out (one backward)."""
    return critic_terms(D, real, fake, labels, alpha, gp_weight, explicit_input_gradient)


class Step:
    """Callable: one generator step of ``trainer`` (eager, batched or explicit-penalty, optionally
    compiled), returning detached scalar statistics; ``update_generator=False`` for the critic warm-up."""

    def __init__(self, trainer, batched: bool, explicit_gp: bool = False, compile_step: bool = False):
        self.trainer, self.batched = trainer, batched
        self.fused_adam = batched and trainer.device.type in FUSED_ADAM_DEVICES
        critic = explicit_critic_terms if explicit_gp else critic_terms if batched else eager_critic_terms
        self.critic = CompiledOrPlain(critic) if compile_step else critic
        self.generator = CompiledOrPlain(generator_terms) if compile_step else generator_terms

    def __call__(self, update_generator: bool = True) -> dict:
        t = self.trainer
        noise, indices = t.draw_noise(), t.real_indices()
        with adam_flags((t.opt_d, t.opt_g), self.fused_adam, capturable=False):
            return training_step(t.step_parts(), noise, indices, self.batched, self.critic, self.generator,
                                 update_generator)


class CompiledOrPlain:
    """``torch.compile(fn)``, or ``fn`` itself from the first call on where compilation fails
    (then one ``FastStepFallback`` warning). A failed compilation runs nothing, so the call is
    made again, uncompiled, with the same arguments."""

    def __init__(self, fn: Callable):
        self.fn, self.compiled = fn, torch.compile(fn, dynamic=False)

    def __call__(self, *args):
        if self.compiled is None:
            return self.fn(*args)
        try:
            return self.compiled(*args)
        except Exception as e:
            if not is_compile_failure(e):
                raise
            warnings.warn(f"torch.compile is unavailable here ({type(e).__name__}: {one_line(e)[:160]}); "
                          f"the step runs {self.fn.__name__} uncompiled (same function)",
                          FastStepFallback, stacklevel=2)
            self.compiled = None
            return self.fn(*args)


# what torch.compile raises when it cannot compile (dynamo's and inductor's errors; a C++ or
# Triton toolchain missing or failing), as opposed to an error of the step's own maths
COMPILE_ERRORS = (torch._dynamo.exc.TorchDynamoException, torch._inductor.exc.InductorError,
                  torch._inductor.exc.CppCompileError, torch._inductor.exc.InvalidCxxCompiler)


def is_compile_failure(error: Optional[BaseException]) -> bool:
    """Whether ``error`` came from torch.compile's machinery, by its type (or its cause's)."""
    while error is not None:
        if isinstance(error, COMPILE_ERRORS):
            return True
        error = error.__cause__
    return False
