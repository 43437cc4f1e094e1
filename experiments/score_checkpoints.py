"""Score training checkpoints, live weights and weight average side by side, against a baseline.

For every checkpoint given (e.g. snapshots of one run's ``checkpoints/last.pt``, taken as the
run went) this samples ``--n-per-class`` digits per class from the live generator and, when the
run keeps one (``--ema-decay``), from its weight average, with the same latents (seed 0) for
every generator, and scores them against real MNIST test with the shipped classifier
(``augment.evaluation.scoring.evaluate_samples``): classifier agreement, Fréchet, per-class Fréchet,
precision, recall, coverage, and the per-class agreement and coverage. ``--baseline`` scores a
generator file the same way first (e.g. the shipped generator a fine-tune started from), so
every row is paired with it. Prints a JSON line per generator and a markdown table; writes JSON.

    python experiments/score_checkpoints.py runs/finetune_snapshots/*.pt \\
        --baseline augment/weights/generator.safetensors --n-per-class 1000 \\
        --data-dir data/mnist --out experiments/results/finetune_cpu.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from augment.checkpoint import checkpoint_generator_state, load_checkpoint, load_generator  # noqa: E402
from augment.device import machine_description  # noqa: E402
from augment.evaluation.classifier_files import default_classifier  # noqa: E402
from augment.evaluation.scoring import evaluate_samples, load_reference, sample_generator  # noqa: E402
from augment.fileio import atomic_write_text  # noqa: E402
from augment.gan.models import Generator  # noqa: E402

COLUMNS = ("agreement", "frechet", "class_frechet", "precision", "recall", "coverage")


def score(generator: torch.nn.Module, n_per_class: int, classifier, reference) -> dict:
    """Overall figures plus per-class agreement and coverage of ``generator`` (eval mode)."""
    images, labels = sample_generator(generator, n_per_class, seed=0)
    result = evaluate_samples(images, labels, classifier, reference)
    row = {k: round(result["overall"][k], 4) for k in COLUMNS}
    for k in ("agreement", "coverage"):
        row[f"class_{k}"] = [round(v, 4) for v in result["per_class"][k]]
    row["min_class_agreement"] = min(row["class_agreement"])
    row["min_class_coverage"] = min(row["class_coverage"])
    return row


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("checkpoints", nargs="+", type=Path, help="training checkpoints (.pt), scored in step order")
    p.add_argument("--baseline", type=Path, default=None, help="a generator file to score first")
    p.add_argument("--n-per-class", type=int, default=1000)
    p.add_argument("--threads", type=int, default=2, help="CPU threads (CPU only)")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)
    if args.device == "cpu":
        torch.set_num_threads(args.threads)
    classifier = default_classifier(args.device)
    reference = load_reference(classifier, args.data_dir)
    rows = []

    def add(name: str, step, generator) -> None:
        started = time.time()
        scores = score(generator.to(args.device).eval(), args.n_per_class, classifier, reference)
        row = {"generator": name, "step": step, **scores}
        row["eval_seconds"] = round(time.time() - started, 1)
        rows.append(row)
        print(json.dumps(row), flush=True)

    if args.baseline is not None:
        add(f"baseline {args.baseline.name}", None, load_generator(args.baseline))
    states = sorted((load_checkpoint(path) for path in args.checkpoints), key=lambda s: s["step"])
    for state in states:
        for name, averaged in (("live", False), ("average", True)):
            if averaged and "generator_ema" not in state:
                continue
            generator = Generator(state["train_config"].model)
            generator.load_state_dict(checkpoint_generator_state(state, averaged))
            add(name, state["step"], generator)

    print("| step | weights | " + " | ".join(COLUMNS) + " | min class agreement | min class coverage |")
    print("|---|---|" + "---|" * (len(COLUMNS) + 2))
    for r in rows:
        cells = (f"{r[c]:.4f}" for c in COLUMNS + ("min_class_agreement", "min_class_coverage"))
        print(f"| {r['step'] if r['step'] is not None else '-'} | {r['generator']} | " + " | ".join(cells) + " |")
    result = {"command": " ".join(sys.argv), "machine": machine_description(torch.device(args.device)),
              "cpu_threads": torch.get_num_threads(), "torch": torch.__version__,
              "train_config": states[-1]["train_config"].to_dict() if states else None,
              "n_per_class": args.n_per_class, "rows": rows}
    if args.out:
        atomic_write_text(args.out, json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
