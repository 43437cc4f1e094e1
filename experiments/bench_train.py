"""Training throughput: a reference-style loop vs the trainer's eager step vs its fast step.

One "batch" = one generator step in ``shared`` mode = one real batch of ``--batch-size`` images
going through n_critic (5) critic updates and one generator update. batches/s counts those;
images/s = batch size x batches/s (real images consumed per second; each batch also makes
(n_critic + 1) x batch size fakes). All paths run in one process on one device, with the full
reference models (ModelConfig defaults), timed in interleaved rounds (the order of the paths
rotated each round) so that load from other processes hits them alike. Besides the overall
rates, each path reports ``x_<base>_rounds_median``: the median over rounds of its speed over
the base path's in the same round, which a slow spell of a shared host skews less.

Paths:
  reference    the reference design's loop: a torchvision-style MNIST dataset (per-item PIL
               image -> Resize(32) -> ToTensor -> Normalize(0.5, 0.5)) through a DataLoader
               (shuffled, drop_last); each loader batch is moved to the device and reused by
               n_critic critic updates, then one generator update; eager maths, op by op.
  eager        Trainer(step_impl='eager', real_batches='shared'): data resident on the device.
  fast         Trainer(step_impl='fast'): batched forwards; one CUDA graph on a GPU.
  batched      the fast step without CUDA graphs (on a CPU it is 'fast').
  explicit-gp  Trainer(step_impl='explicit-gp'): the batched step with the penalty's input
               gradient written out (one backward per critic update, no double backward).
  explicit-gp-compiled  the same with --compile-step: torch.compile (inductor) of the critic's
               and the generator's updates.

``--ops`` also counts the operators each path runs per step under torch.profiler: leaf aten
ops (no aten children, views excluded) and compiled kernels, the CPU's proxy for the kernels a
GPU launches.

Before timing, ``--check-steps`` steps of the eager and the fast trainer from the same seeds
are compared (in float64 by default): max |difference| of the generator's images, the critic's
scores on fixed inputs and the parameters (on CUDA also eager vs a second eager run, the
device's own nondeterminism).

    python experiments/bench_train.py --device cpu --steps 24 --warmup 2
    python experiments/bench_train.py --device cuda --steps 300
Prints one line per path and, last, one JSON line with every number.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

from augment.config import ModelConfig, TrainConfig
from augment.data.mnist import load_split, resolve_data_dir
from augment.device import cpu_model
from augment.errors import DataError
from augment.fileio import atomic_write_text
from augment.gan.losses import critic_loss, generator_loss, gradient_penalty
from augment.gan.models import Critic, Generator
from augment.training.steps import Step
from augment.training.trainer import Trainer

FALLBACK_DATA_DIR = "/work/shared/data/mnist"
N_CRITIC = 5


class TorchvisionStyleMNIST(torch.utils.data.Dataset):
    """torchvision.datasets.MNIST's item path: uint8 array -> PIL image -> transform."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor):
        from torchvision import transforms

        self.images, self.labels = images.numpy(), labels
        self.transform = transforms.Compose([transforms.Resize(32), transforms.ToTensor(),
                                             transforms.Normalize((0.5,), (0.5,))])

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        from PIL import Image

        return self.transform(Image.fromarray(self.images[i])), int(self.labels[i])


class ReferenceLoop:
    """The reference design's training loop; ``step()`` consumes one loader batch."""

    def __init__(self, data_dir: Path, device: torch.device, batch_size: int, workers: int,
                 seed: int = 0):
        images, labels = load_split(data_dir, "train", dataset="mnist")
        gen = torch.Generator().manual_seed(seed)
        self.loader = torch.utils.data.DataLoader(
            TorchvisionStyleMNIST(images, labels), batch_size=batch_size, shuffle=True,
            drop_last=True, num_workers=workers, generator=gen, persistent_workers=workers > 0)
        self.device, self.batches = device, iter(self.loader)
        cfg = ModelConfig()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.G, self.D = Generator(cfg).to(device), Critic(cfg).to(device)
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=1e-4, betas=(0.5, 0.9))
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=1e-4, betas=(0.5, 0.9))
        self.noise = torch.Generator(device=device).manual_seed(seed + 1)
        self.z_dim = cfg.z_dim

    def step(self) -> dict:
        try:
            real, labels = next(self.batches)
        except StopIteration:
            self.batches = iter(self.loader)
            real, labels = next(self.batches)
        real, labels = real.to(self.device), labels.to(self.device)
        b = len(labels)
        for _ in range(N_CRITIC):
            z = torch.randn(b, self.z_dim, generator=self.noise, device=self.device)
            with torch.no_grad():
                fake = self.G(z, labels)
            alpha = torch.rand(b, 1, 1, 1, generator=self.noise, device=self.device)
            real_scores, fake_scores = self.D(real, labels), self.D(fake, labels)
            gp = gradient_penalty(self.D, real, fake, labels, alpha)
            loss_d = critic_loss(real_scores, fake_scores) + 10.0 * gp
            self.opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            self.opt_d.step()
        z = torch.randn(b, self.z_dim, generator=self.noise, device=self.device)
        self.D.requires_grad_(False)
        loss_g = generator_loss(self.D(self.G(z, labels), labels))
        self.opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        self.opt_g.step()
        self.D.requires_grad_(True)
        return {"loss_d": loss_d.detach(), "loss_g": loss_g.detach()}


def make_trainer(args, data_dir: Path, impl: str) -> Trainer:
    """A trainer running the step ``impl`` names (module docstring); 'batched' is 'fast' without
    CUDA graphs."""
    step_impl = {"explicit-gp-compiled": "explicit-gp", "batched": "fast"}.get(impl, impl)
    cfg = TrainConfig(data_dir=str(data_dir), batch_size=args.batch_size, n_critic=N_CRITIC,
                      real_batches="shared", step_impl=step_impl, device=args.device,
                      compile_step=impl == "explicit-gp-compiled", seed=args.seed, tensorboard=False)
    trainer = Trainer(cfg)
    if impl == "batched":
        trainer.step_fn = Step(trainer, batched=True)
    return trainer


EXPLICIT = ("explicit-gp", "explicit-gp-compiled")
VIEW_OPS = {"aten::empty", "aten::empty_strided", "aten::view", "aten::as_strided", "aten::as_strided_",
            "aten::slice", "aten::select", "aten::transpose", "aten::t", "aten::expand", "aten::permute",
            "aten::unsqueeze", "aten::squeeze", "aten::reshape", "aten::_reshape_alias", "aten::_unsafe_view",
            "aten::detach", "aten::alias", "aten::split", "aten::chunk", "aten::narrow", "aten::unbind",
            "aten::resize_", "aten::result_type", "aten::lift_fresh", "aten::set_"}


def ops_per_step(step, steps: int, device: torch.device) -> dict:
    """Operators per step of ``step`` under torch.profiler: leaf aten ops (no aten children,
    views excluded) and compiled (inductor) kernels; on CUDA also the kernels launched."""
    from torch.profiler import ProfilerActivity, profile

    on_cuda = device.type == "cuda"
    with profile(activities=[ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if on_cuda else [])) as prof:
        for _ in range(steps):
            step()
        sync(device)
    parents = {e.cpu_parent.id for e in prof.events() if e.cpu_parent is not None and e.name.startswith("aten::")}
    leaf = sum(1 for e in prof.events() if e.name.startswith("aten::") and e.name not in VIEW_OPS
               and e.id not in parents)
    compiled = sum(1 for e in prof.events() if "cpp_fused" in e.name or e.name.startswith("triton_"))
    out = {"leaf_aten_ops": round(leaf / steps, 1), "compiled_kernels": round(compiled / steps, 1),
           "ops": round((leaf + compiled) / steps, 1)}
    if on_cuda:
        out["cuda_kernels"] = round(sum(1 for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA)
                                    / steps, 1)
    return out


def make_path(name: str, args, data_dir: Path):
    if name == "reference":
        return ReferenceLoop(data_dir, torch.device(args.device), args.batch_size, args.workers,
                             args.seed).step
    return make_trainer(args, data_dir, name).step


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def compare(args, data_dir: Path) -> dict:
    """Max |difference| of G(z|y) (train-mode BatchNorm), D(x|y) and the parameters after
    ``check_steps`` steps of the eager trainer vs the fast one (and vs a second eager run on
    CUDA), in ``check_dtype``. float64 shows whether the two compute the same function: in
    float32, Adam's first steps turn rounding differences (batch 320 vs 64 convolutions) into
    +-lr updates of parameters whose gradient is near zero (units that LeakyReLU(1e-4) turns
    off, biases before a norm), so float32 runs drift apart by ~1e-2 in G's output, as any two
    differently-rounded eager runs do."""
    dtype = getattr(torch, args.check_dtype)
    runs = {"eager": make_trainer(args, data_dir, "eager"), "fast": make_trainer(args, data_dir, "fast")}
    if args.device.startswith("cuda"):
        runs["eager2"] = make_trainer(args, data_dir, "eager")
    for trainer in runs.values():
        trainer.G.to(dtype), trainer.D.to(dtype)
        trainer.real = trainer.real.to(dtype)
        for _ in range(args.check_steps):
            trainer.step()
    device = runs["eager"].device
    gen = torch.Generator().manual_seed(12345)
    z = torch.randn(args.batch_size, ModelConfig().z_dim, generator=gen).to(device, dtype)
    labels = (torch.arange(args.batch_size) % 10).to(device)
    with torch.no_grad():
        out = {k: t.G(z, labels) for k, t in runs.items()}
        scores = {k: t.D(out["eager"], labels) for k, t in runs.items()}
    result = {"steps": args.check_steps, "dtype": args.check_dtype}
    for k, trainer in runs.items():
        if k != "eager":
            params = zip([*trainer.G.parameters(), *trainer.D.parameters()],
                         [*runs["eager"].G.parameters(), *runs["eager"].D.parameters()])
            result[f"{k}_vs_eager_max_abs_G"] = (out[k] - out["eager"]).abs().max().item()
            result[f"{k}_vs_eager_max_abs_D"] = (scores[k] - scores["eager"]).abs().max().item()
            result[f"{k}_vs_eager_max_abs_param"] = max((a - b).abs().max().item() for a, b in params)
    return result


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cpu", help="'cpu', 'cuda' or 'cuda:N'")
    p.add_argument("--steps", type=int, default=24, help="timed generator steps per path")
    p.add_argument("--warmup", type=int, default=None,
                   help="untimed steps per path first (default: 2 on cpu, 5 on cuda; at least 3 "
                        "on cuda, where the fast step captures its graph on its 3rd call)")
    p.add_argument("--rounds", type=int, default=3, help="interleaved timing rounds")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--data-dir", default=None,
                   help=f"IDX directory (default: $AUGMENT_DATA or ~/.cache/augment/mnist, else "
                        f"{FALLBACK_DATA_DIR})")
    p.add_argument("--paths", default=None,
                   help="comma-separated from reference,eager,fast,batched,explicit-gp,"
                        "explicit-gp-compiled (default: reference,eager,fast; on cuda also batched)")
    p.add_argument("--workers", type=int, default=0, help="DataLoader workers of the reference loop")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: 2 on cpu)")
    p.add_argument("--cudnn-benchmark", action="store_true", help="torch.backends.cudnn.benchmark")
    p.add_argument("--check-steps", type=int, default=None,
                   help="steps of the eager-vs-fast comparison (default: 2 on cpu, 5 on cuda; 0: skip)")
    p.add_argument("--check-dtype", default="float64", choices=("float64", "float32"),
                   help="dtype of the comparison (float64: rounding cannot hide a difference)")
    p.add_argument("--ops", action="store_true", help="also count operators per step of each path (profiler)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="also write the JSON result to this file")
    args = p.parse_args(argv)

    device = torch.device(args.device)
    on_cuda = device.type == "cuda"
    if on_cuda and not torch.cuda.is_available():
        sys.exit("Error: --device cuda but CUDA is not available")
    threads = args.threads or (2 if not on_cuda else None)
    if threads:
        torch.set_num_threads(threads)
    torch.backends.cudnn.benchmark = args.cudnn_benchmark
    warmup = args.warmup if args.warmup is not None else (5 if on_cuda else 2)
    if on_cuda:
        warmup = max(warmup, 3)
    args.check_steps = args.check_steps if args.check_steps is not None else (5 if on_cuda else 2)
    paths = (args.paths or "reference,eager,fast" + (",batched" if on_cuda else "")).split(",")
    unknown = set(paths) - {"reference", "eager", "fast", "batched", *EXPLICIT}
    if unknown:
        sys.exit(f"Error: unknown path(s) {', '.join(sorted(unknown))}")
    try:
        data_dir = resolve_data_dir(args.data_dir)
    except DataError:
        if args.data_dir is not None:
            raise
        data_dir = resolve_data_dir(FALLBACK_DATA_DIR)

    machine = torch.cuda.get_device_name(device) if on_cuda else \
        f"{cpu_model()} ({platform.machine()}), {torch.get_num_threads()} threads"
    print(f"device {device} ({machine}), torch {torch.__version__}, batch {args.batch_size}, "
          f"n_critic {N_CRITIC}, {args.steps} timed steps/path in {args.rounds} rounds, "
          f"warmup {warmup}, workers {args.workers}, cudnn.benchmark {args.cudnn_benchmark}")
    print("a 'batch' = one generator step (shared mode): one real batch through n_critic critic "
          "updates + 1 generator update; images/s = batch size x batches/s")
    if not on_cuda:
        print(f"note: CUDA graphs are unavailable on {device.type}; 'fast' is the batched step")

    result = {"device": str(device), "machine": machine, "torch": torch.__version__,
              "python": platform.python_version(), "batch_size": args.batch_size,
              "n_critic": N_CRITIC, "steps": args.steps, "rounds": args.rounds, "warmup": warmup,
              "workers": args.workers, "threads": torch.get_num_threads(),
              "cudnn_benchmark": args.cudnn_benchmark, "command": " ".join(sys.argv)}
    if args.check_steps > 0:
        try:
            result["check"] = compare(args, data_dir)
        except Exception as e:  # noqa: BLE001 - reported; the timing still runs
            result["check"] = {"error": f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"}
        print("check:", json.dumps(result["check"]))

    if args.ops:  # before anything compiles: compiled CPU kernels then show in the profiler
        import torch._inductor.config as inductor_config

        inductor_config.cpp.enable_kernel_profile = True
    steps, result["failed"] = {}, {}
    for name in paths:  # a path that fails is reported and left out; the others still run
        try:
            step = make_path(name, args, data_dir)
            for _ in range(warmup):
                step()
            sync(device)
            steps[name] = step
        except Exception as e:  # noqa: BLE001 - a benchmark reports, it does not stop
            result["failed"][name] = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
            print(f"{name:12s} FAILED: {result['failed'][name]}")
    # each round runs every path once, in an order rotated by one each round (no path always
    # follows the same one); per-round times give paired ratios that a slow spell of the host
    # (shared CPUs) shifts for all paths of that round alike
    per_round = {name: [] for name in steps}  # seconds per step, one entry per round
    names = list(steps)
    for r in range(args.rounds):
        n = args.steps // args.rounds + (r < args.steps % args.rounds)
        if n == 0:
            continue
        for name in names[r % len(names):] + names[:r % len(names)]:
            start = time.perf_counter()
            for _ in range(n):
                steps[name]()
            sync(device)
            per_round[name].append((time.perf_counter() - start, n))

    if args.ops:
        result["ops_per_step"] = {name: ops_per_step(step, 2, device) for name, step in steps.items()}
        for name, ops in result["ops_per_step"].items():
            print(f"{name:22s} {ops['ops']:8.1f} ops/step ({ops['leaf_aten_ops']} aten leaf ops, "
                  f"{ops['compiled_kernels']} compiled kernels)")
    result["paths"] = {}
    for name in steps:
        seconds, done = sum(t for t, _ in per_round[name]), sum(k for _, k in per_round[name])
        rate = done / seconds
        row = {"steps": done, "seconds": round(seconds, 3),
               "batches_per_s": round(rate, 4), "images_per_s": round(rate * args.batch_size, 2),
               "round_seconds_per_step": [round(t / k, 4) for t, k in per_round[name]]}
        for base in ("reference", "eager"):
            if base in steps:
                base_rate = sum(k for _, k in per_round[base]) / sum(t for t, _ in per_round[base])
                row[f"x_{base}"] = round(rate / base_rate, 3)
                paired = [(tb / kb) / (t / k) for (t, k), (tb, kb) in zip(per_round[name], per_round[base])]
                row[f"x_{base}_rounds_median"] = round(statistics.median(paired), 3)
                row[f"x_{base}_rounds_range"] = [round(min(paired), 3), round(max(paired), 3)]
        result["paths"][name] = row
        ratios = "  ".join(f"{k}={v}" for k, v in row.items() if k.startswith("x_") and "range" not in k)
        print(f"{name:22s} {row['batches_per_s']:9.3f} batches/s  {row['images_per_s']:9.1f} "
              f"images/s  {ratios}")
    if args.out:
        atomic_write_text(args.out, json.dumps(result, indent=2) + "\n")
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
