"""Class-balanced or uniform real batches for the critic of a long-tailed fair generator?

Two generators trained on the same long-tailed subset (same seed, same images), one with
``--real-sampling balanced`` (every class equally often, rare images repeated), one with
``uniform`` (the data's own frequencies). Each is scored class by class by the shipped evaluator
(agreement, coverage, Fréchet; 200 samples a class, against real training images scored the
same way at the same n), and used for the grid's synthetic top-up on the validation set of
``longtail_tuning.py`` (seed 0). Writes a JSON and a Markdown table.

    python experiments/longtail_real_sampling.py --ratio 100 \
        --generator balanced=runs/lt/lt100_seed0_balanced/generator.safetensors \
        --generator uniform=runs/lt/lt100_seed0_uniform/generator.safetensors \
        --out experiments/results/longtail_cpu/real_sampling
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from augment.data.mnist import load_split, resolve_data_dir  # noqa: E402
from augment.data.subsets import held_out_per_class, subset_counts  # noqa: E402
from augment.device import machine_description, resolve_device  # noqa: E402
from augment.downstream.longtail import PRESETS, LongTailCell, LongTailContext, run_cell  # noqa: E402
from augment.downstream.longtail_summary import diversity_tables  # noqa: E402
from augment.downstream.runner import per_class_diversity  # noqa: E402
from augment.evaluation.report import markdown_table  # noqa: E402
from augment.fileio import atomic_write_text, sha256_file  # noqa: E402
from augment.images import to_model_images  # noqa: E402


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--generator", action="append", required=True, help="NAME=PATH, e.g. balanced=g.safetensors")
    p.add_argument("--ratio", type=float, default=100.0, help="the generators' imbalance ratio")
    p.add_argument("--seed", type=int, default=0, help="the generators' (and their subset's) seed")
    p.add_argument("--per-class", type=int, default=200, help="samples per class scored")
    p.add_argument("--out", type=Path, required=True, help="output path without suffix (.json and .md are written)")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = resolve_device("cpu")
    data_dir = resolve_data_dir(args.data_dir)
    generators = [(name, Path(path)) for name, path in (g.split("=", 1) for g in args.generator)]
    grid = PRESETS["longtail-cpu"]
    counts = subset_counts(grid.subset(args.ratio), 10, args.seed)
    started = time.time()
    diversity = per_class_diversity(generators, args.per_class, device, data_dir, "mnist")
    per_class, grouped = diversity_tables(diversity, {name: counts for name, _ in generators})

    images, labels = load_split(data_dir, "train")
    held = held_out_per_class(labels, 100, seed=0)
    validation = (to_model_images(images[held], device), labels[held].to(device))
    downstream = []
    for name, path in generators:
        ctx = LongTailContext(grid, args.out.parent, device, data_dir, None, args.out.parent, validation, 10)
        ctx.generator_for = lambda cell, path=path: path  # this generator in the fair regime
        for method in ("top-up", "classical+top-up"):
            row = run_cell(LongTailCell(args.ratio, method, "fair", args.seed), ctx)
            downstream.append({"generator": name, "method": method,
                               "validation_balanced_accuracy": row["balanced_accuracy"],
                               "validation_rare_recall": row["rare_recall"]})
    info = {"ratio": args.ratio, "seed": args.seed, "train_counts": counts, "per_class": args.per_class,
            "generators": {name: {"path": str(path), "sha256": sha256_file(path)} for name, path in generators},
            "diversity": diversity, "downstream": downstream, "machine": machine_description(device),
            "threads": torch.get_num_threads(), "seconds": round(time.time() - started, 1),
            "command": "python " + " ".join(sys.argv)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out.with_suffix(".json"), json.dumps(info, indent=2, default=float) + "\n")
    md = [f"# Critic real batches for a long-tailed fair generator (rho = {args.ratio:g}, seed {args.seed})", "",
          f"Training images per class: {counts}. {args.per_class} samples a class, scored by the shipped evaluator.",
          "", markdown_table(grouped.set_index("generator"), "generator"), "",
          "Synthetic top-up on the validation set (100 a class of train, held out), balanced accuracy and the "
          "3 rarest classes' recall:", "",
          markdown_table(pd.DataFrame(downstream).set_index("generator"), "generator"), "", "Per class:", "",
          markdown_table(per_class.set_index("generator"), "generator"), "",
          f"Command: `{info['command']}`; {info['machine']}, {info['threads']} threads, {info['seconds']} s."]
    atomic_write_text(args.out.with_suffix(".md"), "\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
