"""The CUDA graph step replays what the batched step does (needs CUDA; the lent GPU session runs it)."""

import pytest
import torch

from augment.training.cuda_graph import GRAPH_WARMUP_STEPS, CudaGraphStep
from augment.training.steps import Step
from augment.training.trainer import Trainer
from tests.training.test_steps import assert_same_state, config, idx_dir, in_float64  # noqa: F401


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("critic_augment", ["none", "translation,cutout"])
def test_cuda_graph_step_equals_batched_step(idx_dir, critic_augment):  # noqa: F811
    """Replaying the captured graph does what the batched step does: the latents and the
    DiffAugment parameters reach the graph through its static inputs, step after step."""
    cfg = config(idx_dir, device="cuda", step_impl="fast", critic_augment=critic_augment)
    graphed, plain = in_float64(Trainer(cfg)), in_float64(Trainer(cfg))
    plain.step_fn = Step(plain, batched=True)
    for _ in range(GRAPH_WARMUP_STEPS + 3):  # warm-up steps, the capture, then replays
        stats_g, stats_p = graphed.step(), plain.step()
        assert stats_g.keys() == stats_p.keys()
        for k, v in stats_g.items():
            torch.testing.assert_close(v, stats_p[k], rtol=1e-7, atol=1e-9)
    assert isinstance(graphed.step_fn, CudaGraphStep) and graphed.step_fn.graph is not None
    assert_same_state(graphed, plain)
