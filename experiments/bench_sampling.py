"""Images/s of synthetic sampling vs the real-MNIST pipeline, on one device in one run.

Measures, with the reference-size generator (``ModelConfig()``, random init):
  1. the raw forward: plain ``Generator`` (eval, inference_mode) and ``FastGenerator`` (its
     default strategies, (deconv, deconv, gemm); bfloat16 too on CUDA), plus the per-index
     latents alone;
  2. ``SyntheticMNIST`` through a ``DataLoader`` (shuffle, num_workers=0), with the default
     collate and with ``collate_batch``;
  3. torchvision's MNIST pipeline: ``datasets.MNIST`` over a temporary root holding
     MNIST/raw IDX files (from /work/shared/data/mnist or $AUGMENT_DATA) with per-item PIL
     Resize(32) / ToTensor / Normalize, through a DataLoader, batches moved to the device.

Each figure is the median of ``--repeats`` timed runs of at least ``--seconds`` each (after a
warm-up); CUDA work is synchronised. Writes a JSON file (machine, versions, load average,
numbers) and prints a table. Runs unchanged on CUDA: ``python experiments/bench_sampling.py
--device cuda`` (defaults: batch 256 / chunk 64 on CPU, batch 8192 = chunk on CUDA).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import torch
import torchvision
from torchvision import transforms

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from augment.config import ModelConfig  # noqa: E402
from augment.device import cpu_model  # noqa: E402
from augment.gan.models import Generator  # noqa: E402
from augment.synthetic.dataset import SamplingOptions, SyntheticMNIST, collate_batch  # noqa: E402
from augment.synthetic.fast_generator import FastGenerator, plain_forward  # noqa: E402
from augment.synthetic.latents import index_latents  # noqa: E402

MNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
               "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def throughput(step: Callable[[], int], device: torch.device, seconds: float, repeats: int) -> dict:
    """Images/s of ``step`` (returns images made): median and best of ``repeats`` runs."""
    step()
    sync(device)
    rates, cpu = [], []
    for _ in range(repeats):
        images, t0, c0 = 0, time.perf_counter(), time.process_time()
        while True:
            images += step()
            sync(device)
            elapsed = time.perf_counter() - t0
            if elapsed >= seconds:
                break
        rates.append(images / elapsed)
        cpu.append((time.process_time() - c0) / images)
    return {"img_per_s": round(statistics.median(rates), 1), "best_img_per_s": round(max(rates), 1),
            "cpu_ms_per_img": round(1e3 * statistics.median(cpu), 4)}


def batches(loader, device: torch.device) -> Callable[[], int]:
    """A step that takes the next batch (restarting the loader when it ends), moves it to
    ``device`` and returns its size."""
    state = {"it": iter(loader)}

    def step() -> int:
        try:
            images, labels = next(state["it"])
        except StopIteration:
            state["it"] = iter(loader)
            images, labels = next(state["it"])
        images.to(device, non_blocking=True)
        labels.to(device, non_blocking=True)
        return len(images)

    return step


def make_generator(device: torch.device) -> Generator:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        g = Generator(ModelConfig())
    return g.to(device).eval()


def bench_forward(g: Generator, device, batch: int, args) -> dict:
    gen = torch.Generator().manual_seed(0)
    z = torch.randn(batch, g.config.z_dim, generator=gen).to(device)
    y = (torch.arange(batch) % g.config.num_classes).to(device)
    out = {}

    def run(fn):
        return lambda: (fn(z, y), batch)[1]

    out["plain_fp32"] = throughput(run(lambda a, b: plain_forward(g, a, b)), device, args.seconds, args.repeats)
    dtypes = ["float32"] + (["bfloat16"] if device.type == "cuda" else [])
    if device.type == "cuda":
        g16 = make_generator(device).to(torch.bfloat16)
        out["plain_bf16"] = throughput(run(lambda a, b: plain_forward(g16, a.bfloat16(), b)), device,
                                       args.seconds, args.repeats)
    for dtype in dtypes:  # the key names the wide layers' strategy, as in the committed results
        fast = FastGenerator(g, dtype=dtype)
        out[f"fast_{dtype}_{fast.strategies[0]}"] = throughput(run(fast), device, args.seconds, args.repeats)
    if args.compile:  # torch.compile (inductor) of the plain and the fast forward: unmeasured ideas
        dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
        gc = make_generator(device).to(dtype)
        compiled = torch.compile(gc, mode=args.compile)
        name = str(dtype).replace("torch.", "")
        with torch.inference_mode():
            out[f"compiled_plain_{name}"] = throughput(run(lambda a, b: compiled(a.to(dtype), b)), device,
                                                       args.seconds, args.repeats)
        fast = torch.compile(FastGenerator(g, dtype=name), mode=args.compile)
        out[f"compiled_fast_{name}"] = throughput(run(fast), device, args.seconds, args.repeats)
    idx = torch.arange(batch, device=device)
    out["latents_only"] = throughput(lambda: (index_latents(0, idx, g.config.z_dim), batch)[1],
                                     device, args.seconds, args.repeats)
    return out


def bench_dataloader(g: Generator, device, args, dtype: str) -> dict:
    ds = SyntheticMNIST(g, num_samples=2 ** 24, sampling=SamplingOptions(dtype=dtype), device=device,
                        chunk=args.chunk)
    out = {}
    for name, collate in (("default_collate", None), ("collate_batch", collate_batch)):
        loader = torch.utils.data.DataLoader(ds, batch_size=args.batch, shuffle=True,
                                             generator=torch.Generator().manual_seed(0),
                                             **({"collate_fn": collate} if collate else {}))
        step = batches(loader, device)

        out[f"synthetic_{dtype}_{name}"] = throughput(step, device, args.seconds, args.repeats)
    out[f"synthetic_{dtype}_strategies"] = list(ds.generator.strategies)
    return out


def real_mnist_root(tmp: Path) -> Path:
    """tmp/MNIST/raw with the four uncompressed IDX files (torchvision's layout)."""
    sources = [Path(os.environ["AUGMENT_DATA"])] if os.environ.get("AUGMENT_DATA") else []
    sources.append(Path("/work/shared/data/mnist"))
    raw = tmp / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in MNIST_FILES:
        for src in sources:
            for cand in (src / name, src / f"{name}.gz", src / "MNIST" / "raw" / name):
                if cand.is_file():
                    data = cand.read_bytes()
                    (raw / name).write_bytes(gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data)
                    break
            if (raw / name).exists():
                break
        else:
            raise SystemExit(f"no {name}[.gz] in {sources}; set AUGMENT_DATA")
    return tmp


def bench_real(device, args) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        root = real_mnist_root(Path(tmp))
        tf = transforms.Compose([transforms.Resize(32), transforms.ToTensor(),
                                 transforms.Normalize((0.5,), (0.5,))])
        ds = torchvision.datasets.MNIST(root, train=True, download=False, transform=tf)
        loader = torch.utils.data.DataLoader(ds, batch_size=min(args.batch, 256), shuffle=True,
                                             generator=torch.Generator().manual_seed(0))
        return {"real_torchvision_pipeline": throughput(batches(loader, device), device,
                                                        args.seconds, args.repeats)}


def machine(device: torch.device) -> dict:
    info = {"platform": platform.platform(), "python": platform.python_version(),
            "torch": torch.__version__, "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(), "device": str(device), "cpu": cpu_model()}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
        info["cudnn_benchmark"] = torch.backends.cudnn.benchmark
        info["tf32_matmul"] = torch.backends.cuda.matmul.allow_tf32
        info["tf32_cudnn"] = torch.backends.cudnn.allow_tf32
    return info


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="auto")
    p.add_argument("--batch", type=int, default=None, help="DataLoader / forward batch")
    p.add_argument("--chunk", type=int, default=None, help="SyntheticMNIST chunk (rows per forward)")
    p.add_argument("--seconds", type=float, default=3.0, help="minimum seconds per timed run")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: all, max 2 on CPU)")
    p.add_argument("--cudnn-benchmark", action="store_true")
    p.add_argument("--skip-real", action="store_true")
    p.add_argument("--compile", default=None, metavar="MODE",
                   help="also time torch.compile(mode=MODE) of both forwards, e.g. 'max-autotune'")
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args()
    device = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device)
    if args.threads or device.type == "cpu":
        torch.set_num_threads(args.threads or min(2, os.cpu_count() or 1))
    torch.backends.cudnn.benchmark = args.cudnn_benchmark
    cpu = device.type == "cpu"
    args.batch = args.batch or (256 if cpu else 8192)
    args.chunk = args.chunk or (64 if cpu else args.batch)
    load_before = os.getloadavg()
    g = make_generator(device)
    results = {"machine": machine(device), "batch": args.batch, "chunk": args.chunk,
               "seconds": args.seconds, "repeats": args.repeats, "loadavg_before": load_before}
    results["forward_batch"] = bench_forward(g, device, args.batch, args)
    if args.chunk != args.batch:
        results["forward_chunk"] = bench_forward(g, device, args.chunk, args)
    results["dataloader"] = bench_dataloader(g, device, args, "float32")
    if not cpu:
        results["dataloader"].update(bench_dataloader(g, device, args, "bfloat16"))
    if not args.skip_real:
        results["real"] = bench_real(device, args)
    results["loadavg_after"] = os.getloadavg()
    out = args.out or Path(__file__).resolve().parent / "results" / f"bench_sampling_{device.type}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(results, indent=2) + "\n")
    os.replace(tmp, out)
    print(f"{'measurement':45s} {'img/s':>12s} {'best':>12s} {'cpu ms/img':>11s}")
    for section in ("forward_batch", "forward_chunk", "dataloader", "real"):
        for name, r in results.get(section, {}).items():
            if isinstance(r, dict):
                print(f"{section + '/' + name:45s} {r['img_per_s']:12,.0f} {r['best_img_per_s']:12,.0f} "
                      f"{r['cpu_ms_per_img']:11.3f}")
    print(f"load average {load_before} -> {results['loadavg_after']}; wrote {out}")


if __name__ == "__main__":
    main()
