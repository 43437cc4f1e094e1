"""How fast is SyntheticMNIST's torchvision drop-in (``output="pil"``) against its tensor items?

Images per second through a DataLoader (batch 64, the usual MNIST script's), on the CPU:

* ``tensor``: tensor items, ``collate_batch`` (one generator forward per batch, no per-item work);
* ``pil``: PIL items with ``ToTensor()`` + ``Normalize`` (batched fetch: one forward per batch,
  then 28x28 PIL images and the transforms item by item);
* ``pil, ConcatDataset``: the same beside torchvision's MNIST in torch's ``ConcatDataset``,
  shuffled (items fetched one at a time), with the default chunk and with ``chunk=1``, and in
  ``BatchedConcatDataset`` (a batch's synthetic items in one forward);
* ``real MNIST``: torchvision's MNIST with the same transforms, for reference.

    python experiments/bench_pil_output.py --mnist-root DIR --out experiments/results/pil_output.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import torch
from torch.utils.data import ConcatDataset, DataLoader
from torchvision import datasets, transforms

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from augment.device import machine_description  # noqa: E402
from augment.synthetic.dataset import RandomAccessWarning, SyntheticMNIST, collate_batch  # noqa: E402
from augment.synthetic.mixing import BatchedConcatDataset  # noqa: E402


def rate(loader: DataLoader, batches: int) -> float:
    """Images per second over ``batches`` batches (after one warm-up batch)."""
    it = iter(loader)
    next(it)
    started, images = time.perf_counter(), 0
    for _ in range(batches):
        x, _ = next(it)
        images += len(x)
    return images / (time.perf_counter() - started)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--mnist-root", required=True, help="torchvision's MNIST root (MNIST/raw inside)")
    p.add_argument("--batches", type=int, default=30)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    warnings.simplefilter("ignore", RandomAccessWarning)  # measured here on purpose
    usual = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.1307,), (0.3081,))])
    real = datasets.MNIST(args.mnist_root, train=True, transform=usual)
    n = 60_000
    cases = {
        "tensor (collate_batch)": DataLoader(SyntheticMNIST(num_samples=n, seed=0), batch_size=64, shuffle=True,
                                             collate_fn=collate_batch),
        "pil + ToTensor/Normalize": DataLoader(SyntheticMNIST(num_samples=n, seed=0, output="pil", transform=usual),
                                               batch_size=64, shuffle=True),
        "pil in torch ConcatDataset with real MNIST, shuffled": DataLoader(
            ConcatDataset([real, SyntheticMNIST(num_samples=n, seed=0, output="pil", transform=usual)]),
            batch_size=64, shuffle=True),
        "pil in BatchedConcatDataset with real MNIST, shuffled": DataLoader(
            BatchedConcatDataset([real, SyntheticMNIST(num_samples=n, seed=0, output="pil", transform=usual)]),
            batch_size=64, shuffle=True),
        "pil in torch ConcatDataset, chunk=1": DataLoader(
            ConcatDataset([real, SyntheticMNIST(num_samples=n, seed=0, output="pil", transform=usual, chunk=1)]),
            batch_size=64, shuffle=True),
        "real MNIST (torchvision) + ToTensor/Normalize": DataLoader(real, batch_size=64, shuffle=True),
    }
    results = {}
    for name, loader in cases.items():
        results[name] = round(rate(loader, args.batches), 1)
        print(f"{name}: {results[name]:,.0f} img/s")
    info = {"images_per_second": results, "batch_size": 64, "batches": args.batches, "threads": args.threads,
            "machine": machine_description(torch.device("cpu")), "torch": torch.__version__,
            "command": "python " + " ".join(sys.argv)}
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(info, indent=2) + "\n")


if __name__ == "__main__":
    main()
