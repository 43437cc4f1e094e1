"""The memorization audit's yardstick: what real images that are *not* training images score,
in pixels, against the same training sets and the same held-out split (MNIST test) as the
audits of our generators. A generator that modelled its training distribution perfectly, without
copying, would score like the "unseen train-split images" rows.

    nice -n 5 python3 experiments/results/memorization/yardstick.py > experiments/results/memorization/yardstick.json

Needs real MNIST in $AUGMENT_DATA. Prints one JSON object: per row, the training set, the
judged images, and the audit's overall numbers (and the per-class ones of the long-tailed row).
"""

import json
import sys
import time

import torch

from augment.config import SubsetSpec
from augment.data.sources import load_labelled
from augment.data.subsets import class_permutations, subset_indices
from augment.evaluation import memorization as mem

PER_CLASS = 1000  # judged images per class, as an evaluation's samples


def unseen(labels: torch.Tensor, training: torch.Tensor, seed: int = 1) -> torch.Tensor:
    """PER_CLASS train-split images per class that are not in ``training`` (seeded)."""
    member = torch.zeros(len(labels), dtype=torch.bool)
    member[training] = True
    orders = class_permutations(labels, 10, seed)
    return torch.cat([order[~member[order]][:PER_CLASS] for order in orders]).sort().values


def main() -> None:
    train, test = load_labelled(None, "train", "mnist"), load_labelled(None, "test", "mnist")
    rows = {}

    def audit(name: str, training: torch.Tensor, judged_images, judged_labels, held=None, detail=False):
        held_images, held_labels = held if held is not None else (test.images, test.labels)
        started = time.process_time()
        result = mem.audit(train.images[training], train.labels[training], held_images, held_labels,
                           judged_images, judged_labels, 10).summary
        row = {key: result[key] for key in mem.KEYS}
        row.update(training_images=int(len(training)), judged=int(len(judged_labels)), cells=result["cells"],
                   cpu_seconds=round(time.process_time() - started, 1))
        if detail:
            row["per_class"] = {key: result["per_class"][key] for key in ("ct", "authenticity",
                                                                          "near_duplicate_fraction")}
        rows[name] = row
        print(name, row, file=sys.stderr, flush=True)

    everything = torch.arange(len(train.labels))
    # the whole split less 1,000 a class: unseen train images (same writers) against it
    held_back = torch.cat([order[:PER_CLASS] for order in class_permutations(train.labels, 10, 1)]).sort().values
    rest = everything[~torch.isin(everything, held_back)]
    audit("all-but-1000/class: unseen train-split images", rest, train.images[held_back], train.labels[held_back])
    half = torch.arange(len(test.labels)) % 2 == 0
    audit("all: test half A against test half B (sanity, about 0)", everything, test.images[half], test.labels[half],
          held=(test.images[~half], test.labels[~half]))
    for n in (10, 100, 500):
        training = subset_indices(train.labels, SubsetSpec(n_per_class=n), 0, 10)
        judged = unseen(train.labels, training)
        audit(f"n{n} seed 0: unseen train-split images", training, train.images[judged], train.labels[judged])
    training = subset_indices(train.labels, SubsetSpec(imbalance_ratio=100.0), 0, 10)
    judged = unseen(train.labels, training)
    audit("lt100 seed 0: unseen train-split images", training, train.images[judged], train.labels[judged],
          detail=True)
    print(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
