"""Where a training step's device time goes: kernels of the batched (fast, no graph) step.

Runs ``--warmup`` steps, then profiles ``--steps`` steps of ``Trainer`` with the batched fast
step (the body that the CUDA graph replays) under ``torch.profiler``, and prints the
operators/kernels with the most device time (CUDA) or CPU time (CPU), the number of kernels
launched per step and the total device time per step; then the same work grouped by the
autograd node that ran it (which part of the maths launches the most kernels; on a CPU, leaf
ops stand in for kernels). Writes the tables as JSON.

    python experiments/profile_train_step.py --device cuda --steps 20 --out profile.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from augment.config import TrainConfig  # noqa: E402
from augment.data.mnist import resolve_data_dir  # noqa: E402
from augment.fileio import atomic_write_text  # noqa: E402
from augment.training.steps import Step  # noqa: E402
from augment.training.trainer import Trainer  # noqa: E402

VIEW_OPS = {"aten::empty", "aten::empty_strided", "aten::view", "aten::as_strided", "aten::as_strided_",
            "aten::slice", "aten::select", "aten::transpose", "aten::t", "aten::expand", "aten::permute",
            "aten::unsqueeze", "aten::squeeze", "aten::reshape", "aten::_reshape_alias", "aten::_unsafe_view",
            "aten::detach", "aten::alias", "aten::split", "aten::chunk", "aten::narrow", "aten::unbind",
            "aten::resize_", "aten::result_type", "aten::lift_fresh", "aten::set_"}


def by_autograd_node(prof, steps: int, on_cuda: bool) -> list[dict]:
    """Work per step grouped by the autograd node (or optimizer call) that ran it; "forward" for
    ops outside any. CUDA: kernels and their device time, from each op's own launches. CPU:
    leaf compute ops (no aten children, views excluded), a proxy for what a GPU launches."""
    children: dict = {}
    for e in prof.events():
        if e.cpu_parent is not None:
            children.setdefault(e.cpu_parent.id, []).append(e)
    groups: dict = {}
    for e in prof.events():
        if not e.name.startswith("aten::") or e.name in VIEW_OPS:
            continue
        if on_cuda:
            count, us = len(e.kernels), sum(k.duration for k in e.kernels)
        elif any(c.name.startswith("aten::") for c in children.get(e.id, [])):
            continue
        else:
            count, us = 1, e.self_cpu_time_total
        if not count:
            continue
        node = e.cpu_parent
        while node is not None and node.name.startswith("aten::"):
            node = node.cpu_parent
        name = "forward" if node is None else node.name.replace("autograd::engine::evaluate_function: ", "")
        g = groups.setdefault(name, {"node": name, "ops_per_step": 0.0, "us_per_step": 0.0})
        g["ops_per_step"] += count / steps
        g["us_per_step"] += us / steps
    return sorted(groups.values(), key=lambda g: -g["ops_per_step"])


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--top", type=int, default=25)
    p.add_argument("--cudnn-benchmark", action="store_true")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)
    device = torch.device(args.device)
    on_cuda = device.type == "cuda"
    torch.backends.cudnn.benchmark = args.cudnn_benchmark
    if not on_cuda:
        torch.set_num_threads(2)
    cfg = TrainConfig(data_dir=str(resolve_data_dir(args.data_dir)), batch_size=args.batch_size,
                      device=str(device), step_impl="eager", tensorboard=False)
    trainer = Trainer(cfg)
    trainer.step_fn = Step(trainer, batched=True)  # the fast step without CUDA graphs
    for _ in range(args.warmup):
        trainer.step()
    if on_cuda:
        torch.cuda.synchronize(device)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if on_cuda else [])
    with profile(activities=activities) as prof:
        for _ in range(args.steps):
            trainer.step()
        if on_cuda:
            torch.cuda.synchronize(device)
    # self time: kernels' device time on CUDA, operators' own CPU time on a CPU
    time_of = (lambda e: e.self_device_time_total) if on_cuda else (lambda e: e.self_cpu_time_total)
    rows = [{"name": e.key, "calls_per_step": e.count / args.steps,
             "us_per_step": time_of(e) / args.steps}
            for e in prof.key_averages() if time_of(e) > 0]
    rows.sort(key=lambda r: -r["us_per_step"])
    total_us = sum(r["us_per_step"] for r in rows)
    kernels = None
    if on_cuda:
        kernels = sum(1 for ev in prof.events() if ev.device_type == torch.autograd.DeviceType.CUDA)
        kernels /= args.steps
    print(f"{args.steps} steps of the batched fast step on {device} (batch {args.batch_size}); "
          f"{'device' if on_cuda else 'CPU self'} time {total_us / 1000:.2f} ms/step"
          + (f", {kernels:.0f} kernels/step" if kernels is not None else ""))
    print(f"{'us/step':>10} {'calls/step':>10}  name")
    for r in rows[:args.top]:
        print(f"{r['us_per_step']:10.1f} {r['calls_per_step']:10.1f}  {r['name'][:100]}")
    nodes = by_autograd_node(prof, args.steps, on_cuda)
    unit = "kernels" if on_cuda else "leaf ops"
    print(f"\nby autograd node: {sum(g['ops_per_step'] for g in nodes):.0f} {unit}/step")
    print(f"{unit + '/step':>14} {'us/step':>10}  node")
    for g in nodes[:args.top]:
        print(f"{g['ops_per_step']:14.1f} {g['us_per_step']:10.1f}  {g['node'][:90]}")
    result = {"device": str(device), "machine": torch.cuda.get_device_name(device) if on_cuda
              else "CPU", "torch": torch.__version__, "batch_size": args.batch_size,
              "steps": args.steps, "cudnn_benchmark": args.cudnn_benchmark,
              "time_ms_per_step": total_us / 1000, "kernels_per_step": kernels,
              "top": rows[:args.top], "by_autograd_node": nodes[:args.top], "command": " ".join(sys.argv)}
    if args.out:
        atomic_write_text(args.out, json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
