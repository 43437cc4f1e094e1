"""Quality against idle CPU-minutes for ``augment train`` runs (the CPU recipe beside the seed recipe).

Each run is given as ``LABEL=RUN_DIR@SECONDS_PER_STEP``: the run directory of ``augment train ...
--eval-every K`` (its ``metrics.jsonl`` rows with ``average_*``/``live_*`` scores) and the run's idle
seconds per generator step on 2 threads, evaluation and sample grids included (measured by a short
run of the same config on the otherwise idle machine; ``experiments/results/cpu_recipe/README.md``
says how). Runs made while other work shared the cores then read as steps x idle step time. When
``RUN_DIR/eval/results.json`` exists (``augment evaluate RUN_DIR/generator.safetensors -o RUN_DIR/eval
--n-per-class 1000 --cas``), its scores at 1,000 samples per class go into the final table.

    python experiments/cpu_recipe_compare.py --out experiments/results/cpu_recipe/runs.md \\
        "recipe MNIST s0=runs/r37/mnist_s0@0.1875" "seed MNIST s1=runs/r37/seedmnist_s1@1.84"

Writes MD (a table at every 5 idle minutes and the final scores) and MD with .png (agreement,
per-class Fréchet and coverage of the exported weights' kind against idle minutes).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from matplotlib.figure import Figure

from augment.fileio import atomic_write_text

MARKS = (5, 10, 15, 20, 25, 30)
PANELS = (("agreement", "agreement (100/class)", False), ("class_frechet", "per-class Fréchet (100/class)", True),
          ("coverage", "coverage (100/class)", False))


def parse_run(text: str) -> tuple[str, Path, float]:
    """'LABEL=DIR@SECONDS' -> (label, dir, seconds per step)."""
    label, _, rest = text.partition("=")
    where, _, seconds = rest.rpartition("@")
    if not label or not where or not seconds:
        raise SystemExit(f"expected LABEL=RUN_DIR@SECONDS_PER_STEP, got {text!r}")
    return label, Path(where), float(seconds)


def evaluations(run: Path) -> list[dict]:
    """The metrics.jsonl rows that hold an in-training evaluation, with the scores of the weight
    average (``average_*``) when the run kept one, else of the live weights."""
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    out = []
    for r in rows:
        kind = "average" if "average_agreement" in r else "live" if "live_agreement" in r else None
        if kind:
            out.append({"step": r["step"], "time_s": r["time_s"], "kind": kind,
                        **{k: r[f"{kind}_{k}"] for k, _, _ in PANELS}})
    return out


def at_minutes(evals: list[dict], seconds: float, minutes: float) -> dict | None:
    """The last evaluation at or before ``minutes`` idle minutes; None when there is none, or when the run
    stopped more than one evaluation interval before ``minutes``."""
    before = [e for e in evals if e["step"] * seconds <= minutes * 60 + 1e-6]
    interval = (evals[1]["step"] - evals[0]["step"]) * seconds if len(evals) > 1 else 0.0
    if not before or before[-1]["step"] * seconds + interval < minutes * 60 - 1e-6:
        return None
    return before[-1]


def final_scores(run: Path) -> dict | None:
    path = run / "eval" / "results.json"
    if not path.exists():
        return None
    res = json.loads(path.read_text())
    overall, memorization = res["results"]["generator"]["overall"], res.get("memorization") or {}
    copies = memorization.get("near_duplicate_fraction")
    return {"agreement": overall["agreement"], "class_frechet": overall["class_frechet"],
            "coverage": overall["coverage"], "cas": overall.get("cas"),
            "memorization": None if copies is None else
            f"C_T {memorization['ct']:+.1f}, {100 * copies:.1f}% near duplicates"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True, help="the summary (.md; the plot beside it as .png)")
    ap.add_argument("runs", nargs="+", help="LABEL=RUN_DIR@IDLE_SECONDS_PER_STEP")
    args = ap.parse_args()
    runs = [parse_run(r) for r in args.runs]

    lines = ["# CPU recipe against the seed recipe: quality per idle CPU-minute", "",
             "Scores of the in-training evaluations (100 samples per class; the weight average where the run "
             "kept one), at the last evaluation at or before each idle minute (steps x idle step time, 2 "
             "threads). Cells: agreement / per-class Fréchet / coverage.", "",
             "| run | idle s/step | " + " | ".join(f"{m} min" for m in MARKS) + " |",
             "|---|---|" + "---|" * len(MARKS)]
    fig = Figure(figsize=(13, 3.8))
    axes = fig.subplots(1, len(PANELS))
    for label, run, seconds in runs:
        evals = evaluations(run)
        cells = []
        for m in MARKS:
            e = at_minutes(evals, seconds, m)
            cells.append("-" if e is None else
                         f"{e['agreement']:.3f} / {e['class_frechet']:.1f} / {e['coverage']:.3f}")
        lines.append(f"| {label} | {seconds:.3f} | " + " | ".join(cells) + " |")
        style = "-" if "seed" not in label else "--"
        for ax, (key, title, log) in zip(axes, PANELS):
            ax.plot([e["step"] * seconds / 60 for e in evals], [e[key] for e in evals], style, marker="o", ms=2,
                    label=label)
            ax.set_title(title, fontsize=9)
            ax.set_yscale("log" if log else "linear")
    for ax in axes:
        ax.set_xlabel("idle minutes on 2 cores")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.tight_layout()

    lines += ["", "## Final generators at 1,000 samples per class (`augment evaluate ... --n-per-class 1000 --cas`)",
              "", "| run | steps | idle min | agreement | per-class Fréchet | coverage | CAS | memorization |",
              "|---|---|---|---|---|---|---|---|"]
    for label, run, seconds in runs:
        final, evals = final_scores(run), evaluations(run)
        steps = evals[-1]["step"] if evals else 0
        if final is None:
            lines.append(f"| {label} | {steps} | {steps * seconds / 60:.1f} | not evaluated | | | | |")
            continue
        cas = "-" if final["cas"] is None else f"{100 * final['cas']:.2f}%"
        lines.append(f"| {label} | {steps} | {steps * seconds / 60:.1f} | {100 * final['agreement']:.2f}% | "
                     f"{final['class_frechet']:.2f} | {final['coverage']:.3f} | {cas} | "
                     f"{final['memorization'] or '-'} |")
    atomic_write_text(args.out, "\n".join(lines) + "\n")
    fig.savefig(args.out.with_suffix(".png"), dpi=100)
    print(f"wrote {args.out} and {args.out.with_suffix('.png')}")


if __name__ == "__main__":
    main()
