"""Does a weight average of the generator (``--ema-decay``) make better samples than its live weights?

One training run keeps both: the live generator G and its exponential moving average
(``augment.gan.ema``). Every ``--eval-every`` generator steps the script samples
``--n-per-class`` digits per class from each, with the same latents, and scores them against
the real test set with the shipped classifier (``augment.evaluation.scoring.evaluate_samples``):
classifier agreement, per-class Fréchet distance, precision, recall and coverage. With
``--recalibrate N`` it also scores both with BatchNorm statistics recomputed over N batches
(``bn_recalibration.recalibrated``): the average's copied statistics belong to the live
weights. ``decay_in_use`` is the warm-up's decay at that step (``augment.gan.ema.decay_at``).
The comparison is paired (same run, same step, same latents). Prints one JSON line per
evaluation and a markdown table; writes JSON.

    python experiments/generator_ema.py --g-width 32 --d-width 16 --minutes 25 \\
        --ema-decay 0.999 --eval-every 1000 --data-dir data/mnist \\
        --out experiments/results/generator_ema_cpu.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bn_recalibration import recalibrated  # noqa: E402

from augment.config import ModelConfig, TrainConfig  # noqa: E402
from augment.device import machine_description  # noqa: E402
from augment.evaluation.classifier_files import default_classifier  # noqa: E402
from augment.evaluation.scoring import evaluate_samples, load_reference, sample_generator  # noqa: E402
from augment.fileio import atomic_write_text  # noqa: E402
from augment.gan.ema import decay_at  # noqa: E402
from augment.training.trainer import Trainer  # noqa: E402

COLUMNS = ("agreement", "class_frechet", "precision", "recall", "coverage")


def score(generator, n_per_class: int, classifier, reference) -> dict:
    images, labels = sample_generator(generator, n_per_class, seed=0)
    result = evaluate_samples(images, labels, classifier, reference)
    row = {k: round(result["overall"][k], 4) for k in COLUMNS}
    row["min_class_agreement"] = round(min(result["per_class"]["agreement"]), 4)
    row["min_class_coverage"] = round(min(result["per_class"]["coverage"]), 4)
    return row


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--g-width", type=int, default=128)
    p.add_argument("--d-width", type=int, default=64)
    p.add_argument("--ema-decay", type=float, default=0.999)
    p.add_argument("--max-steps", type=int, default=None, help="generator steps (default: --minutes)")
    p.add_argument("--minutes", type=float, default=None, help="training wall-time budget")
    p.add_argument("--eval-every", type=int, default=1000, help="generator steps between evaluations")
    p.add_argument("--n-per-class", type=int, default=300)
    p.add_argument("--recalibrate", type=int, default=0, help="also score the average with "
                   "BatchNorm statistics recomputed over this many batches of 64 (0: no)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2, help="CPU threads (CPU only)")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)
    if args.max_steps is None and args.minutes is None:
        p.error("give --max-steps or --minutes")
    if args.device == "cpu":
        torch.set_num_threads(args.threads)
    cfg = TrainConfig(model=ModelConfig(g_width=args.g_width, d_width=args.d_width), data_dir=args.data_dir,
                      ema_decay=args.ema_decay, seed=args.seed, device=args.device, tensorboard=False)
    trainer = Trainer(cfg)
    classifier = default_classifier(args.device)
    reference = load_reference(classifier, args.data_dir)
    rows, train_seconds = [], 0.0

    def evaluate() -> None:
        started = time.time()
        row = {"step": trainer.step_count, "train_seconds": round(train_seconds, 1),
               "decay_in_use": round(decay_at(trainer.step_count, args.ema_decay), 6),
               "live": score(trainer.G, args.n_per_class, classifier, reference),
               "average": score(trainer.G_ema, args.n_per_class, classifier, reference)}
        if args.recalibrate:  # both, so that recalibration's own effect is not credited to the average
            for name, net in (("live_recalibrated", trainer.G), ("average_recalibrated", trainer.G_ema)):
                row[name] = score(recalibrated(net, args.recalibrate), args.n_per_class, classifier, reference)
        row["eval_seconds"] = round(time.time() - started, 1)
        rows.append(row)
        print(json.dumps(row), flush=True)

    while True:
        started = time.time()
        trainer.step()
        train_seconds += time.time() - started
        done = (args.max_steps is not None and trainer.step_count >= args.max_steps
                or args.minutes is not None and train_seconds >= 60 * args.minutes)
        if trainer.step_count % args.eval_every == 0 or done:
            evaluate()
        if done:
            break

    variants = [k for k in ("live", "average", "live_recalibrated", "average_recalibrated") if k in rows[0]]
    print("| step | weights | " + " | ".join(COLUMNS) + " | min class agreement | min class coverage |")
    print("|---|---|" + "---|" * (len(COLUMNS) + 2))
    for r in rows:
        for v in variants:
            cells = (f"{r[v][c]:.4f}" for c in COLUMNS + ("min_class_agreement", "min_class_coverage"))
            print(f"| {r['step']} | {v} | " + " | ".join(cells) + " |")
    result = {"command": " ".join(sys.argv), "machine": machine_description(trainer.device),
              "cpu_threads": torch.get_num_threads(), "torch": torch.__version__,
              "train_config": cfg.to_dict(), "n_per_class": args.n_per_class, "rows": rows}
    if args.out:
        atomic_write_text(args.out, json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
