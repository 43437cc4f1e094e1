"""The batched training step captured once into a CUDA graph and replayed (``step_impl`` 'fast' or
'auto' on one CUDA process).

The trainer still draws each step's latents, interpolation weights and real-batch indices eagerly
(``Trainer.draw_noise``/``real_indices``, the same stream as every other step); they are copied
into the graph's static inputs. The first steps run batched on a side stream (lazy CUDA/Adam state
initialisation must not be captured), then the graph is captured; it is captured again when any
tensor it reads or writes was replaced (e.g. by ``Trainer.load_state_dict``). Adam is fused, and
``capturable`` only inside the capture (restored afterwards, so checkpoints stay loadable on a
CPU); its step counters live on the GPU as float32, as capturable/fused Adam needs. A failed
capture falls back to the batched step with one ``FastStepFallback`` warning, or raises
``AugmentError`` when the graph was ``required`` ('fast').
"""

from __future__ import annotations

import warnings
from typing import Optional

import torch

from augment.errors import AugmentError
from augment.training.steps import FastStepFallback, Step, adam_flags, training_step

GRAPH_WARMUP_STEPS = 2  # batched steps on a side stream before the first capture


class CudaGraphStep:
    """Zero-argument step callable replaying one CUDA graph of the batched ``training_step``."""

    def __init__(self, trainer, required: bool, warmup_steps: int = GRAPH_WARMUP_STEPS):
        self.trainer, self.required = trainer, required
        self.warmup_left = warmup_steps
        self.fallback: Optional[Step] = None  # set when a capture failed
        self.stat_keys: tuple = ()  # the statistics the captured step returns, in the order of static["out"]
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
                self.fallback = Step(t, batched=True)
                with adam_flags(self.optimizers, fused=True, capturable=False):
                    return training_step(t.step_parts(), noise, indices, batched=True)
        for k, v in noise.items():
            self.static[k].copy_(v)
        self.static["indices"].copy_(indices)
        self.graph.replay()
        return dict(zip(self.stat_keys, self.static["out"].clone().unbind()))

    def _side_stream_step(self, noise: dict, indices: torch.Tensor) -> dict:
        device = self.trainer.device
        main, side = torch.cuda.current_stream(device), torch.cuda.Stream(device)
        side.wait_stream(main)
        with torch.cuda.stream(side), adam_flags(self.optimizers, fused=True, capturable=False):
            stats = training_step(self.trainer.step_parts(), noise, indices, batched=True)
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
            with adam_flags(self.optimizers, fused=True, capturable=True), torch.cuda.graph(graph):
                step_noise = {k: self.static[k] for k in noise}
                stats = training_step(t.step_parts(), step_noise, self.static["indices"], batched=True)
                self.stat_keys = tuple(sorted(stats))
                self.static["out"] = torch.stack([stats[k] for k in self.stat_keys])
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
