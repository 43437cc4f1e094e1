"""Quality-filtered sampling: keep a synthetic item only when a classifier agrees it shows its class.

Item i's first latent is ``latent(seed, i)``; while a judge classifier gives the item's own class
a softmax probability below ``min_confidence``, its latent is drawn again from attempt
``a = 1, 2, ...``: ``latent(attempt_seed(seed, a), i)``, a counter-based draw like the first.
The first attempt that passes is kept; when none of ``max_attempts`` passes, the one the judge
scored highest. Every generator and judge forward has exactly ``chunk`` rows (padded), and no
row depends on another, so item i is still a pure function of (generator, judge, seed, i):
whatever the batch, order, worker or process.

The judge is any module mapping images ``(B, C, 32, 32)`` in [-1, 1] to logits ``(B, K)``; the
shipped evaluator through ``augment.quality_filter(p)``. A judge that also scores the result
(agreement) is biased: measure with another classifier. ``SyntheticMNIST`` applies a filter
given as ``SamplingOptions(quality=...)``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Callable, Optional

import torch
from torch import nn

from augment.checks import is_integer, is_real
from augment.errors import ConfigError
from augment.provenance import DataSignature

_GOLDEN = 0x9E3779B97F4A7C15


def attempt_seed(seed: int, attempt: int) -> int:
    """The latent seed of redraw ``attempt`` (0: ``seed`` itself), in [0, 2**64)."""
    if attempt == 0:
        return seed
    x = (seed + attempt * _GOLDEN) & ((1 << 64) - 1)
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & ((1 << 64) - 1)
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & ((1 << 64) - 1)
    return x ^ (x >> 31)


@dataclass(frozen=True)
class QualityFilter:
    """Keep an item when ``classifier`` gives its class probability >= ``min_confidence``.

    Args:
        classifier: images ``(B, C, 32, 32)`` in [-1, 1] -> logits ``(B, K)``, K >= the
            generator's classes; used in eval mode, never trained or changed.
        min_confidence: p in (0, 1).
        max_attempts: latents tried per item, >= 1 (the first included).
        name: what the judge is, for manifests (e.g. a file's SHA-256).
        trained_on: the data the judge was trained on (``augment.provenance``; the shipped
            evaluator: MNIST), checked against the generator's when a dataset takes the filter;
            None: unknown, only the number of classes is checked.
    """

    classifier: nn.Module
    min_confidence: float
    max_attempts: int = 16
    name: str = field(default="")
    trained_on: Optional[DataSignature] = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.classifier, nn.Module):
            raise ConfigError(f"a quality filter's classifier must be a torch module, got "
                              f"{type(self.classifier).__name__}")
        if not is_real(self.min_confidence) or not 0 < self.min_confidence < 1:
            raise ConfigError(f"min_confidence must lie in (0, 1), got {self.min_confidence!r}")
        if not is_integer(self.max_attempts) or self.max_attempts < 1:
            raise ConfigError(f"max_attempts must be an integer >= 1, got {self.max_attempts!r}")
        if self.trained_on is not None and not isinstance(self.trained_on, DataSignature):
            raise ConfigError(f"trained_on must be a DataSignature or None, got {type(self.trained_on).__name__}")
        if not self.name:
            object.__setattr__(self, "name", "weights sha256 " + weights_digest(self.classifier)[:16])

    def describe(self) -> dict:
        return {"classifier": self.name, "min_confidence": self.min_confidence, "max_attempts": self.max_attempts}


def weights_digest(module: nn.Module) -> str:
    """SHA-256 over a module's state dict (names, dtypes, shapes and bytes, in name order)."""
    h = hashlib.sha256()
    for name, t in sorted(module.state_dict().items()):
        t = t.detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


@torch.inference_mode()
def class_confidence(classifier: nn.Module, images: torch.Tensor, labels: torch.Tensor, chunk: int) -> torch.Tensor:
    """Softmax probability (B,) float32 that ``classifier`` gives each image's label, computed
    in forwards of exactly ``chunk`` rows (the last padded), so a row's score does not depend on
    the batch around it."""
    scores = []
    for start in range(0, len(labels), chunk):
        x, y = images[start:start + chunk], labels[start:start + chunk]
        pad = chunk - len(y)
        if pad:
            x = torch.cat([x, x[:1].expand(pad, *x.shape[1:])])
        probs = torch.softmax(classifier(x.float()).float(), dim=1)[:len(y)]
        scores.append(probs.gather(1, y[:, None].to(probs.device))[:, 0])
    return torch.cat(scores) if scores else torch.empty(0)


def filtered_images(render: Callable[[int, torch.Tensor], torch.Tensor], labels: torch.Tensor,
                    quality: QualityFilter, chunk: int) -> torch.Tensor:
    """Images (B, C, 32, 32) of items with ``labels`` (B,): ``render(seed_attempt, rows)`` makes
    the images of ``rows`` (positions in the batch) from attempt ``seed_attempt``'s latents; each
    row keeps its first attempt the filter passes, else its best-scored one."""
    judge = quality.classifier.eval()
    rows = torch.arange(len(labels))
    images = render(0, rows)
    best = class_confidence(judge, images, labels.to(images.device), chunk).to(images.device).clone()
    todo = rows[(best < quality.min_confidence).cpu()]
    for attempt in range(1, quality.max_attempts):
        if not len(todo):
            break
        trial = render(attempt, todo)
        score = class_confidence(judge, trial, labels[todo].to(trial.device), chunk).to(trial.device)
        better = score > best[todo.to(best.device)]
        where = todo.to(images.device)[better]
        images[where] = trial[better]
        best[where] = score[better]
        todo = todo[(score < quality.min_confidence).cpu()]
    return images
