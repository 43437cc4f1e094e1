"""Classifier files and the shipped evaluator.

A classifier file is safetensors whose metadata carries ``format`` = ``augment.classifier``,
``format_version`` and the ``classifier_config`` JSON, so the file alone rebuilds the model, and
the ``class_names`` and ``source_*`` keys of the data it was trained on (``augment.provenance``;
a loaded classifier's ``trained_on``). The shipped evaluator (``augment/weights/classifier.safetensors``)
has a manifest holding its SHA-256, checked on every load; it predates the ``source_*`` keys and is
known by that SHA-256 to be MNIST's. ``train_and_save`` is ``augment train-classifier``.
"""

from __future__ import annotations

import dataclasses
import json
import platform
import time
from pathlib import Path
from typing import Optional

import torch

from augment.checkpoint import class_names, read_safetensors, write_safetensors
from augment.config import config_from_dict
from augment.data.sources import source_kind, source_path
from augment.data.subsets import per_class_subset
from augment.errors import AugmentError, CheckpointError
from augment.evaluation.classifier import (
    Classifier,
    ClassifierConfig,
    ClassifierTrainConfig,
    Device,
    evaluate_accuracy,
    train_classifier,
)
from augment.evaluation.sample_sets import read_split
from augment.fileio import PathLike, check_writable, sha256_file
from augment.manifests import WEIGHTS_DIR, matches_manifest, verify_checksum, write_manifest
from augment.provenance import MNIST, DataSignature, parse_trained_on, signature, trained_on_problem
from augment.synthetic.filtering import QualityFilter

CLASSIFIER_FORMAT = "augment.classifier"
FORMAT_VERSION = 1
DEFAULT_WEIGHTS = WEIGHTS_DIR / "classifier.safetensors"
DEFAULT_MANIFEST = WEIGHTS_DIR / "classifier.json"


# ------------------------------------------------------------------------------------- files


def save_classifier(path: PathLike, model: Classifier, extra: Optional[dict] = None) -> str:
    """Atomically write weights + config (+ ``extra`` metadata) as safetensors; returns SHA-256."""
    metadata = {"format": CLASSIFIER_FORMAT, "format_version": str(FORMAT_VERSION),
                "classifier_config": json.dumps(dataclasses.asdict(model.config), sort_keys=True)}
    for k, v in (extra or {}).items():
        metadata[k] = v if isinstance(v, str) else json.dumps(v, sort_keys=True)
    return write_safetensors(path, model.state_dict(), metadata)


def load_classifier(path: PathLike, device: Device = "cpu",
                    sha256: Optional[str] = None) -> Classifier:
    """A classifier in eval mode from a classifier file, ``trained_on`` what the file records of
    its training data (the shipped evaluator: MNIST); if ``sha256`` is given the file's digest
    must equal it. Raises a one-line CheckpointError for any bad file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"classifier file not found: {path}")
    digest = sha256_file(path)
    if sha256 is not None and digest != sha256:
        raise CheckpointError(f"{path}: SHA-256 does not match its manifest (corrupt or "
                              f"replaced); retrain with 'augment train-classifier'")
    state, metadata = read_safetensors(path, CLASSIFIER_FORMAT, "classifier")
    try:
        cfg = config_from_dict(ClassifierConfig, json.loads(metadata["classifier_config"]))
    except (KeyError, json.JSONDecodeError, AugmentError, TypeError) as e:
        raise CheckpointError(f"{path}: bad classifier config in metadata ({e})") from None
    recorded = parse_trained_on(metadata)
    problem = trained_on_problem(recorded)
    if problem:
        raise CheckpointError(f"{path}: {problem} in metadata")
    model = Classifier(cfg)
    model.trained_on = signature(recorded, class_names(metadata, cfg.num_classes), cfg.channels)
    if model.trained_on.kind is None and _is_shipped(digest):
        model.trained_on = MNIST
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise CheckpointError(f"{path}: weights do not fit the classifier config "
                              f"({' '.join(str(e).split())[:200]})") from None
    return model.to(device).eval()


def _is_shipped(digest: str) -> bool:
    """Whether a file of SHA-256 ``digest`` is the shipped evaluator (False without its manifest)."""
    return matches_manifest(DEFAULT_MANIFEST, digest)


def load_verified_classifier(weights: PathLike, device: Device = "cpu",
                             manifest: Optional[PathLike] = None) -> tuple[Classifier, dict]:
    """(classifier, manifest) for a weights file whose SHA-256 its manifest vouches for."""
    info = verify_checksum(weights, manifest)
    return load_classifier(weights, device), info


def default_classifier(device: Device = "cpu") -> Classifier:
    """The shipped evaluator (trained on real MNIST train), checksum verified."""
    return load_verified_classifier(DEFAULT_WEIGHTS, device, DEFAULT_MANIFEST)[0]


def train_and_save(out: PathLike, recipe: ClassifierTrainConfig = ClassifierTrainConfig(),
                   data_dir: Optional[PathLike] = None, n_per_class: Optional[int] = None,
                   device: Device = "cpu", progress: bool = False, command: str = "", dataset: Optional[str] = None,
                   widths: Optional[tuple] = None) -> dict:
    """Train the evaluator on a source's train split (optionally ``n_per_class`` per class),
    test it on its test split, write ``out`` (safetensors, with the class names) and its
    manifest; returns the manifest's info plus ``sha256`` and ``manifest`` (path).
    ``augment train-classifier`` is this function; ``widths`` sets the conv blocks' widths
    (default ``ClassifierConfig``'s), e.g. for a second, differently built judge; ``dataset``
    None: the kind recognised from the path. The file records the data's kind, size and channels
    (``augment.provenance``)."""
    check_writable(out)  # before training, not after
    dataset = source_kind(data_dir, dataset)
    train, test = read_split(data_dir, "train", dataset), read_split(data_dir, "test", dataset)
    trained_on = DataSignature.of_images(dataset, train.class_names, train.images, source_path(data_dir, dataset))
    images, labels = train.images, train.labels
    if n_per_class is not None:
        keep = per_class_subset(labels, n_per_class, recipe.seed, train.num_classes)
        images, labels = images[keep], labels[keep]
    test_images, test_labels = test.images, test.labels
    model_cfg = ClassifierConfig(num_classes=train.num_classes,
                                 **({} if widths is None else {"widths": tuple(widths)}))
    started = time.time()
    model, history = train_classifier(images, labels, model_cfg, recipe, device=device,
                                      eval_images=test_images, eval_labels=test_labels,
                                      progress=progress)
    seconds = round(time.time() - started, 1)
    accuracy = evaluate_accuracy(model, test_images, test_labels)
    info = {
        "test_accuracy": accuracy, "train_images": int(len(labels)),
        "classifier_config": dataclasses.asdict(model_cfg), "train_config": dataclasses.asdict(recipe),
        "train_seconds": seconds, "history": history, "command": command,
        "machine": {"device": str(device), "torch": torch.__version__,
                    "threads": torch.get_num_threads(), "platform": platform.platform()},
    }
    info["class_names"] = train.class_names
    info.update(trained_on.metadata())
    digest = save_classifier(out, model, {"test_accuracy": accuracy, "class_names": train.class_names,
                                          "train_config": dataclasses.asdict(recipe), **trained_on.metadata()})
    manifest = write_manifest(out, info)
    return {**info, "sha256": digest, "manifest": str(manifest)}


def quality_filter(min_confidence: float, classifier: Optional[PathLike] = None, max_attempts: int = 16,
                   device: Device = "cpu") -> QualityFilter:
    """A ``QualityFilter`` for ``SyntheticMNIST(quality_filter=...)`` and dumps: keep an item when
    the judge gives its class probability >= ``min_confidence``.

    Args:
        min_confidence: p in (0, 1).
        classifier: a classifier file (``augment train-classifier``); default the shipped
            evaluator (checksum verified).
        max_attempts: latents tried per item before the best-scored one is kept.
        device: where the judge is loaded (the dataset moves it to its own device).
    """
    if classifier is None:
        model, name = default_classifier(device), f"shipped evaluator {sha256_file(DEFAULT_WEIGHTS)[:16]}"
    else:
        model, name = load_classifier(classifier, device), f"{Path(classifier).name} {sha256_file(classifier)[:16]}"
    return QualityFilter(model, min_confidence, max_attempts, name, model.trained_on)
