"""Tune the long-tailed grid's baselines (and its budget) on a validation set, not on test.

The validation set is 100 images per class of MNIST's train split that no long-tailed subset
holds (positions 5,000-5,099 of each class's seeded permutation, ``held_out_per_class``): balanced,
like the test set, and disjoint from every cell's training images. Seed 0, each imbalance ratio:

* the classifier budget, 1,000 vs 2,000 steps, for ERM, classical and classical + synthetic
  top-up (shipped generator): one budget for every method;
* the logit adjustment's tau in {0.25, 0.5, 1, 1.5, 2}, alone and with classical augmentation;
* class-balanced resampling with classical augmentation;
* the top-up's target (each class filled up to it) in {500, 1000, 2000, 5000} with classical
  augmentation, for the shipped generator and for the fair one of seed 0 (``--fair-dir``: the
  grid's ``fair_generators/lt{RHO}_seed0``, trained on the seed-0 subset; a fair trial whose
  generator is not there is skipped, never trained here). At rho = 10 the rarest class has 500
  images, so target 500 adds nothing there: the real-only control;
* the synthetic ratio r of classical + synthetic + logit adjustment (r * n_c synthetic images
  added to class c; tau 0.5) in {0.5, 1, 2, 4}, with the fair generator of seed 0.

Prints and writes a table of balanced accuracy and rarest-class recall on the validation set.

    python experiments/longtail_tuning.py --out experiments/results/longtail_cpu/tuning.csv
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from augment.data.mnist import load_split, resolve_data_dir  # noqa: E402
from augment.data.subsets import held_out_per_class  # noqa: E402
from augment.device import machine_description, resolve_device  # noqa: E402
from augment.downstream.grid import read_results, write_results  # noqa: E402
from augment.downstream.longtail import PRESETS, LongTailCell, LongTailContext, run_cell  # noqa: E402
from augment.downstream.longtail_fair import check_fair_run_settings, fair_config, fair_run_name  # noqa: E402
from augment.images import to_model_images  # noqa: E402

TRIALS = [  # (method, regime, classifier steps, tau, top-up target, synthetic ratio; "" where the method has none)
    *[(m, r, steps, 1.0, 5000 if r != "-" else "", "") for steps in (1000, 2000)
      for m, r in (("erm", "-"), ("classical", "-"), ("classical+top-up", "shipped"))],
    *[(m, "-", 1000, tau, "", "") for tau in (0.25, 0.5, 1.0, 1.5, 2.0)
      for m in ("logit-adjusted", "classical+logit-adjusted")],
    ("classical+balanced", "-", 1000, 1.0, "", ""),
    *[("classical+top-up", "fair", 1000, 1.0, target, "") for target in (500, 1000, 2000, 5000)],
    *[("classical+top-up", "shipped", 1000, 1.0, target, "") for target in (500, 1000, 2000)],  # 5000: above
    *[("classical+synthetic+logit-adjusted", "fair", 1000, 0.5, "", ratio) for ratio in (0.5, 1.0, 2.0, 4.0)],
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
    p.add_argument("--taus", default=None, help="only logit-adjusted trials with these taus, comma-separated "
                                                "(default: all)")
    p.add_argument("--regimes", default=None, help="only trials of these regimes ('-', shipped, fair; default: all)")
    p.add_argument("--fair-dir", type=Path, default=None,
                   help="the grid's fair generators (lt100_seed0/ ...) for the fair trials (default: OUT's folder's "
                        "fair_generators)")
    args = p.parse_args(argv)
    methods = set(args.methods.split(",")) if args.methods else None
    taus = {float(t) for t in args.taus.split(",")} if args.taus else None
    regimes = set(args.regimes.split(",")) if args.regimes else None
    unknown = sorted((methods or set()) - {t[0] for t in TRIALS}) + \
        [str(t) for t in sorted((taus or set()) - {t[3] for t in TRIALS})] + \
        sorted((regimes or set()) - {t[1] for t in TRIALS})
    if unknown:
        p.error(f"no trial has {', '.join(unknown)}")
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    data_dir = resolve_data_dir(args.data_dir)
    images, labels = load_split(data_dir, "train")
    held = held_out_per_class(labels, args.per_class, seed=0)
    validation = (to_model_images(images[held], device), labels[held].to(device))
    fair_dir = args.fair_dir or args.out.parent / "fair_generators"
    trials = read_trials(args.out)
    done = {trial_key(r["imbalance_ratio"], r["method"], r["regime"], r["classifier_steps"], r["logit_adjust_tau"],
                      r["top_up_target"], r["synthetic_ratio"]) for r in trials}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    for rho in (float(r) for r in args.ratios.split(",")):
        for method, regime, steps, tau, target, ratio in TRIALS:
            key = trial_key(rho, method, regime, steps, tau, target, ratio)
            if key in done or (methods and method not in methods) or (regimes and regime not in regimes) or \
                    (taus and "logit-adjusted" in method and tau not in taus):
                continue
            grid = dataclasses.replace(PRESETS["longtail-cpu"], classifier_steps=steps, logit_adjust_tau=tau,
                                       top_up_target=target or None, synthetic_ratio=ratio or 1.0)
            if regime == "fair":
                run = fair_dir / fair_run_name(grid.subset(rho), 0)
                if not (run / "generator.safetensors").is_file():
                    print(f"skipped rho={rho:g} {method} (fair) target={target or '-'} synthetic_ratio={ratio or '-'}: "
                          f"no generator in {run}")
                    continue
                check_fair_run_settings(run, fair_config(grid, rho, 0, data_dir, "mnist", device))
            ctx = LongTailContext(grid, args.out.parent, device, data_dir, None, fair_dir,
                                  validation, 10, progress=False, log=print)
            started = time.time()
            row = run_cell(LongTailCell(rho, method, regime, 0), ctx)
            row = {"imbalance_ratio": rho, "method": method, "regime": regime, "classifier_steps": steps,
                   "logit_adjust_tau": tau, "validation_balanced_accuracy": row["balanced_accuracy"],
                   "validation_rare_recall": row["rare_recall"], "validation_worst_recall": row["worst_recall"],
                   "seconds": round(time.time() - started, 1), "machine": machine_description(device),
                   "threads": torch.get_num_threads(), "top_up_target": target, "synthetic_ratio": ratio}
            trials.append(row)
            write_results(args.out, trials, tuple(trials[0]))  # the whole CSV, atomically
            done.add(key)
            print(f"rho={rho:g} {method} ({regime}) steps={steps} tau={tau} target={target or '-'} "
                  f"synthetic_ratio={ratio or '-'}: balanced "
                  f"{100 * row['validation_balanced_accuracy']:.2f}, rare {100 * row['validation_rare_recall']:.2f}")


def trial_key(rho, method, regime, steps, tau, target, ratio) -> tuple:
    return (float(rho), method, regime, int(steps), float(tau), str(target), "" if ratio == "" else float(ratio))


def read_trials(path: Path) -> list[dict]:
    """The trials in the CSV at ``path`` ([] without one). Rows from before the regime, the
    target and the synthetic ratio were columns get them: '-', for the shipped top-up 5,000 (the
    largest class), and no ratio (none of those methods has one)."""
    rows = read_results(path)
    for r in rows:
        r.setdefault("regime", "-")
        r.setdefault("synthetic_ratio", "")
        if not r.get("top_up_target"):
            r["top_up_target"] = 5000 if "top-up" in r["method"] else ""
    return rows


if __name__ == "__main__":
    main()
