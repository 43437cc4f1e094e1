"""Make a trained generator the library's shipped default, with its model card.

    python experiments/ship_generator.py CHECKPOINT --hardware "2-core CPU, no GPU" [--cas]
    python experiments/ship_generator.py RUN_DIR --hardware "one H100" [--cas]

SOURCE is a training checkpoint (``checkpoints/last.pt``) or a run directory holding
``config.json``, ``metrics.jsonl`` and ``generator.safetensors`` (what a run exports at its end;
enough when the optimizer-laden checkpoint stayed on the training machine).

1. exports the generator to augment/weights/generator.safetensors;
2. runs `augment evaluate` on it (report in experiments/results/shipped_generator/), real train
   vs real test as the ceiling;
3. writes augment/weights/generator.json (SHA-256, provenance, headline figures), the grid
   augment/weights/generator_grid.png (one row per class) and the model card
   augment/weights/GENERATOR_CARD.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import shutil
import sys
from pathlib import Path

import torch

from augment.checkpoint import export_generator, load_checkpoint, load_generator, read_generator_file
from augment.config import TrainConfig
from augment.errors import AugmentError
from augment.evaluation.report import GENERATOR, REAL_BASELINE
from augment.evaluation.scoring import run_evaluation
from augment.fileio import atomic_write_text
from augment.manifests import WEIGHTS_DIR, write_manifest
from augment.synthetic.shipped import GENERATOR_PATH
from augment.visualize import class_grid, save_grid

ROOT = Path(__file__).resolve().parents[1]
REPORT_DIR = ROOT / "experiments" / "results" / "shipped_generator"


def fmt(x, pct=False):
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    return f"{100 * x:.2f}%" if pct else f"{x:.3f}"


def _row(name, m: dict, c=None) -> str:
    """A table row of one result's figures: overall (c None) or of class c."""
    def get(k):
        v = m.get(k)
        return v[c] if c is not None and v is not None else v
    frechet = [get("frechet")] + ([get("class_frechet")] if c is None else [])
    cells = [fmt(get("agreement"), True), *map(fmt, frechet), *(fmt(get(k)) for k in
             ("precision", "recall", "coverage", "diversity")), fmt(get("cas"), True)]
    return f"| {name} | " + " | ".join(cells) + " |"


def figure_tables(gen: dict, real: dict, evaluator_accuracy: float) -> str:
    """The card's figure tables (markdown) from evaluation results ``{overall, per_class}`` of
    the generator and of real train vs real test; ``evaluator_accuracy``: the evaluator's
    accuracy on the real test set, in [0, 1]."""
    head = "| agreement | Fréchet | precision | recall | coverage | diversity | CAS |\n" \
           "|---|---|---|---|---|---|---|---|"
    per_class = {name: "\n".join(_row(c, res["per_class"], c) for c in range(len(res["per_class"]["agreement"])))
                 for name, res in (("gen", gen), ("real", real))}
    return f"""## Headline figures

Fréchet: distance between classifier features of all samples and of the real test set;
per-class Fréchet: the mean over classes of the same distance within each class.

| set | agreement | Fréchet | per-class Fréchet | precision | recall | coverage | diversity | CAS |
|---|---|---|---|---|---|---|---|---|
{_row("this generator", gen["overall"])}
{_row("real train vs real test (ceiling)", real["overall"])}

The evaluator was trained on all real training images, so the ceiling's agreement is a little
optimistic: on unseen real digits (the real test set) the evaluator is right
{fmt(evaluator_accuracy, True)} of the time.

Targets of the Pretrained issue: agreement ≥ 99%, CAS ≥ 98.5%, per-class coverage ≥ 0.85, no
checkerboard artifacts.

## Per class: this generator

| class {head}
{per_class["gen"]}

## Per class: real train vs real test (the ceiling)

| class {head}
{per_class["real"]}
"""


def read_source(source: Path) -> dict:
    """train_config, step and elapsed seconds of a checkpoint or a run directory."""
    if not source.is_dir():
        ckpt = load_checkpoint(source)
        return {"train_config": ckpt["train_config"], "step": int(ckpt["step"]),
                "elapsed": float(ckpt.get("elapsed", float("nan")))}
    if not (source / "generator.safetensors").is_file():
        raise AugmentError(f"no generator.safetensors in run directory {source}")
    cfg = TrainConfig.from_dict(json.loads((source / "config.json").read_text()))
    last = json.loads((source / "metrics.jsonl").read_text().splitlines()[-1])
    return {"train_config": cfg, "step": int(last["step"]), "elapsed": float(last["time_s"])}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("source", type=Path, help="checkpoint file or run directory")
    ap.add_argument("--hardware", required=True, help="where it was trained, e.g. '2-core CPU, no GPU'")
    ap.add_argument("--n-per-class", type=int, default=1000)
    ap.add_argument("--cas", action="store_true", help="also compute CAS (slow on a CPU)")
    ap.add_argument("--data-dir", type=Path, default=None)
    ap.add_argument("--note", default="", help="a sentence for the card (e.g. why training stopped)")
    args = ap.parse_args()

    try:  # everything the card needs is read before anything is written
        run = read_source(args.source)
    except (AugmentError, OSError, ValueError, KeyError, IndexError) as e:
        sys.exit(f"Error: cannot read {args.source}: {e}")
    cfg = run["train_config"]
    if args.source.is_dir():
        shutil.copyfile(args.source / "generator.safetensors", GENERATOR_PATH)
    else:
        export_generator(args.source, GENERATOR_PATH)
    if REPORT_DIR.exists():
        shutil.rmtree(REPORT_DIR)
    report = run_evaluation(GENERATOR_PATH, REPORT_DIR, n_per_class=args.n_per_class, cas=args.cas,
                            data_dir=args.data_dir, device="cpu", log=lambda m: print(m, file=sys.stderr))
    gen, real = report["results"][GENERATOR], report["results"][REAL_BASELINE]
    grid_path = WEIGHTS_DIR / "generator_grid.png"
    save_grid(class_grid(load_generator(GENERATOR_PATH), per_class=10, seed=0), grid_path, nrow=10)

    # the trainer's convention: an epoch is 60000 // batch real batches; a step uses n_critic of them (fresh)
    per_epoch = (60000 // cfg.batch_size) / (1 if cfg.real_batches == "shared" else cfg.n_critic)
    info = {
        "step": run["step"], "epochs": round(run["step"] / per_epoch, 3),
        "wall_time_s": round(float(run["elapsed"]), 1),
        "hardware": args.hardware, "evaluated_with_torch": torch.__version__,
        "train_config": dataclasses.asdict(cfg),
        "evaluation": {k: gen["overall"].get(k) for k in (
            "agreement", "frechet", "class_frechet", "precision", "recall", "density", "coverage", "diversity", "cas")},
        "real_baseline": {k: real["overall"].get(k) for k in (
            "agreement", "frechet", "precision", "recall", "coverage", "diversity", "cas")},
    }
    meta = read_generator_file(GENERATOR_PATH)[2]
    info["weights"] = meta.get("weights", "live")
    weights = ("the live generator's at the last step" if info["weights"] == "live" else
               f"an exponential moving average (`--ema-decay {meta.get('ema_decay')}`, decay in use at the last "
               f"step {meta.get('ema_decay_at_step')})")
    manifest = write_manifest(GENERATOR_PATH, info)
    sha = json.loads(manifest.read_text())["sha256"]

    card = f"""# Model card: the shipped MNIST generator (`generator.safetensors`)

The default generator of `SyntheticMNIST()`, `augment sample` and `augment dump`.
{args.note}

| | |
|---|---|
| architecture | CWGAN-GP generator of the reference design ({sum(t.numel() for t in load_generator(GENERATOR_PATH).state_dict().values() if t.dtype.is_floating_point):,} floats incl. BatchNorm buffers) |
| data | MNIST train, all 60,000 labelled images, 28×28 resized to 32×32 in [-1, 1] |
| training | this project's trainer, `{cfg.real_batches}` real batches, batch {cfg.batch_size}, n_critic {cfg.n_critic}, Adam lr {cfg.lr:g}, betas ({cfg.beta1}, {cfg.beta2}), λ {cfg.gp_weight:g}, seed {cfg.seed} |
| weights | {weights} |
| length | {run['step']:,} generator steps ({info['epochs']} epochs of real data) |
| wall time | {info['wall_time_s'] / 60:.1f} min on {args.hardware} |
| file | `generator.safetensors`, SHA-256 `{sha}` (checked on load against `generator.json`) |
| evaluated with | `augment evaluate` on the CPU, torch {torch.__version__} ({args.n_per_class} samples per class, the shipped classifier, real MNIST test) |

![one row per class](generator_grid.png)

{figure_tables(gen, real, report['classifier']['test_accuracy'])}
Full report: `experiments/results/shipped_generator/report.md`. Reproduce the figures and
the grid (the hand-written sections are not generated):
`python experiments/ship_generator.py CHECKPOINT_OR_RUN_DIR --hardware "..."{' --cas' if args.cas else ''}`.
"""
    atomic_write_text(WEIGHTS_DIR / "GENERATOR_CARD.md", card)
    print(json.dumps({"sha256": sha, **info["evaluation"]}, default=str))


if __name__ == "__main__":
    main()
