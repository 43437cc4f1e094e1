"""The fidelity/diversity trade of latent truncation, measured on a generator.

For each truncation ``t`` (None = none), ``SyntheticMNIST(generator, truncation=t)`` makes
``--n-per-class`` balanced samples per class. ``augment.evaluation.scoring.evaluate_samples`` scores
them against the real test set with the shipped classifier: agreement, Fréchet distance,
precision, recall, coverage, intra-class diversity, and optionally CAS. Prints a markdown
table and writes JSON.

    python experiments/truncation.py --out experiments/results/truncation.json [--cas]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from augment.downstream.runner import materialize  # noqa: E402
from augment.evaluation.classifier_files import default_classifier  # noqa: E402
from augment.evaluation.scoring import evaluate_samples, load_reference  # noqa: E402
from augment.fileio import atomic_write_text  # noqa: E402
from augment.synthetic.dataset import SyntheticMNIST  # noqa: E402

COLUMNS = ("agreement", "frechet", "class_frechet", "precision", "recall", "coverage", "diversity")


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--generator", default=None, help="generator file (default: the shipped one)")
    p.add_argument("--truncations", default="none,2.0,1.5,1.0,0.5")
    p.add_argument("--mode", default="resample", choices=("resample", "clamp"))
    p.add_argument("--n-per-class", type=int, default=500)
    p.add_argument("--cas", action="store_true", help="also train a classifier on each set (slow)")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)
    if args.device == "cpu":
        torch.set_num_threads(2)
    classifier = default_classifier(args.device)
    reference = load_reference(classifier, args.data_dir)
    rows = []
    for text in args.truncations.split(","):
        t = None if text.strip().lower() == "none" else float(text)
        started = time.time()
        ds = SyntheticMNIST(args.generator, num_samples=10 * args.n_per_class, seed=0,
                            device=args.device, truncation=t, truncation_mode=args.mode)
        images, labels = materialize(ds)
        result = evaluate_samples(images, labels, classifier, reference, cas=args.cas)
        row = {"truncation": t, **{k: result["overall"][k] for k in COLUMNS},
               **({"cas": result["overall"]["cas"]} if args.cas else {}),
               "min_class_coverage": min(result["per_class"]["coverage"]),
               "seconds": round(time.time() - started, 1)}
        rows.append(row)
        print(json.dumps(row), flush=True)
    cols = [c for c in rows[0] if c != "seconds"]
    print("| " + " | ".join(cols) + " |\n|" + "---|" * len(cols))
    for r in rows:
        print("| " + " | ".join("none" if v is None else f"{v:.4f}" if isinstance(v, float) else str(v)
                                for v in (r[c] for c in cols)) + " |")
    result = {"generator": args.generator or "shipped", "mode": args.mode,
              "n_per_class": args.n_per_class, "machine": f"{platform.machine()} CPU"
              if args.device == "cpu" else torch.cuda.get_device_name(args.device),
              "torch": torch.__version__, "command": " ".join(sys.argv), "rows": rows}
    if args.out:
        atomic_write_text(args.out, json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
