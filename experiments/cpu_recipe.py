"""CPU-recipe trials: quality against training steps for one training config, and its idle step time.

A trial trains one ``TrainConfig`` (the seed recipe plus ``--set field=value`` overrides) and, every
``--eval-every`` generator steps, scores the live generator and (when kept) its weight average with
the shipped evaluator at ``--eval-n`` samples per class against real MNIST test: agreement,
per-class Fréchet, coverage. Rows go to ``OUT/trial.jsonl`` with the step, the training seconds of
this process (evaluation excluded) and the thread count. The trial is resumable: the trainer's state
is saved with each row (``OUT/state.pt``); a rerun continues from it, bitwise.

Training seconds under contention are not a speed: ``--time-steps N`` instead times N steps after a
warm-up on an otherwise idle machine (``OUT/idle_step.json``); quality per minute is then read as
steps x idle step time (``experiments/results/cpu_recipe/``).

    python experiments/cpu_recipe.py --out runs/cpu_recipe/half --set g_width=64 --set d_width=32 \
        --max-steps 3000 --eval-every 250 --threads 1
    python experiments/cpu_recipe.py --out runs/cpu_recipe/half --set g_width=64 --set d_width=32 \
        --time-steps 20 --threads 2
    python experiments/cpu_recipe.py --summarize experiments/results/cpu_recipe/trials.md runs/cpu_recipe/*/

``--summarize`` tables every trial's evaluations against steps and idle minutes (steps x its
``idle_step_t2.json``) and plots agreement against idle minutes beside the table.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import fields
from pathlib import Path

import torch

from augment.checkpoint import load_checkpoint, save_checkpoint
from augment.config import ModelConfig, TrainConfig
from augment.evaluation.classifier_files import default_classifier
from augment.evaluation.scoring import evaluate_samples, load_reference, sample_generator
from augment.fileio import append_jsonl, atomic_write_text
from augment.training.trainer import Trainer

SCORES = ("agreement", "class_frechet", "coverage", "recall", "precision")


def parse_value(text: str):
    """'64' -> 64, '1e-4' -> 0.0001, 'none' -> None, else the string."""
    if text.lower() == "none":
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def build_config(settings: list[str], data_dir: str | None) -> TrainConfig:
    model_fields = {f.name for f in fields(ModelConfig)}
    model, train = {}, {"device": "cpu", "tensorboard": False}
    for item in settings:
        key, _, value = item.partition("=")
        (model if key in model_fields else train)[key] = parse_value(value)
    if data_dir is not None:
        train["data_dir"] = data_dir
    return TrainConfig(model=ModelConfig(**model), **train)


def score(generator: torch.nn.Module, n: int, classifier, reference) -> dict:
    images, labels = sample_generator(generator, n, seed=0)
    overall = evaluate_samples(images, labels, classifier, reference)["overall"]
    return {k: round(float(overall[k]), 5) for k in SCORES}


def time_steps(trainer: Trainer, steps: int, warmup: int = 3) -> dict:
    for _ in range(warmup):
        trainer.step()
    started = time.perf_counter()
    for _ in range(steps):
        trainer.step()
    seconds = (time.perf_counter() - started) / steps
    return {"step_s": round(seconds, 4), "steps": steps, "warmup": warmup, "threads": torch.get_num_threads(),
            "cpu": _cpu_name(), "torch": torch.__version__, "date": time.strftime("%Y-%m-%d %H:%M")}


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def summarize(out: Path, trials: list[Path]) -> None:
    """trials.md (one table per trial) and trials.png (agreement of the weight average, else the live
    weights, against idle minutes) from trial directories."""
    from matplotlib.figure import Figure

    lines, fig = ["# CPU-recipe trials", ""], Figure(figsize=(6, 4))
    ax = fig.subplots()
    for trial in trials:
        cfg = json.loads((trial / "config.json").read_text())
        timing = trial / "idle_step_t2.json"
        step_s = json.loads(timing.read_text())["step_s"] if timing.exists() else None
        rows = [json.loads(line) for line in (trial / "trial.jsonl").read_text().splitlines() if line.strip()]
        m = cfg["model"]
        lines += [f"## {trial.name}", "",
                  f"widths {m['g_width']}/{m['d_width']}, critic label {m.get('critic_label', 'channels')}, "
                  f"n_critic {cfg['n_critic']}, batch {cfg['batch_size']}, lr {cfg['lr']:g}, critic lr "
                  f"{cfg.get('critic_lr') or cfg['lr']:g}, EMA {cfg['ema_decay']}; idle step "
                  f"{'not timed' if step_s is None else f'{step_s:.3f} s (2 threads)'}", "",
                  "| step | idle min | agreement live / avg | class Frechet live / avg | coverage live / avg |",
                  "|---|---|---|---|---|"]
        for r in rows:
            live, avg = r["live"], r.get("ema", r["live"])
            minutes = "-" if step_s is None else f"{r['step'] * step_s / 60:.1f}"
            lines.append(f"| {r['step']} | {minutes} | {live['agreement']:.3f} / {avg['agreement']:.3f} | "
                         f"{live['class_frechet']:.1f} / {avg['class_frechet']:.1f} | "
                         f"{live['coverage']:.3f} / {avg['coverage']:.3f} |")
        lines.append("")
        if step_s is not None:
            ax.plot([r["step"] * step_s / 60 for r in rows], [r.get("ema", r["live"])["agreement"] for r in rows],
                    marker="o", ms=3, label=trial.name)
    ax.set_xlabel("idle minutes on 2 cores (steps x idle step time)")
    ax.set_ylabel("agreement (weight average, 100/class)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    atomic_write_text(out, "\n".join(lines) + "\n")
    fig.savefig(out.with_suffix(".png"), dpi=100)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, help="the trial directory")
    ap.add_argument("--summarize", type=Path, metavar="MD", help="write a summary of the TRIALS to MD (and .png)")
    ap.add_argument("trials", nargs="*", type=Path, help="with --summarize: trial directories")
    ap.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                    help="a TrainConfig or ModelConfig field (repeatable)")
    ap.add_argument("--data-dir", default=os.environ.get("AUGMENT_DATA"))
    ap.add_argument("--max-steps", type=int, default=2000)
    ap.add_argument("--eval-every", type=int, default=250)
    ap.add_argument("--eval-n", type=int, default=100, help="samples per class at each evaluation")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--time-steps", type=int, default=0, help="only time this many steps (idle machine)")
    args = ap.parse_args()
    if args.summarize:
        summarize(args.summarize, args.trials)
        return
    if args.out is None:
        ap.error("--out is required")
    torch.set_num_threads(args.threads)
    cfg = build_config(args.set, args.data_dir)
    args.out.mkdir(parents=True, exist_ok=True)
    trainer = Trainer(cfg, torch.device("cpu"))
    if args.time_steps:
        timing = {"config": trainer.cfg.to_dict(), **time_steps(trainer, args.time_steps)}
        atomic_write_text(args.out / f"idle_step_t{args.threads}.json", json.dumps(timing, indent=2) + "\n")
        print(json.dumps({k: v for k, v in timing.items() if k != "config"}))
        return
    state_path, log_path = args.out / "state.pt", args.out / "trial.jsonl"
    if state_path.exists():
        state = load_checkpoint(state_path)
        trainer.load_state_dict(state)
        train_s = float(state["train_s"])
    else:
        atomic_write_text(args.out / "config.json", trainer.cfg.to_json() + "\n")
        log_path.unlink(missing_ok=True)
        train_s = 0.0
    classifier = default_classifier("cpu")
    reference = load_reference(classifier, args.data_dir)
    while trainer.step_count < args.max_steps:
        started = time.perf_counter()
        for _ in range(args.eval_every - trainer.step_count % args.eval_every):
            stats = trainer.step()
        train_s += time.perf_counter() - started
        row = {"step": trainer.step_count, "train_s": round(train_s, 2), "threads": args.threads,
               **{k: round(float(v), 4) for k, v in stats.items()},
               "live": score(trainer.G, args.eval_n, classifier, reference)}
        if trainer.G_ema is not None:
            row["ema"] = score(trainer.G_ema, args.eval_n, classifier, reference)
        save_checkpoint(state_path, {**trainer.state_dict(), "train_s": train_s})
        append_jsonl(log_path, row)
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
