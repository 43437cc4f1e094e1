"""Rebalance a long-tailed training set with synthetic images of its rare classes.

Class c keeps round(n_max * rho^(-c/9)) real images (MNIST-LT); ``top_up_real_synthetic`` fills
every class up to the largest with images of that class from a generator, and a classifier is
trained on each set; balanced accuracy (mean per-class recall) on the test set is printed.
For a fair comparison, train the generator on the same long-tailed images
(``augment train --imbalance-ratio 100``) and pass it with ``--generator``.

    python examples/rebalance_long_tailed.py --imbalance-ratio 100 --steps 1000
"""

import argparse

import torch
from torch.utils.data import DataLoader

from augment import RealMNIST, SubsetSpec, collate_batch, top_up_real_synthetic
from augment.evaluation.classifier import ClassifierTrainConfig, predict, train_classifier
from augment.synthetic.mixing import class_counts


def recall_scores(predictions: torch.Tensor, targets: torch.Tensor, train_counts: list[int]) -> tuple[float, float]:
    """(balanced accuracy = mean per-class recall, mean recall of the 3 classes rarest in training)."""
    recall = [float((predictions[targets == c] == c).float().mean()) for c in range(len(train_counts))]
    rarest = sorted(range(len(train_counts)), key=lambda c: (train_counts[c], c))[:3]
    return sum(recall) / len(recall), sum(recall[c] for c in rarest) / 3


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-dir", default=None, help="the data (default: $AUGMENT_DATA, else the cache)")
    p.add_argument("--dataset", default="mnist", help="mnist, idx, folder or npz")
    p.add_argument("--imbalance-ratio", type=float, default=100.0)
    p.add_argument("--n-max", type=int, default=5000)
    p.add_argument("--generator", default=None, help="a generator file (default: the shipped one)")
    p.add_argument("--steps", type=int, default=1000, help="classifier steps")
    p.add_argument("--batch-size", type=int, default=128)
    args = p.parse_args(argv)
    spec = SubsetSpec(imbalance_ratio=args.imbalance_ratio, n_max=args.n_max)
    real = RealMNIST(args.data_dir, train=True, subset=spec, dataset=args.dataset)
    test = RealMNIST(args.data_dir, train=False, dataset=args.dataset)
    counts = [class_counts(real).get(c, 0) for c in range(real.num_classes)]
    print(f"long-tailed training set: {counts}")
    topped = top_up_real_synthetic(real, args.generator, seed=0)
    # its images, a batch (one generator forward for the synthetic ones) at a time
    topped_images, topped_labels = map(torch.cat, zip(*DataLoader(topped, batch_size=2000, collate_fn=collate_batch)))
    budget = ClassifierTrainConfig(steps=args.steps, batch_size=args.batch_size, max_shift=0)
    for name, (images, labels) in {"real only": (real.data, real.targets),
                                   "real + synthetic top-up": (topped_images, topped_labels)}.items():
        model, _ = train_classifier(images, labels, train=budget, device="cpu")
        balanced, rare = recall_scores(predict(model, test.data), test.targets, counts)
        print(f"{name}: {len(labels)} images, balanced accuracy {100 * balanced:.2f}%, "
              f"rarest-3 recall {100 * rare:.2f}%")


if __name__ == "__main__":
    main()
