"""The evaluator CNN: a small MNIST classifier and its seeded training loop (its files and the
shipped weights: ``augment.evaluation.classifier_files``).

``Classifier`` maps images ``(B, C, 32, 32)`` in [-1, 1] to logits ``(B, num_classes)``;
``features`` gives its penultimate embedding ``(B, feature_dim)`` (post-ReLU), the feature
space of the Frechet/PRDC/diversity metrics. ``train_classifier`` keeps the whole data set on
the device, shuffles and shifts with an explicit ``torch.Generator`` and initialises under
``torch.random.fork_rng``, so a (data, configs, seed, device) tuple always gives the same
model. ``ClassifierTrainConfig`` also holds the two long-tail baselines, class-balanced
sampling and the logit-adjusted loss.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass
from typing import Callable, Optional, Union

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from augment.config import IMAGE_SIZE
from augment.device import module_device
from augment.errors import AugmentError, ConfigError, DataError
from augment.images import BACKGROUND, to_model_images
from augment.provenance import DataSignature

CLASSIFIER_SAMPLINGS = ("uniform", "balanced")

Device = Union[str, torch.device]


# ------------------------------------------------------------------------------------ configs


@dataclass(frozen=True)
class ClassifierConfig:
    """Architecture: one 3x3 conv + BatchNorm + ReLU + 2x2 max-pool block per entry of
    ``widths`` (32 -> 16 -> 8 -> 4 pixels for three blocks), then a linear layer to
    ``feature_dim`` + BatchNorm + ReLU (the features), then a linear head to the logits."""

    num_classes: int = 10
    channels: int = 1
    widths: tuple = (16, 32, 64)
    feature_dim: int = 128

    def __post_init__(self) -> None:
        object.__setattr__(self, "widths", tuple(self.widths))
        if self.num_classes < 2 or self.channels < 1 or self.feature_dim < 1:
            raise ConfigError(f"invalid ClassifierConfig {self}")
        if not 1 <= len(self.widths) <= 5 or any(int(w) != w or w < 1 for w in self.widths):
            raise ConfigError(f"widths must be 1 to 5 positive ints, got {self.widths}")


@dataclass(frozen=True)
class ClassifierTrainConfig:
    """How to train: ``steps`` (if set) overrides ``epochs``; AdamW whose learning rate warms
    up linearly to ``lr`` over the first quarter of the steps, then decays on a cosine (see
    :func:`lr_factor`); each batch shifted by up to ``max_shift`` pixels (0 = none).

    For imbalanced training sets: ``sampling="balanced"`` draws every batch class-balanced
    (each image with probability 1 / (C n_c), with replacement; "uniform": seeded per-epoch
    permutations, every image once per epoch); ``logit_adjust_tau`` tau > 0 trains on the
    logit-adjusted loss of Menon et al. (ICLR 2021), cross-entropy of ``logits + tau * log(pi)``
    with pi the training set's class frequencies, while predictions use the plain logits."""

    epochs: int = 6
    steps: Optional[int] = None
    batch_size: int = 128
    lr: float = 3e-3
    weight_decay: float = 5e-4
    label_smoothing: float = 0.05
    max_shift: int = 2
    seed: int = 0
    sampling: str = "uniform"
    logit_adjust_tau: float = 0.0

    def __post_init__(self) -> None:
        if self.epochs < 1 or (self.steps is not None and self.steps < 1):
            raise ConfigError(f"epochs and steps must be >= 1, got {self.epochs}, {self.steps}")
        if self.batch_size < 2:
            raise ConfigError(f"batch_size must be >= 2, got {self.batch_size}")
        if not (self.lr > 0 and self.weight_decay >= 0 and 0 <= self.label_smoothing < 1):
            raise ConfigError("lr must be > 0, weight_decay >= 0, label_smoothing in [0, 1)")
        if not 0 <= self.max_shift <= 8:
            raise ConfigError(f"max_shift must lie in [0, 8], got {self.max_shift}")
        if self.sampling not in CLASSIFIER_SAMPLINGS:
            raise ConfigError(f"sampling must be one of {', '.join(CLASSIFIER_SAMPLINGS)}, got {self.sampling!r}")
        if not self.logit_adjust_tau >= 0:
            raise ConfigError(f"logit_adjust_tau must be >= 0, got {self.logit_adjust_tau}")


# -------------------------------------------------------------------------------------- model


class Classifier(nn.Module):
    """images ``(B, C, 32, 32)`` in [-1, 1] -> logits ``(B, num_classes)``. ``trained_on``: the
    data it was trained on (``augment.provenance``) where its file says, else None."""

    def __init__(self, cfg: ClassifierConfig = ClassifierConfig()):
        super().__init__()
        self.config = cfg
        self.trained_on: Optional[DataSignature] = None
        layers, width = [], cfg.channels
        for out in cfg.widths:
            layers += [nn.Conv2d(width, out, 3, padding=1, bias=False), nn.BatchNorm2d(out),
                       nn.ReLU(inplace=True), nn.MaxPool2d(2)]
            width = out
        side = IMAGE_SIZE // 2 ** len(cfg.widths)
        self.conv = nn.Sequential(*layers)
        self.embed = nn.Sequential(nn.Flatten(), nn.Linear(width * side * side, cfg.feature_dim,
                                                           bias=False),
                                   nn.BatchNorm1d(cfg.feature_dim), nn.ReLU(inplace=True))
        self.head = nn.Linear(cfg.feature_dim, cfg.num_classes)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """Penultimate embedding ``(B, feature_dim)``, non-negative."""
        return self.embed(self.conv(images))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(images))


def build_classifier(cfg: ClassifierConfig = ClassifierConfig(), seed: int = 0) -> Classifier:
    """A freshly initialised classifier (on the CPU), its init a function of ``seed`` only."""
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(seed)  # CPU only: CUDA RNG state is untouched
        return Classifier(cfg)


# ------------------------------------------------------------------------------------ helpers


def as_model_images(images: torch.Tensor, device: Device) -> torch.Tensor:
    """uint8 ``(N, H, W)``/``(N, C, H, W)`` or float ``(N, C, 32, 32)`` in [-1, 1] -> float32
    ``(N, C, 32, 32)`` on ``device``."""
    if images.dtype == torch.uint8:
        return to_model_images(images, device)
    if not images.is_floating_point() or images.dim() != 4 or images.shape[-2:] != (32, 32):
        raise DataError(f"images must be uint8 (N, H, W) or float (N, C, 32, 32); got "
                        f"{images.dtype} {tuple(images.shape)}")
    return images.to(device=device, dtype=torch.float32)


def random_shift(images: torch.Tensor, max_shift: int, generator: torch.Generator) -> torch.Tensor:
    """Shift each image of ``(B, C, H, W)`` by its own integer offset in
    ``[-max_shift, max_shift]`` on both axes, filling with background (-1). One gather."""
    if max_shift == 0:
        return images
    b, c, h, w = images.shape
    s = max_shift
    padded = F.pad(images, (s, s, s, s), value=BACKGROUND)
    offsets = torch.randint(0, 2 * s + 1, (2, b), generator=generator, device=images.device)
    rows = (offsets[0, :, None] + torch.arange(h, device=images.device))[:, None, :, None]
    cols = (offsets[1, :, None] + torch.arange(w, device=images.device))[:, None, None, :]
    batch = torch.arange(b, device=images.device)[:, None, None, None]
    chan = torch.arange(c, device=images.device)[None, :, None, None]
    return padded[batch, chan, rows, cols]


def lr_factor(step: int, total: int, warmup: float = 0.25, start: float = 0.04,
              end: float = 1e-3) -> float:
    """One-cycle learning-rate multiplier at ``step`` of ``total``: linear from ``start`` to 1
    over the first ``warmup`` share of the steps, then cosine down to ``end``."""
    warm = max(1, round(warmup * total))
    if step < warm:
        return start + (1.0 - start) * step / warm
    done = min(1.0, (step - warm) / max(1, total - warm))
    return end + (1.0 - end) * 0.5 * (1.0 + math.cos(math.pi * done))


@torch.inference_mode()
def features_and_predictions(model: Classifier, images: torch.Tensor, batch_size: int = 1000
                             ) -> tuple[torch.Tensor, torch.Tensor]:
    """Features ``(N, feature_dim)`` float32 and predicted labels ``(N,)`` int64, both on the
    CPU, for images as :func:`as_model_images` accepts; in eval mode, in batches."""
    device = module_device(model)
    was_training = model.training
    model.eval()
    feats, preds = [], []
    try:
        for start in range(0, len(images), batch_size):
            x = as_model_images(images[start:start + batch_size], device)
            f = model.features(x)
            feats.append(f.float().cpu())
            preds.append(model.head(f).argmax(dim=1).cpu())
    finally:
        model.train(was_training)
    if not feats:
        raise DataError("no images given")
    return torch.cat(feats), torch.cat(preds)


def extract_features(model: Classifier, images: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
    """Penultimate features ``(N, feature_dim)`` float32 on the CPU."""
    return features_and_predictions(model, images, batch_size)[0]


def predict(model: Classifier, images: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
    """Predicted labels ``(N,)`` int64 on the CPU."""
    return features_and_predictions(model, images, batch_size)[1]


def evaluate_accuracy(model: Classifier, images: torch.Tensor, labels: torch.Tensor,
                      batch_size: int = 1000) -> float:
    """Share of ``images`` whose predicted label equals ``labels`` ``(N,)``, in [0, 1]."""
    preds = predict(model, images, batch_size)
    return float((preds == labels.cpu()).double().mean())


# ----------------------------------------------------------------------------------- training


def train_classifier(images: torch.Tensor, labels: torch.Tensor,
                     cfg: Optional[ClassifierConfig] = None,
                     train: ClassifierTrainConfig = ClassifierTrainConfig(),
                     device: Optional[Device] = None,
                     eval_images: Optional[torch.Tensor] = None,
                     eval_labels: Optional[torch.Tensor] = None,
                     progress: bool = False,
                     batch_transform: Optional[Callable[[torch.Tensor, torch.Generator], torch.Tensor]] = None,
                     ) -> tuple[Classifier, list[dict]]:
    """Train a fresh classifier on ``images`` (see :func:`as_model_images`) and ``labels``
    ``(N,)`` in [0, num_classes); returns the model (eval mode, on ``device``) and a history
    of one row per pass over the data (and one at the end): ``step``, ``epoch``, ``loss``,
    ``train_accuracy`` (on the augmented batches), ``eval_accuracy`` (if eval data given),
    ``seconds``. ``cfg.num_classes`` defaults to ``max(labels) + 1`` (at least 2).
    ``batch_transform(images, generator)`` (e.g. ``augmentation.random_affine``) augments each
    training batch after the random shift, drawing from the same seeded generator.

    ``images`` may also be an index-able source with ``shape`` (N, C, 32, 32) whose
    ``source[idx]`` (int64 ``(B,)`` on ``device``) gives float32 ``(B, C, 32, 32)`` in [-1, 1]
    on ``device``, e.g. ``augment.downstream.runner.OnDemandImages``, which makes items only when drawn."""
    device = torch.device(device) if device is not None else labels.device
    x = as_model_images(images, device) if isinstance(images, torch.Tensor) else images
    y = labels.to(device=device, dtype=torch.int64)
    if x.shape[0] != y.shape[0] or y.dim() != 1:
        raise DataError(f"{x.shape[0]} images but labels of shape {tuple(y.shape)}")
    n = len(y)
    if n < 2:
        raise DataError(f"need at least 2 training images, got {n}")
    if cfg is None:
        cfg = ClassifierConfig(num_classes=max(2, int(y.max()) + 1), channels=x.shape[1])
    if int(y.min()) < 0 or int(y.max()) >= cfg.num_classes:
        raise DataError(f"labels span [{int(y.min())}, {int(y.max())}], outside "
                        f"[0, {cfg.num_classes})")
    if x.shape[1] != cfg.channels:
        raise DataError(f"images have {x.shape[1]} channels, the classifier {cfg.channels}")

    batch_size = min(train.batch_size, n)
    per_epoch = n // batch_size  # drop-last: every batch has batch_size images (BatchNorm)
    total = train.steps or train.epochs * per_epoch
    model = build_classifier(cfg, train.seed).to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=train.lr,
                                  weight_decay=train.weight_decay)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(step, total))
    rng = torch.Generator(device=device).manual_seed(train.seed)
    counts = torch.bincount(y, minlength=cfg.num_classes).to(torch.float64)
    # the logit adjustment tau * log(pi) (0 for absent classes' columns: never a target) and the
    # per-image weights of class-balanced sampling, 1 / n_c
    log_prior = torch.where(counts > 0, (counts / n).clamp_min(1e-300).log(), 0.0).float() * train.logit_adjust_tau
    image_weights = (1.0 / counts)[y] if train.sampling == "balanced" else None

    bar = tqdm(total=total, file=sys.stderr, disable=not progress, unit="step",
               dynamic_ncols=True, desc="classifier")
    history: list[dict] = []
    started = time.time()
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), device=device, dtype=torch.int64)
    seen = 0
    perm = None
    try:
        for step in range(total):
            pos = step % per_epoch
            if image_weights is not None:
                idx = torch.multinomial(image_weights, batch_size, replacement=True, generator=rng)
            else:
                if pos == 0:
                    perm = torch.randperm(n, generator=rng, device=device)
                idx = perm[pos * batch_size:(pos + 1) * batch_size]
            batch = random_shift(x[idx], train.max_shift, rng)
            if batch_transform is not None:
                batch = batch_transform(batch, rng)
            logits = model(batch)
            adjusted = logits + log_prior if train.logit_adjust_tau else logits
            loss = F.cross_entropy(adjusted, y[idx], label_smoothing=train.label_smoothing)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            loss_sum += loss.detach() * len(idx)
            correct += (logits.detach().argmax(1) == y[idx]).sum()
            seen += len(idx)
            bar.update(1)
            if (step + 1) % per_epoch == 0 or step + 1 == total:
                row = {"step": step + 1, "epoch": round((step + 1) / per_epoch, 4),
                       "loss": float(loss_sum) / seen, "train_accuracy": int(correct) / seen}
                if not math.isfinite(row["loss"]):
                    raise AugmentError(f"classifier training diverged (loss {row['loss']}) at "
                                       f"step {step + 1}")
                if eval_images is not None and eval_labels is not None:
                    row["eval_accuracy"] = evaluate_accuracy(model, eval_images, eval_labels)
                    model.train()
                row["seconds"] = round(time.time() - started, 2)
                history.append(row)
                bar.set_postfix({k: f"{v:.4f}" for k, v in row.items()
                                 if k in ("loss", "eval_accuracy")})
                loss_sum.zero_()
                correct.zero_()
                seen = 0
    finally:
        bar.close()
    return model.eval(), history
