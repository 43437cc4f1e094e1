"""The explicit-penalty step (``step_impl="explicit-gp"``): the batched step's function with the
gradient penalty's input gradient written out (``augment.gan.critic_gradient``), so each critic
update is one forward and ONE backward, no double backward, and the whole update can go
through ``torch.compile``.

It is ``augment.training.batched_step``'s step (one generator forward makes the fakes of all
n_critic critic updates, BatchNorm per group of B; each update scores ``cat(real, fake)`` in one
forward; Adam runs fused) with its own critic and generator updates: the penalty's forward
also yields its input gradient, and its training gradient flows through ordinary autograd.
With ``compile_step`` the critic's and the generator's loss computations (forward and, through
AOTAutograd, backward) are compiled with ``torch.compile`` (inductor, CPU or CUDA); where
compilation is unavailable the step says so once (``FastStepFallback``) and runs uncompiled:
the same function.
"""

from __future__ import annotations

import warnings
from typing import Callable, Optional

import torch
import torch._dynamo.exc
import torch._inductor.exc

from augment.errors import one_line
from augment.gan.critic_gradient import explicit_gradient_penalty
from augment.gan.losses import critic_loss, wasserstein_estimate
from augment.training.batched_step import FUSED_ADAM_DEVICES, FastStepFallback, _adam_flags, batched_step
from augment.training.updates import StepParts, descend, generator_term, generator_update


def critic_terms(D, real: torch.Tensor, fake: torch.Tensor, labels: torch.Tensor, alpha: torch.Tensor,
                 gp_weight: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(critic loss, penalty, Wasserstein estimate) of one critic update: real, fake (B, C, 32, 32)
    as the critic sees them, labels (B,), alpha (B, 1, 1, 1)."""
    b = real.shape[0]
    real_scores, fake_scores = D(torch.cat([real, fake]), torch.cat([labels, labels])).split(b)
    gp = explicit_gradient_penalty(D, real, fake, labels, alpha)
    return critic_loss(real_scores, fake_scores) + gp_weight * gp, gp, wasserstein_estimate(real_scores, fake_scores)


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
            if not _is_compile_failure(e):
                raise
            warnings.warn(f"torch.compile is unavailable here ({type(e).__name__}: {one_line(e)[:160]}); "
                          f"the explicit-gp step runs {self.fn.__name__} uncompiled (same function)",
                          FastStepFallback, stacklevel=2)
            self.compiled = None
            return self.fn(*args)


class ExplicitGPStep:
    """Zero-argument step callable: one generator step of ``trainer`` with the explicit penalty
    (the eager step's function), compiled with ``torch.compile`` when ``compile_step``."""

    def __init__(self, trainer, compile_step: bool = False):
        self.trainer = trainer
        self.fused_adam = trainer.device.type in FUSED_ADAM_DEVICES
        self.critic_terms: Callable = CompiledOrPlain(critic_terms) if compile_step else critic_terms
        self.generator_term: Callable = CompiledOrPlain(generator_term) if compile_step else generator_term

    def __call__(self) -> dict:
        t = self.trainer
        noise, indices = t.draw_noise(), t.real_indices()
        with _adam_flags((t.opt_d, t.opt_g), self.fused_adam, capturable=False):
            return batched_step(t.step_parts(), noise, indices, self.critic_update, self.generator_update)

    def critic_update(self, parts: StepParts, real: torch.Tensor, fake: torch.Tensor, labels: torch.Tensor,
                      alpha: torch.Tensor) -> dict:
        """One critic update (``batched_step``'s ``critic``) with the explicit penalty."""
        loss, gp, w = self.critic_terms(parts.D, real, fake, labels, alpha, parts.gp_weight)
        descend(parts, parts.D, parts.opt_d, loss)
        return {"loss_d": loss.detach(), "gp": gp.detach(), "wasserstein": w.detach()}

    def generator_update(self, parts: StepParts, labels: torch.Tensor, z: torch.Tensor,
                         aug: Optional[torch.Tensor]) -> torch.Tensor:
        """The generator update (``batched_step``'s ``generator``), its loss from ``generator_term``."""
        return generator_update(parts, labels, z, aug, self.generator_term)


# what torch.compile raises when it cannot compile (dynamo's and inductor's errors; a C++ or
# Triton toolchain missing or failing), as opposed to an error of the step's own maths
COMPILE_ERRORS = (torch._dynamo.exc.TorchDynamoException, torch._inductor.exc.InductorError,
                  torch._inductor.exc.CppCompileError, torch._inductor.exc.InvalidCxxCompiler)


def _is_compile_failure(error: Exception) -> bool:
    """Whether ``error`` came from torch.compile's machinery, by its type (or its cause's)."""
    while error is not None:
        if isinstance(error, COMPILE_ERRORS):
            return True
        error = error.__cause__
    return False
