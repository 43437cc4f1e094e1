"""Fresh vs shared real batches: which gives better samples for the same compute?

Both modes cost the same per generator step (the same n_critic critic updates and one
generator update; only which real images the critic sees differs), so samples per minute
compare as samples per step. For each mode and seed this trains a generator for a fixed
number of steps and scores it with the shipped evaluator (classifier agreement, Fréchet
distance in its feature space, coverage).

    python experiments/compare_real_batches.py --steps 400 --seeds 2 --g-width 32 --d-width 16

Writes experiments/results/real_batches.json and prints a table. Reference-size nets on a GPU:
--g-width 128 --d-width 64 --steps 3000.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import torch

from augment.checkpoint import load_generator
from augment.config import ModelConfig, TrainConfig
from augment.device import resolve_device
from augment.evaluation.classifier_files import default_classifier
from augment.evaluation.scoring import evaluate_generator, load_reference
from augment.training.loop import train

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--g-width", type=int, default=32)
    ap.add_argument("--d-width", type=int, default=16)
    ap.add_argument("--n-per-class", type=int, default=200, help="samples per class for the metrics")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--out", type=Path, default=ROOT / "experiments" / "results" / "real_batches.json")
    args = ap.parse_args()

    device = resolve_device(args.device)
    classifier = default_classifier(device)
    reference = load_reference(classifier, args.data_dir)
    rows = []
    for seed in range(args.seeds):
        for mode in ("fresh", "shared"):
            cfg = TrainConfig(model=ModelConfig(g_width=args.g_width, d_width=args.d_width), data_dir=args.data_dir,
                              real_batches=mode, seed=seed, max_steps=args.steps, device=str(device),
                              log_every=max(1, args.steps // 4), sample_every=args.steps,
                              checkpoint_every=args.steps, tensorboard=False)
            with tempfile.TemporaryDirectory() as tmp:
                started = time.time()
                path = train(cfg, Path(tmp) / "run", progress=False)
                seconds = time.time() - started
                result = evaluate_generator(load_generator(path, device), n_per_class=args.n_per_class, seed=0,
                                            classifier=classifier, reference=reference, device=device)
            o = result["overall"]
            rows.append({"mode": mode, "seed": seed, "steps": args.steps, "train_seconds": round(seconds, 1),
                         "agreement": o["agreement"], "frechet": o["frechet"], "coverage": o["coverage"],
                         "precision": o["precision"], "recall": o["recall"]})
            print(json.dumps(rows[-1]), flush=True)
    summary = {}
    for mode in ("fresh", "shared"):
        part = [r for r in rows if r["mode"] == mode]
        summary[mode] = {k: sum(r[k] for r in part) / len(part)
                         for k in ("agreement", "frechet", "coverage", "train_seconds")}
    machine = torch.cuda.get_device_name(device) if device.type == "cuda" else \
        f"{torch.get_num_threads()}-thread {platform.machine()} CPU, no GPU"
    out = {"command": "python experiments/compare_real_batches.py " + " ".join(
        f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if k not in ("out", "data_dir")),
        "machine": machine, "torch": torch.__version__, "rows": rows, "mean": summary}
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print("| mode | agreement | Fréchet | coverage | train s |\n|---|---|---|---|---|")
    for mode, s in summary.items():
        print(f"| {mode} | {100 * s['agreement']:.1f}% | {s['frechet']:.2f} | {s['coverage']:.3f} | "
              f"{s['train_seconds']:.0f} |")


if __name__ == "__main__":
    main()
