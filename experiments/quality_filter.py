"""What quality-filtered sampling does, next to truncation, judged by a classifier that is not the filter.

Variants of the shipped generator's samples: none, filtered by the shipped evaluator at
p in {0.5, 0.9, 0.99}, and truncated at t in {2.0, 1.5}. For each:

1. 500 samples a class, scored by a *second* classifier (another seed and another architecture,
   trained here with ``train_and_save``: widths 32, 64, 128, seed 1): agreement, precision,
   recall, coverage and per-class Fréchet in its feature space, against real test;
2. the shipped-regime cells of the ``cpu`` grid at n = 10 and n = 100 real images per class,
   r = 4 synthetic per real one, 3 seeds, the grid's classifier budget (1,000 steps of 128,
   classical augmentation off), test accuracy on real MNIST test.

    python experiments/quality_filter.py --out experiments/results/quality_filter
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from augment.data.real import RealMNIST  # noqa: E402
from augment.device import machine_description  # noqa: E402
from augment.downstream.grid import PRESETS  # noqa: E402
from augment.downstream.runner import OnDemandImages  # noqa: E402
from augment.evaluation.classifier import ClassifierTrainConfig, predict, train_classifier  # noqa: E402
from augment.evaluation.classifier_files import load_classifier, quality_filter, train_and_save  # noqa: E402
from augment.evaluation.scoring import evaluate_samples, load_reference  # noqa: E402
from augment.fileio import atomic_write_text  # noqa: E402
from augment.synthetic.dataset import SyntheticMNIST  # noqa: E402
from augment.synthetic.mixing import dataset_targets, mix_real_synthetic  # noqa: E402

VARIANTS = {"none": {}, "filter p=0.5": {"p": 0.5}, "filter p=0.9": {"p": 0.9}, "filter p=0.99": {"p": 0.99},
            "truncation 2.0": {"truncation": 2.0}, "truncation 1.5": {"truncation": 1.5}}
CELL_VARIANTS = ("none", "filter p=0.9", "filter p=0.99", "truncation 2.0")


def synthetic_kwargs(variant: dict) -> dict:
    kwargs = {}
    if "p" in variant:
        kwargs["quality_filter"] = quality_filter(variant["p"])
    if "truncation" in variant:
        kwargs["truncation"] = variant["truncation"]
    return kwargs


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--data-dir", default=None)
    p.add_argument("--per-class", type=int, default=500)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    results_path = args.out / "results.json"
    results = json.loads(results_path.read_text()) if results_path.exists() else {"samples": {}, "cells": []}

    def save() -> None:
        atomic_write_text(results_path, json.dumps(results, indent=2) + "\n")

    judge_path = args.out / "second_judge.safetensors"
    if not judge_path.exists():  # another seed and architecture than the filter's (the shipped evaluator)
        info = train_and_save(judge_path, dataclasses.replace(ClassifierTrainConfig(), seed=1), data_dir=args.data_dir,
                              widths=(32, 64, 128), command="experiments/quality_filter.py")
        results["second_judge"] = {"test_accuracy": info["test_accuracy"], "widths": [32, 64, 128], "seed": 1,
                                   "sha256": info["sha256"]}
        save()
    judge = load_classifier(judge_path)
    reference = load_reference(judge, args.data_dir)
    for name, variant in VARIANTS.items():
        if name in results["samples"]:
            continue
        started = time.time()
        ds = SyntheticMNIST(num_samples=10 * args.per_class, seed=0, **synthetic_kwargs(variant))
        images, labels = ds.generate(range(len(ds)))
        scores = evaluate_samples(images, labels, judge, reference, seed=0)
        results["samples"][name] = {**{k: scores["overall"][k] for k in
                                       ("agreement", "precision", "recall", "coverage", "class_frechet")},
                                    "per_class_agreement": scores["per_class"]["agreement"],
                                    "seconds": round(time.time() - started, 1)}
        print(name, {k: round(v, 4) for k, v in results["samples"][name].items() if isinstance(v, float)})
        save()
    grid = PRESETS["cpu"]
    test = RealMNIST(args.data_dir, train=False)
    done = {(c["variant"], c["n_per_class"], c["seed"]) for c in results["cells"]}
    for n in (10, 100):
        for seed in range(args.seeds):
            for name in ("real only",) + CELL_VARIANTS:
                if (name, n, seed) in done:
                    continue
                started = time.time()
                real = RealMNIST(args.data_dir, train=True, n_per_class=n, seed=seed)
                if name == "real only":
                    images, labels = real.data, real.targets
                else:
                    mixed = mix_real_synthetic(real, None, 4.0, seed=10_000 + seed,
                                               **synthetic_kwargs(VARIANTS[name]))
                    images, labels = OnDemandImages(mixed, "cpu"), dataset_targets(mixed)
                budget = ClassifierTrainConfig(steps=grid.classifier_steps, batch_size=grid.classifier_batch,
                                               seed=seed, max_shift=0)
                model, _ = train_classifier(images, labels, train=budget, device="cpu")
                accuracy = float((predict(model, test.data) == test.targets).double().mean())
                results["cells"].append({"variant": name, "n_per_class": n, "seed": seed, "test_accuracy": accuracy,
                                         "seconds": round(time.time() - started, 1)})
                print(name, n, seed, round(100 * accuracy, 2))
                save()
    results.update(machine=machine_description(torch.device("cpu")), threads=args.threads,
                   torch=torch.__version__, command="python " + " ".join(sys.argv))
    save()


if __name__ == "__main__":
    main()
