"""Data-parallel training over torchrun's processes: the single-process maths, exactly (to float
rounding).

* every rank draws the same global batch indices and the same global noise (same seeds) and
  takes its contiguous 1/W share (``local_slice``), so W ranks together see the
  single-process batch;
* gradients are averaged with one explicit, coalesced ``all_reduce`` after each backward
  (``all_reduce_gradients``), which equals the gradient of the global-batch mean loss.
  We do not wrap the nets in DistributedDataParallel on purpose: DDP's reducer hooks fire
  during the gradient penalty's double backward (``autograd.grad(create_graph=True)``) and
  on each of several critic forwards before one backward, which DDP does not support without
  ``find_unused_parameters``/``static_graph`` workarounds; an explicit all-reduce has no
  such traps and makes the equivalence with one process easy to see and to test;
* the generator's BatchNorm uses global batch statistics (``GlobalBatchNorm2d``, a
  differentiable all-reduce of per-channel sums that also works on CPU with gloo, where
  ``nn.SyncBatchNorm`` does not), so its running buffers stay identical on every rank;
* the critic has no batch coupling (InstanceNorm), so it needs nothing.

Since all state is global, a checkpoint resumes with any world size. The process group itself
is ``augment.torchrun``.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn

from augment.errors import AugmentError
from augment.torchrun import DistContext


def local_slice(global_size: int, ctx: DistContext) -> slice:
    """This rank's contiguous share of a global batch of ``global_size`` (divisible by W)."""
    if global_size % ctx.world_size:
        raise AugmentError(f"batch size {global_size} is not divisible by world size {ctx.world_size}")
    n = global_size // ctx.world_size
    return slice(ctx.rank * n, (ctx.rank + 1) * n)


def all_reduce_gradients(module: nn.Module, ctx: DistContext) -> None:
    """Average the gradients of ``module`` over ranks with one coalesced all-reduce."""
    if not ctx.enabled:
        return
    grads = [p.grad for p in module.parameters() if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= ctx.world_size
    offset = 0
    for g in grads:
        g.copy_(flat[offset:offset + g.numel()].view_as(g))
        offset += g.numel()


class _AllReduceSum(torch.autograd.Function):
    """y = sum over ranks of x; backward sums the incoming gradients over ranks likewise."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        y = x.clone()
        dist.all_reduce(y)
        return y

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        g = grad.clone()
        dist.all_reduce(g)
        return g


class GlobalBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d whose training-mode statistics are taken over the batch of all ranks.

    Two differentiable all-reduces, so gradients flow through the global statistics as in
    single-process BatchNorm on the concatenated batch: per-channel sums and the count give the
    global mean, then the sums of squared deviations from it give the (biased) variance. Two
    passes, as BatchNorm itself computes it: E[x^2] - mean^2 loses all precision in float32
    once a channel's mean is ~1000x its standard deviation. Eval mode, or a single process, is
    plain BatchNorm2d.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, C, H, W), normalised with statistics over every rank's batch."""
        if not (self.training and dist.is_available() and dist.is_initialized()
                and dist.get_world_size() > 1):
            return super().forward(x)
        c = x.shape[1]
        n_local = x.shape[0] * x.shape[2] * x.shape[3]
        sums = _AllReduceSum.apply(torch.cat([x.sum((0, 2, 3)), x.new_full((1,), float(n_local))]))
        n = sums[c]
        mean = sums[:c] / n
        centred = x - mean[None, :, None, None]
        var = _AllReduceSum.apply((centred * centred).sum((0, 2, 3))) / n
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                m = self.momentum
                self.running_mean.mul_(1 - m).add_(mean.detach(), alpha=m)
                self.running_var.mul_(1 - m).add_(var.detach() * n / (n - 1), alpha=m)
        y = centred * torch.rsqrt(var[None, :, None, None] + self.eps)
        if self.affine:
            y = y * self.weight[None, :, None, None] + self.bias[None, :, None, None]
        return y


def use_global_batchnorm(module: nn.Module) -> nn.Module:
    """Replace every BatchNorm2d in ``module`` by a GlobalBatchNorm2d with the same state."""
    for name, child in module.named_children():
        if type(child) is nn.BatchNorm2d:
            new = GlobalBatchNorm2d(child.num_features, child.eps, child.momentum, child.affine,
                                    child.track_running_stats, device=child.weight.device)
            new.load_state_dict(child.state_dict())
            setattr(module, name, new)
        else:
            use_global_batchnorm(child)
    return module
