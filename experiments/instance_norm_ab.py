"""A/B: the critic's InstanceNorm as PyTorch's module vs a composite of simple ops.

PyTorch runs ``nn.InstanceNorm2d`` as a batch norm over a reshaped input; its double backward
(which the gradient penalty needs) is about 62 small ops a call. The composite form
``(x - mean) * rsqrt(var + eps)`` computes the same function and lets autograd derive the
double backward from simple ops. This script trains two identical trainers (the fast step),
one with each form, interleaving timed rounds, and prints seconds per generator step and the
largest parameter difference after the run (float32; the two drift apart by rounding only).

    python experiments/instance_norm_ab.py --widths 32,16 --rounds 4 --steps 3
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from augment.config import ModelConfig, TrainConfig  # noqa: E402
from augment.data.mnist import resolve_data_dir  # noqa: E402
from augment.training import batched_step as fast  # noqa: E402
from augment.training.trainer import Trainer  # noqa: E402


class CompositeInstanceNorm(nn.Module):
    """InstanceNorm2d (no affine, no running stats, eps 1e-5) from var_mean/rsqrt; (B, C, H, W)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        var, mean = torch.var_mean(x, dim=(2, 3), keepdim=True, correction=0)
        return (x - mean) * torch.rsqrt(var + 1e-5)


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--widths", default="32,16", help="g_width,d_width")
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--steps", type=int, default=3, help="generator steps per timed round")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--data-dir", default=None)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    warnings.simplefilter("ignore", fast.FastStepFallback)
    fast.PER_SAMPLE_LAYERS = fast.PER_SAMPLE_LAYERS + (CompositeInstanceNorm,)
    g, d = (int(w) for w in args.widths.split(","))
    cfg = TrainConfig(data_dir=str(resolve_data_dir(args.data_dir)), model=ModelConfig(g_width=g, d_width=d),
                      n_per_class=100, device="cpu", tensorboard=False)
    trainers = {}
    for name in ("module", "composite"):
        t = Trainer(cfg)
        if name == "composite":
            for parent in t.D.modules():
                for key, m in list(parent._modules.items()):
                    if isinstance(m, nn.InstanceNorm2d):
                        parent._modules[key] = CompositeInstanceNorm()
        t.step_fn = fast.build_fast_step(t, required=True)
        t.step()  # warm-up
        trainers[name] = t
    times: dict = {name: [] for name in trainers}
    for _ in range(args.rounds):
        for name, t in trainers.items():
            start = time.perf_counter()
            for _ in range(args.steps):
                t.step()
            times[name].append((time.perf_counter() - start) / args.steps)
    result = {name: {"best_s_per_step": round(min(v), 4), "median_s_per_step": round(sorted(v)[len(v) // 2], 4)}
              for name, v in times.items()}
    a, b = (dict(trainers[n].D.named_parameters()) for n in ("module", "composite"))
    result["max_param_diff"] = max(float((a[k] - b[k]).detach().abs().max()) for k in a)
    print(result)
    return result


if __name__ == "__main__":
    main()
