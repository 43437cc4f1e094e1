"""Tune the long-tailed grid's baselines (and its budget) on a validation set, not on test.

The validation set is 100 images per class of MNIST's train split that no long-tailed subset
holds (positions 5,000-5,099 of each class's seeded permutation, ``held_out_per_class``): balanced,
like the test set, and disjoint from every cell's training images. Seed 0, each imbalance ratio:

* the classifier budget, 1,000 vs 2,000 steps, for ERM, classical and classical + synthetic
  top-up (shipped generator): one budget for every method;
* the logit adjustment's tau in {0.25, 0.5, 1, 1.5, 2}, alone and with classical augmentation;
* class-balanced resampling with classical augmentation.

Prints and writes a table of balanced accuracy and rarest-class recall on the validation set.

    python experiments/longtail_tuning.py --out experiments/results/longtail_cpu/tuning.csv
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from augment.data.mnist import load_split, resolve_data_dir  # noqa: E402
from augment.data.subsets import held_out_per_class  # noqa: E402
from augment.device import machine_description, resolve_device  # noqa: E402
from augment.downstream.longtail import PRESETS, LongTailCell, LongTailContext, run_cell  # noqa: E402
from augment.images import to_model_images  # noqa: E402

TRIALS = [  # (method, regime, classifier steps, tau)
    *[(m, r, steps, 1.0) for steps in (1000, 2000)
      for m, r in (("erm", "-"), ("classical", "-"), ("classical+top-up", "shipped"))],
    *[(m, "-", 1000, tau) for tau in (0.25, 0.5, 1.0, 1.5, 2.0)
      for m in ("logit-adjusted", "classical+logit-adjusted")],
    ("classical+balanced", "-", 1000, 1.0),
]


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, required=True, help="CSV of the trials (appended; finished trials skipped)")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--ratios", default="100,10")
    p.add_argument("--per-class", type=int, default=100, help="validation images per class")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default="cpu")
    p.add_argument("--methods", default=None, help="only these methods' trials, comma-separated (default: all)")
    p.add_argument("--taus", default=None, help="only trials with these taus, comma-separated (default: all)")
    args = p.parse_args(argv)
    methods = set(args.methods.split(",")) if args.methods else None
    taus = {float(t) for t in args.taus.split(",")} if args.taus else None
    unknown = sorted((methods or set()) - {t[0] for t in TRIALS}) + \
        [str(t) for t in sorted((taus or set()) - {t[3] for t in TRIALS})]
    if unknown:
        p.error(f"no trial has {', '.join(unknown)}")
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    data_dir = resolve_data_dir(args.data_dir)
    images, labels = load_split(data_dir, "train")
    held = held_out_per_class(labels, args.per_class, seed=0)
    validation = (to_model_images(images[held], device), labels[held].to(device))
    done = {}
    if args.out.exists():
        with open(args.out, newline="") as f:
            done = {(r["imbalance_ratio"], r["method"], r["classifier_steps"], r["logit_adjust_tau"]): r
                    for r in csv.DictReader(f)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    for rho in (float(r) for r in args.ratios.split(",")):
        for method, regime, steps, tau in TRIALS:
            key = (str(rho), method, str(steps), str(tau))
            if key in done or (methods and method not in methods) or (taus and tau not in taus):
                continue
            grid = dataclasses.replace(PRESETS["longtail-cpu"], classifier_steps=steps, logit_adjust_tau=tau)
            ctx = LongTailContext(grid, args.out.parent, device, data_dir, None, args.out.parent / "unused",
                                  validation, 10, progress=False, log=print)
            started = time.time()
            row = run_cell(LongTailCell(rho, method, regime, 0), ctx)
            row = {"imbalance_ratio": rho, "method": method, "regime": regime, "classifier_steps": steps,
                   "logit_adjust_tau": tau, "validation_balanced_accuracy": row["balanced_accuracy"],
                   "validation_rare_recall": row["rare_recall"], "validation_worst_recall": row["worst_recall"],
                   "seconds": round(time.time() - started, 1), "machine": machine_description(device),
                   "threads": torch.get_num_threads()}
            new = not args.out.exists()
            with open(args.out, "a", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=list(row))
                if new:
                    writer.writeheader()
                writer.writerow(row)
            print(f"rho={rho:g} {method} ({regime}) steps={steps} tau={tau}: balanced "
                  f"{100 * row['validation_balanced_accuracy']:.2f}, rare {100 * row['validation_rare_recall']:.2f}")


if __name__ == "__main__":
    main()
