"""Quality per wall-clock minute: the reference-style loop vs the trainer's fast loop.

Both train the reference models from the same seed for the same wall-clock budget on one
device; then the shipped classifier labels ``--n-per-class`` samples per class of each
generator, and the table gives the classifier agreement (the share of samples labelled as the
class they were generated for). Model-building and data-loading time is outside the budget for
both; everything inside the loop (data, logging, grids, checkpoints of the trainer) is inside.

  reference  ``bench_train.ReferenceLoop``: torchvision-style per-item PIL transforms through a
             DataLoader, one real batch shared by the n_critic critic updates, eager maths.
  fast       ``augment.training.loop.train`` with the library's defaults (``step_impl='auto'``:
             one CUDA graph per step on a GPU, the eager step on a CPU; ``real_batches='fresh'``), stopped by
             ``max_minutes``. Its run directory is kept, so it can be resumed (``augment train
             --resume --run-dir DIR --max-minutes M``) to continue the same run.

    python experiments/quality_per_minute.py --device cuda --budget-s 60 --out-dir runs/qpm

Writes ``quality_per_minute.json`` and ``reference_<budget>s.safetensors`` to ``--out-dir``
and prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_train import ReferenceLoop, sync  # noqa: E402

from augment.checkpoint import load_checkpoint, load_generator, save_generator  # noqa: E402
from augment.config import TrainConfig  # noqa: E402
from augment.data.mnist import resolve_data_dir  # noqa: E402
from augment.evaluation import metrics  # noqa: E402
from augment.evaluation.classifier import predict  # noqa: E402
from augment.evaluation.classifier_files import default_classifier  # noqa: E402
from augment.evaluation.scoring import sample_generator  # noqa: E402
from augment.fileio import atomic_write_text  # noqa: E402
from augment.training.loop import train  # noqa: E402


def train_reference(data_dir: Path, device: torch.device, budget_s: float, seed: int) -> tuple:
    """The reference loop for ``budget_s`` seconds: (generator, steps, seconds)."""
    loop = ReferenceLoop(data_dir, device, batch_size=64, workers=0, seed=seed)
    sync(device)
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < budget_s:
        loop.step()
        steps += 1
    sync(device)
    return loop.G, steps, time.perf_counter() - start


def agreement(generator: torch.nn.Module, classifier, n_per_class: int) -> dict:
    images, labels = sample_generator(generator, n_per_class, seed=0)
    preds = predict(classifier, images)
    return metrics.classifier_agreement(preds, labels, generator.config.num_classes)


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda")
    p.add_argument("--budget-s", type=float, default=60.0, help="training wall time per loop")
    p.add_argument("--out-dir", type=Path, required=True)
    p.add_argument("--fast-run-dir", type=Path, default=None,
                   help="run directory of the fast loop (default: OUT_DIR/fast_run; must be new)")
    p.add_argument("--data-dir", default=None, help="MNIST IDX directory (default: $AUGMENT_DATA)")
    p.add_argument("--n-per-class", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--loops", default="reference,fast")
    args = p.parse_args(argv)

    device = torch.device(args.device)
    if device.type == "cpu":
        torch.set_num_threads(2)
    data_dir = resolve_data_dir(args.data_dir)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    fast_run = args.fast_run_dir or args.out_dir / "fast_run"
    machine = torch.cuda.get_device_name(device) if device.type == "cuda" else \
        f"{platform.processor() or platform.machine()} CPU, {torch.get_num_threads()} threads"
    classifier = default_classifier(device)
    result = {"device": str(device), "machine": machine, "torch": torch.__version__,
              "budget_s": args.budget_s, "n_per_class": args.n_per_class, "seed": args.seed,
              "command": " ".join(sys.argv), "loops": {}}
    loops = args.loops.split(",")
    if "reference" in loops:
        G, steps, seconds = train_reference(data_dir, device, args.budget_s, args.seed)
        weights = args.out_dir / f"reference_{args.budget_s:g}s.safetensors"
        save_generator(weights, G, {"steps": steps, "seconds": round(seconds, 2),
                                    "loop": "reference"})
        score = agreement(G.eval(), classifier, args.n_per_class)
        result["loops"]["reference"] = {
            "generator_steps": steps, "seconds": round(seconds, 2),
            "steps_per_s": round(steps / seconds, 2), "real_batches": "shared",
            "agreement": score["overall"], "agreement_per_class": score["per_class"],
            "weights": str(weights)}
        print(json.dumps({"reference": result["loops"]["reference"]}), flush=True)
    if "fast" in loops:
        cfg = TrainConfig(data_dir=str(data_dir), device=str(device), seed=args.seed,
                          max_minutes=args.budget_s / 60.0, sample_every=1000,
                          checkpoint_every=5000)
        weights = train(cfg, fast_run, progress=False)
        state = load_checkpoint(fast_run / "checkpoints" / "last.pt")
        score = agreement(load_generator(weights, device), classifier, args.n_per_class)
        steps, seconds = int(state["step"]), float(state["elapsed"])
        result["loops"]["fast"] = {
            "generator_steps": steps, "seconds": round(seconds, 2),
            "steps_per_s": round(steps / seconds, 2), "real_batches": cfg.real_batches,
            "step_impl": cfg.step_impl, "agreement": score["overall"],
            "agreement_per_class": score["per_class"], "run_dir": str(fast_run)}
        print(json.dumps({"fast": result["loops"]["fast"]}), flush=True)
    atomic_write_text(args.out_dir / "quality_per_minute.json", json.dumps(result, indent=2) + "\n")
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
