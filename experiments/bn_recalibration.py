"""Does recomputing the generator's BatchNorm statistics improve its samples?

Sampling runs the generator in eval mode, so its BatchNorm layers use the running statistics
that training left behind: an exponential average (momentum 0.1) over roughly the last ten
training batches of 64, taken while the weights were still moving. This script replaces them
by a cumulative average over ``--batches`` fresh batches of 64 (random labels, train-mode
forwards with ``momentum=None``; the weights are untouched) and evaluates each variant with
``augment.evaluation.scoring.evaluate_generator`` on the same samples per class.

    python experiments/bn_recalibration.py --n-per-class 300 --batches 10,100,500 \
        --out experiments/results/bn_recalibration.json
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from augment.checkpoint import load_generator  # noqa: E402
from augment.evaluation.classifier_files import default_classifier  # noqa: E402
from augment.evaluation.scoring import evaluate_generator, load_reference  # noqa: E402
from augment.fileio import atomic_write_text  # noqa: E402
from augment.synthetic.shipped import default_generator_path  # noqa: E402


def recalibrated(generator: torch.nn.Module, batches: int, batch_size: int = 64, seed: int = 123):
    """A copy of ``generator`` whose BatchNorm running statistics are the plain average over
    ``batches`` train-mode forwards of ``batch_size`` N(0, I) latents with uniform labels."""
    generator = copy.deepcopy(generator)
    norms = [m for m in generator.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative moving average
    rng = torch.Generator().manual_seed(seed)
    generator.train()
    with torch.no_grad():
        for _ in range(batches):
            z = torch.randn(batch_size, generator.config.z_dim, generator=rng)
            labels = torch.randint(0, generator.config.num_classes, (batch_size,), generator=rng)
            generator(z, labels)
    for m in norms:
        m.momentum = 0.1
    return generator.eval()


def summary(result: dict) -> dict:
    overall, per_class = result["overall"], result["per_class"]
    row = {k: round(overall[k], 4) for k in ("agreement", "precision", "recall", "coverage", "frechet")}
    row["min_class_agreement"] = round(min(per_class["agreement"]), 4)
    row["min_class_coverage"] = round(min(per_class["coverage"]), 4)
    return row


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--generator", type=Path, default=None, help="default: the shipped one")
    p.add_argument("--n-per-class", type=int, default=300)
    p.add_argument("--batches", default="10,100,500")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    started = time.time()
    generator = load_generator(args.generator or default_generator_path())
    classifier = default_classifier("cpu")
    reference = load_reference(classifier, args.data_dir)
    rows = {"as shipped": summary(evaluate_generator(generator, args.n_per_class, classifier=classifier,
                                                     reference=reference))}
    print("as shipped", rows["as shipped"], flush=True)
    for batches in (int(b) for b in args.batches.split(",")):
        name = f"recalibrated on {batches} x 64"
        rows[name] = summary(evaluate_generator(recalibrated(generator, batches), args.n_per_class,
                                                classifier=classifier, reference=reference))
        print(name, rows[name], flush=True)
    result = {"generator": str(args.generator or "shipped"), "n_per_class": args.n_per_class,
              "torch": torch.__version__, "seconds": round(time.time() - started, 1), "rows": rows}
    if args.out is not None:
        atomic_write_text(args.out, json.dumps(result, indent=2) + "\n")
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
