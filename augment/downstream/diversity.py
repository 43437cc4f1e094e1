"""The diversity table of a grid: per-class agreement, intra-class diversity, coverage and Fréchet
of each generator the rows used, against real training images scored the same way at the same n."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import torch

from augment.checkpoint import load_generator
from augment.downstream.records import REAL_CEILING
from augment.evaluation.classifier import Classifier
from augment.evaluation.classifier_files import default_classifier, load_classifier
from augment.evaluation.fit import check_evaluator_fits, evaluator_trained_on
from augment.evaluation.report import class_labels
from augment.evaluation.scoring import evaluate_generator, evaluate_real_baseline, load_reference
from augment.provenance import DataSignature, fit_problem


def diversity_judge(evaluator: Optional[Path], data: DataSignature, device: torch.device
                    ) -> tuple[Optional[Classifier], Optional[str]]:
    """(the classifier that scores the table, None) for ``data``: the ``evaluator`` file, refused in
    one line when it does not fit the data (``augment.evaluation.fit``), else the shipped
    evaluator; (None, why) when the shipped one does not fit (data that is not MNIST's): no table."""
    if evaluator is not None:
        classifier = load_classifier(evaluator, device)
        check_evaluator_fits(classifier, data, f"the classifier {evaluator}", "--classifier FILE")
        return classifier, None
    classifier = default_classifier(device)
    problem = fit_problem(evaluator_trained_on(classifier), data)
    if problem is not None:
        return None, (f"no diversity table: the shipped evaluator does not fit {data.describe()} ({problem}); "
                      f"pass a classifier of it (--classifier FILE, made by augment train-classifier)")
    return classifier, None


def per_class_diversity(generators: list[tuple[str, Path]], n_per_class: int, device: torch.device,
                        data_dir: Optional[Path], dataset: str, data: DataSignature,
                        evaluator: Optional[Path] = None) -> list[dict]:
    """Per-class agreement, intra-class diversity, coverage and Fréchet of each ``(name, path)``
    generator, and of as many real training images per class (``REAL_CEILING``), one row per
    (generator, class), with its ``class_name`` where the data names its classes. Coverage and
    Fréchet depend strongly on the number of samples (a perfect generator's coverage is ~0.3 at
    100 a class against ~1,000 real test images), so a generator's row is read against that
    ceiling at the same n, not against 1. [] without generators, and without a judge that fits
    ``data`` (``diversity_judge``: the shipped evaluator fits only MNIST)."""
    classifier = diversity_judge(evaluator, data, device)[0] if generators else None
    if classifier is None:
        return []
    reference = load_reference(classifier, data_dir, dataset=dataset)
    results = [(name, evaluate_generator(load_generator(path, device), n_per_class=n_per_class, seed=0,
                                         classifier=classifier, reference=reference, audit=False))
               for name, path in generators]
    results.append((REAL_CEILING, evaluate_real_baseline(n_per_class, seed=0, classifier=classifier,
                                                         reference=reference, device=device)))
    table = []
    for name, result in results:
        per_class = result["per_class"]
        labels = class_labels(reference.class_names, len(per_class["agreement"]))
        for c in range(len(per_class["agreement"])):
            named = {"class_name": reference.class_names[c]} if isinstance(labels[c], str) else {}
            table.append({"generator": name, "class": c, **named, **{k: v[c] for k, v in per_class.items()}})
    return table
