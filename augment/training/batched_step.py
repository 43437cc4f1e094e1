"""The fast training step: ``Trainer.eager_step``'s function with fewer, larger kernels.

Batched (any device). The generator does not change during the ``n_critic`` critic updates,
so ONE generator forward of ``(n_critic * B)`` latents makes the fakes of all of them; inside
it every BatchNorm normalises each group of ``B`` with that group's own statistics and updates
its running statistics once per group, in order (``per_group_batch_norm``), exactly as
``n_critic`` separate forwards do. Each critic update then scores ``cat(real, fake)`` in one
forward (the critic has no batch coupling) and the penalty's interpolates in a second one
(``merge_penalty=True``: all three in one forward, the penalty's gradient taken w.r.t. the
interpolates' slice; fewer kernels, but the input-gradient and double backward then run over
3B rows instead of B). With ``critic_augment`` the reals and fakes of each critic update
are transformed (``Trainer.critic_view``, per sample) before it. The generator update is
``updates.generator_update`` unchanged. Adam steps run fused (one kernel per optimizer step, CPU
and CUDA) while the fast step runs; the param-group flags are restored after each step, so
checkpoints look like eager ones.

CUDA graphs (cuda). The batched step is captured once into one graph and replayed. The
trainer still draws each step's latents, interpolation weights and real-batch indices eagerly
(``draw_noise``/``real_indices``, same order as the eager step); they are copied into the
graph's static inputs. The first steps run batched on a side stream (lazy CUDA/Adam state
initialisation must not be captured), then the graph is captured; it is captured again when
any tensor it reads or writes was replaced (e.g. by ``Trainer.load_state_dict``). Adam is
``capturable`` only inside the capture (restored afterwards, so checkpoints stay loadable on a
CPU); its step counters live on the GPU as float32, as capturable/fused Adam needs.

``build_fast_step(trainer, required)`` picks the path and says once (``FastStepFallback``
warning) when it cannot use CUDA graphs; ``required=True`` raises ``AugmentError`` instead of
falling back to the eager step.
"""

from __future__ import annotations

import contextlib
import functools
import warnings
from typing import Callable, Iterator, Optional

import torch
from torch import nn

from augment.errors import AugmentError
from augment.gan import diffaugment
from augment.gan.losses import critic_loss, gradient_penalty, interpolate, penalty_from_gradients, wasserstein_estimate
from augment.gan.models import Critic, Generator
from augment.training.updates import StepParts, critic_view, descend, generator_update

STAT_KEYS = ("loss_d", "gp", "wasserstein", "loss_g")
GRAPH_WARMUP_STEPS = 2  # batched steps on a side stream before the first capture
FUSED_ADAM_DEVICES = ("cpu", "cuda")

# Layers whose output for a sample depends only on that sample (in train and eval mode).
PER_SAMPLE_LAYERS = (
    nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d,
    nn.Linear, nn.Embedding, nn.Identity, nn.Flatten, nn.Unflatten, nn.Upsample,
    nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d, nn.LayerNorm, nn.GroupNorm,
    nn.LeakyReLU, nn.ReLU, nn.Tanh, nn.Sigmoid, nn.ELU, nn.GELU, nn.SiLU,
)
_BATCH_NORM = nn.modules.batchnorm._BatchNorm


class FastStepFallback(UserWarning):
    """The fast step could not use its fastest path and runs a slower one (same function)."""


# ------------------------------------------------------------------------------ batched maths


def unsupported_reason(G: nn.Module, D: nn.Module) -> Optional[str]:
    """Why the batched step would not compute the eager step's function for these models
    (None when it does): the generator may couple samples only through BatchNorm, the critic
    not at all, and their own forwards must be the project's (per-sample) ones."""
    if type(G) is not Generator or type(D) is not Critic:
        return f"models are {type(G).__name__}/{type(D).__name__}, not augment's Generator/Critic"
    for name, net, allowed in (("generator", G, PER_SAMPLE_LAYERS + (_BATCH_NORM,)),
                               ("critic", D, PER_SAMPLE_LAYERS)):
        for m in net.modules():
            if m is net or isinstance(m, nn.Sequential):
                continue
            if not isinstance(m, allowed) or (
                    isinstance(m, nn.modules.instancenorm._InstanceNorm) and m.track_running_stats):
                return f"the {name} has a {type(m).__name__} layer, which may couple samples"
    return None


@contextlib.contextmanager
def per_group_batch_norm(module: nn.Module, groups: int) -> Iterator[None]:
    """Within the block, each BatchNorm of ``module`` splits its input (groups * B, ...) into
    ``groups`` consecutive slices and runs its own forward on each in turn, so a forward of the
    concatenation equals (outputs and running statistics) ``groups`` forwards of the slices,
    provided every other layer treats samples independently."""
    norms = [m for m in module.modules() if isinstance(m, _BATCH_NORM)]
    if groups == 1 or not norms:
        yield
        return
    patched = [(m, m.__dict__.get("forward")) for m in norms]
    for m, _ in patched:
        m.forward = _grouped(m.forward, groups)  # an instance attribute shadows the method
    try:
        yield
    finally:
        for m, previous in patched:
            if previous is None:
                del m.forward
            else:
                m.forward = previous


def _grouped(forward: Callable[[torch.Tensor], torch.Tensor], groups: int):
    def grouped_forward(x: torch.Tensor) -> torch.Tensor:  # x: (groups * B, ...), from batched_step
        return torch.cat([forward(chunk) for chunk in x.chunk(groups)])
    return grouped_forward


def critic_update(parts: StepParts, real: torch.Tensor, fake: torch.Tensor, labels: torch.Tensor,
                  alpha: torch.Tensor, merge_penalty: bool = False) -> dict:
    """``Trainer.critic_step`` given the fakes: real, fake (B, C, 32, 32), labels (B,), alpha
    (B, 1, 1, 1). Returns detached scalars loss_d, gp, wasserstein."""
    D, b = parts.D, real.shape[0]
    if merge_penalty:
        x_hat = interpolate(real, fake, alpha).requires_grad_(True)
        scores = D(torch.cat([real, fake, x_hat]), torch.cat([labels, labels, labels]))
        real_scores, fake_scores, hat_scores = scores.split(b)
        (grads,) = torch.autograd.grad(hat_scores.sum(), x_hat, create_graph=True)
        gp = penalty_from_gradients(grads)
    else:
        real_scores, fake_scores = D(torch.cat([real, fake]), torch.cat([labels, labels])).split(b)
        gp = gradient_penalty(D, real, fake, labels, alpha)
    loss = critic_loss(real_scores, fake_scores) + parts.gp_weight * gp
    descend(parts, D, parts.opt_d, loss)  # (gradients averaged over ranks under torchrun)
    return {"loss_d": loss.detach(), "gp": gp.detach(),
            "wasserstein": wasserstein_estimate(real_scores, fake_scores).detach()}


CriticUpdate = Callable[[StepParts, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], dict]
GeneratorUpdate = Callable[[StepParts, torch.Tensor, torch.Tensor, Optional[torch.Tensor]], torch.Tensor]


def batched_step(parts: StepParts, noise: dict, indices: torch.Tensor, critic: CriticUpdate = critic_update,
                 generator: GeneratorUpdate = generator_update) -> dict:
    """One generator step on ``parts`` from the step's ``noise`` (``Trainer.draw_noise``) and
    real-batch ``indices`` (n_critic, B) (``Trainer.real_indices``); the eager step's function.
    ``critic(parts, real, fake, labels, alpha)`` is each critic update (``critic_update``, or the
    explicit-gp step's), ``generator(parts, labels, z, aug)`` the generator update. Returns
    detached scalars loss_d, gp, wasserstein (last critic update) and loss_g."""
    n, b = indices.shape
    labels_all = parts.labels.index_select(0, indices.reshape(-1))  # (n * B,)
    with torch.no_grad(), per_group_batch_norm(parts.G, n):
        fakes = parts.G(noise["z_critic"].reshape(n * b, -1), labels_all)  # (n * B, C, 32, 32)
    real = parts.real.index_select(0, indices[0]) if parts.shared_batches else None
    for i in range(n):
        rows = slice(i * b, (i + 1) * b)
        if not parts.shared_batches:
            real = parts.real.index_select(0, indices[i])
        real_i = critic_view(parts, real, diffaugment.row(noise.get("aug_real"), i))
        fake_i = critic_view(parts, fakes[rows], diffaugment.row(noise.get("aug_fake"), i))
        stats = critic(parts, real_i, fake_i, labels_all[rows], noise["alpha"][i])
    stats["loss_g"] = generator(parts, labels_all[(n - 1) * b:], noise["z_gen"], noise.get("aug_gen"))
    return stats


@contextlib.contextmanager
def _adam_flags(optimizers, fused: bool, capturable: bool) -> Iterator[None]:
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


class BatchedStep:
    """Zero-argument step callable running ``batched_step`` eagerly (CPU, or CUDA without
    graphs), with fused Adam (one kernel per optimizer step instead of a loop over tensors)."""

    def __init__(self, trainer, merge_penalty: bool = False, fused_adam: bool = True):
        self.trainer, self.merge_penalty = trainer, merge_penalty
        self.critic = functools.partial(critic_update, merge_penalty=merge_penalty)
        self.fused_adam = fused_adam and trainer.device.type in FUSED_ADAM_DEVICES

    def __call__(self) -> dict:
        t = self.trainer
        noise, indices = t.draw_noise(), t.real_indices()
        with _adam_flags((t.opt_d, t.opt_g), self.fused_adam, capturable=False):
            return batched_step(t.step_parts(), noise, indices, self.critic)


# -------------------------------------------------------------------------------- CUDA graph


class CudaGraphStep:
    """Zero-argument step callable replaying one CUDA graph of ``batched_step``."""

    def __init__(self, trainer, required: bool, merge_penalty: bool = False,
                 fused_adam: bool = True, warmup_steps: int = GRAPH_WARMUP_STEPS):
        self.trainer, self.required = trainer, required
        self.merge_penalty, self.fused_adam = merge_penalty, fused_adam
        self.critic = functools.partial(critic_update, merge_penalty=merge_penalty)
        self.warmup_left = warmup_steps
        self.fallback: Optional[BatchedStep] = None  # set when a capture failed
        self.graph = None
        self.signature: tuple = ()
        self.static: dict = {}
        nets = (trainer.G, trainer.D)
        self.parameters = [p for net in nets for p in net.parameters()]
        self.buffer_slots = [(m._buffers, name) for net in nets for m in net.modules()
                             for name in m._buffers if m._buffers[name] is not None]

    @property
    def optimizers(self):
        return (self.trainer.opt_d, self.trainer.opt_g)

    def __call__(self) -> dict:
        if self.fallback is not None:
            return self.fallback()
        t = self.trainer
        noise, indices = t.draw_noise(), t.real_indices()
        self._steps_to_device()
        if self.graph is not None and self._signature() != self.signature:
            self._release()  # something the graph reads or writes was replaced: capture again
        if self.graph is None:
            if self.warmup_left > 0 or not self._optimizer_state_ready():
                self.warmup_left = max(0, self.warmup_left - 1)
                return self._side_stream_step(noise, indices)
            try:
                self._capture(noise, indices)
            except Exception as e:  # capture is all-or-nothing: nothing ran, state unchanged
                self._release()
                reason = f"CUDA graph capture of the training step failed ({type(e).__name__}: " \
                         f"{str(e).splitlines()[0] if str(e) else 'no message'})"
                if self.required:
                    raise AugmentError(f"{reason}; use step_impl='auto' or 'eager'") from None
                warnings.warn(f"{reason}; running the batched step without graphs",
                              FastStepFallback, stacklevel=2)
                self.fallback = BatchedStep(t, self.merge_penalty, self.fused_adam)
                with _adam_flags(self.optimizers, self.fused_adam, capturable=False):
                    return batched_step(t.step_parts(), noise, indices, self.critic)
        for k, v in noise.items():
            self.static[k].copy_(v)
        self.static["indices"].copy_(indices)
        self.graph.replay()
        return dict(zip(STAT_KEYS, self.static["out"].clone().unbind()))

    def _side_stream_step(self, noise: dict, indices: torch.Tensor) -> dict:
        device = self.trainer.device
        main, side = torch.cuda.current_stream(device), torch.cuda.Stream(device)
        side.wait_stream(main)
        with torch.cuda.stream(side), \
                _adam_flags(self.optimizers, self.fused_adam, capturable=False):
            stats = batched_step(self.trainer.step_parts(), noise, indices, self.critic)
        main.wait_stream(side)
        return {k: v.clone() for k, v in stats.items()}

    def _capture(self, noise: dict, indices: torch.Tensor) -> None:
        t = self.trainer
        self.static = {k: torch.empty_like(v) for k, v in noise.items()}
        self.static["indices"] = torch.empty(indices.shape, dtype=indices.dtype,
                                             device=indices.device)
        for k, v in noise.items():
            self.static[k].copy_(v)
        self.static["indices"].copy_(indices)
        for net in (t.G, t.D):  # gradients are allocated inside the graph's memory pool
            net.zero_grad(set_to_none=True)
        graph = torch.cuda.CUDAGraph()
        try:
            with _adam_flags(self.optimizers, self.fused_adam, capturable=True), \
                    torch.cuda.graph(graph):
                step_noise = {k: self.static[k] for k in noise}
                stats = batched_step(t.step_parts(), step_noise, self.static["indices"], self.critic)
                self.static["out"] = torch.stack([stats[k] for k in STAT_KEYS])
        finally:
            t.D.requires_grad_(True)  # in case the capture stopped inside the generator update
        self.graph = graph
        self.signature = self._signature()

    def _release(self) -> None:
        self.graph, self.static, self.signature = None, {}, ()
        for net in (self.trainer.G, self.trainer.D):
            net.zero_grad(set_to_none=True)

    def _optimizer_state_ready(self) -> bool:
        """Every parameter has Adam state (else the capture would record its initialisation)."""
        return all(len(opt.state.get(p, {})) > 0 for opt in self.optimizers
                   for g in opt.param_groups for p in g["params"])

    def _steps_to_device(self) -> None:
        """Adam step counters as float32 on the parameter's device (what capturable needs);
        a checkpoint from a CPU or eager run keeps them on the CPU."""
        for opt in self.optimizers:
            for p, state in opt.state.items():
                step = state.get("step")
                if not isinstance(step, torch.Tensor):
                    continue
                if step.device != p.device or step.dtype != torch.float32:
                    state["step"] = step.to(device=p.device, dtype=torch.float32)

    def _signature(self) -> tuple:
        """Identity of every tensor and setting the captured graph depends on (~100 tensors)."""
        t = self.trainer
        ptrs = [t.real.data_ptr(), t.labels.data_ptr()]
        ptrs += [p.data_ptr() for p in self.parameters]
        ptrs += [buffers[name].data_ptr() for buffers, name in self.buffer_slots]
        parts = t.step_parts()
        settings = [parts.gp_weight, parts.critic_augment, parts.shared_batches, t.G.training, t.D.training]
        for opt in self.optimizers:
            for g in opt.param_groups:
                settings += [v for k, v in g.items() if k != "params"]
            for state in opt.state.values():
                ptrs += [v.data_ptr() for v in state.values() if isinstance(v, torch.Tensor)]
        return (*settings, *ptrs)


# ----------------------------------------------------------------------------------- builder


def build_fast_step(trainer, required: bool, *, cuda_graph: Optional[bool] = None,
                    merge_penalty: bool = False, fused_adam: bool = True) -> Callable[[], dict]:
    """The fastest step of ``trainer`` computing ``Trainer.eager_step``'s function.

    On CUDA: one CUDA graph of the batched step (``cuda_graph=False``: batched, no graph).
    Elsewhere: the batched step, with a ``FastStepFallback`` warning that no graph is used.
    When the models do not allow batching: ``required`` raises ``AugmentError``, otherwise a
    warning and ``trainer.eager_step``. Returns a zero-argument callable doing one generator
    step and returning detached scalars loss_d, gp, wasserstein, loss_g.
    """
    reason = unsupported_reason(trainer.G, trainer.D)
    if reason is not None:
        if required:
            raise AugmentError(f"step_impl='fast' is unavailable: {reason}")
        warnings.warn(f"fast training step unavailable ({reason}); using the eager step",
                      FastStepFallback, stacklevel=2)
        return trainer.eager_step
    on_cuda = trainer.device.type == "cuda"
    if cuda_graph is None:
        # collectives inside a captured graph are not attempted: batched steps under torchrun
        cuda_graph = on_cuda and not trainer.dist.enabled
    if cuda_graph and not on_cuda:
        raise AugmentError(f"CUDA graphs need a CUDA device, not {trainer.device}")
    if cuda_graph:
        return CudaGraphStep(trainer, required, merge_penalty, fused_adam)
    if not on_cuda:
        warnings.warn(f"CUDA graphs are unavailable on {trainer.device.type}; the fast step runs "
                      f"the batched step without graphs (same function)", FastStepFallback,
                      stacklevel=2)
    return BatchedStep(trainer, merge_penalty, fused_adam)
