"""Quality against training time of a finished run, read back from its sample grids.

A run saves a fixed-noise class grid (10 images per class, eval mode) every ``sample_every``
steps as ``samples/step_NNNNNNN.png``. This script cuts each grid back into its 100 tiles,
lets the shipped classifier label them and prints the classifier agreement per grid with the
step's training wall time (from ``metrics.jsonl``). 100 samples per point: a coarse curve
(one sample is 1 point), but it needs no weights, so it works for runs whose intermediate
checkpoints were not kept (e.g. runs on a lent GPU).

    python experiments/quality_from_grids.py RUN_DIR [--out FILE.json]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from augment.evaluation.classifier import predict  # noqa: E402
from augment.evaluation.classifier_files import default_classifier  # noqa: E402
from augment.fileio import atomic_write_text  # noqa: E402

TILE, PAD = 32, 2  # augment.visualize.grid_image: make_grid padding 2


def grid_tiles(path: Path, nrow: int = 10) -> torch.Tensor:
    """Tiles of a saved grid as (rows * nrow, 1, 32, 32) float32 in [-1, 1], row-major."""
    from PIL import Image

    array = np.asarray(Image.open(path).convert("L"), dtype=np.float32) / 127.5 - 1.0
    rows = (array.shape[0] - PAD) // (TILE + PAD)
    tiles = [array[PAD + r * (TILE + PAD):PAD + r * (TILE + PAD) + TILE,
                   PAD + c * (TILE + PAD):PAD + c * (TILE + PAD) + TILE]
             for r in range(rows) for c in range(nrow)]
    return torch.from_numpy(np.stack(tiles))[:, None]


def step_times(metrics: Path) -> tuple[np.ndarray, np.ndarray]:
    rows = [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()]
    return np.array([0] + [r["step"] for r in rows]), np.array([0.0] + [r["time_s"] for r in rows])


def main(argv=None) -> list:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("run_dir", type=Path)
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)
    torch.set_num_threads(2)
    classifier = default_classifier("cpu")
    steps, times = step_times(args.run_dir / "metrics.jsonl")
    points = []
    for png in sorted((args.run_dir / "samples").glob("step_*.png")):
        step = int(re.findall(r"\d+", png.stem)[0])
        tiles = grid_tiles(png)
        labels = torch.arange(10).repeat_interleave(len(tiles) // 10)
        agreement = float((predict(classifier, tiles) == labels).float().mean())
        seconds = float(np.interp(step, steps, times))
        points.append({"step": step, "train_seconds": round(seconds, 1), "agreement": agreement})
        print(f"step {step:7d}  {seconds / 60:5.2f} min  agreement {100 * agreement:5.1f}%")
    if args.out:
        atomic_write_text(args.out, json.dumps({"run_dir": str(args.run_dir), "points": points},
                                               indent=2) + "\n")
    return points


if __name__ == "__main__":
    main()
