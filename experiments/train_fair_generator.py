"""Train one fair generator exactly as ``augment experiment`` would for a missing one, so that
several can train side by side (one thread each) before the grid runs their cells.

The grid trains a missing fair generator itself, one at a time, inside its own process. On 2 cores
two 1-thread runs side by side make 1.2x the steps of two 2-thread runs one after another
(``experiments/results/cpu_recipe/``), so long fair generators are trained ahead with this script,
in the same ``--fair-dir``; the grid then checks each run's config against its own and uses it.
The config comes from the library (``augment.downstream.fair.fair_train_config``) for the named
preset with the given ``--fair-*`` overrides; a run already there is first checked as the grid
checks it (``check_fair_run``: refused when trained otherwise), then resumed, or left alone when
finished.

    OMP_NUM_THREADS=1 python experiments/train_fair_generator.py --preset longtail-cpu \
        --fair-recipe cpu --fair-widths 32,16 --fair-gan-steps 9000 --imbalance-ratio 100 --seed 0 \
        --fair-dir experiments/results/cpu_recipe/fair_generators
    OMP_NUM_THREADS=1 python experiments/train_fair_generator.py --preset cpu --fair-recipe cpu \
        --fair-gan-steps 9000 --n-per-class 10 --seed 0 --fair-dir experiments/results/cpu_recipe/fair_generators
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import torch

from augment.config import SubsetSpec
from augment.data.sources import source_kind
from augment.downstream.fair import check_fair_run, fair_run_name, fair_train_config, train_or_resume
from augment.downstream.grid import FAIR_RECIPES
from augment.downstream.presets import PRESETS
from augment.errors import AugmentError


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", choices=sorted(PRESETS), required=True, help="the grid whose fair generator this is")
    p.add_argument("--fair-dir", type=Path, required=True, help="where the grid will look for it")
    p.add_argument("--seed", type=int, required=True, help="the cell's seed (the same real images)")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--imbalance-ratio", type=float, help="a long-tailed subset (longtail presets)")
    which.add_argument("--n-per-class", type=int, help="a balanced subset (balanced presets)")
    p.add_argument("--fair-recipe", choices=FAIR_RECIPES, default=None)
    p.add_argument("--fair-widths", default=None, help="G,D widths, e.g. 32,16")
    p.add_argument("--fair-gan-steps", type=int, default=None)
    p.add_argument("--data-dir", type=Path, default=None)
    p.add_argument("--dataset", default=None, help="what --data-dir holds (default: recognised from the path)")
    p.add_argument("--quiet", action="store_true")
    args = p.parse_args()

    grid = PRESETS[args.preset].grid
    if (args.imbalance_ratio is not None) != (grid.kind == "longtail"):
        p.error(f"--preset {args.preset} is a {grid.kind} grid: its subsets are "
                f"{'--imbalance-ratio' if grid.kind == 'longtail' else '--n-per-class'}")
    try:
        widths = tuple(int(w) for w in args.fair_widths.split(",")) if args.fair_widths else None
    except ValueError:
        p.error(f"--fair-widths must be two ints G,D, e.g. 32,16; got {args.fair_widths!r}")
    try:
        changes = {"fair_recipe": args.fair_recipe, "fair_gan_steps": args.fair_gan_steps, "fair_widths": widths}
        grid = dataclasses.replace(grid, **{k: v for k, v in changes.items() if v is not None})
        subset = (grid.subset(args.imbalance_ratio) if grid.kind == "longtail"
                  else SubsetSpec(n_per_class=args.n_per_class))
        dataset = source_kind(args.data_dir, args.dataset)
        cfg = fair_train_config(grid, subset, args.seed, args.data_dir, dataset, torch.device("cpu"))
        run = args.fair_dir / fair_run_name(subset, args.seed)
        check_fair_run(run, cfg, grid.fair_settings)  # as the grid will: refused now, not after hours
    except (ValueError, AugmentError) as e:
        p.error(str(e))
    if (run / "generator.safetensors").exists():  # and not stopped short: check_fair_run
        print(f"{run} is finished; the grid will use it as it is")
        return
    print(f"training {run} ({cfg.max_steps} steps, recipe {grid.fair_recipe}, widths "
          f"{cfg.model.g_width}/{cfg.model.d_width})")
    print(train_or_resume(run, cfg, progress=not args.quiet, log=print))


if __name__ == "__main__":
    main()
