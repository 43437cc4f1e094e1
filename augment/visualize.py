"""Pictures of a generator and a run: per-class sample grids (PNG), GIFs of grids, loss plots.

Every file is written atomically.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional, Sequence

import torch
from matplotlib.figure import Figure
from PIL import Image, ImageDraw, ImageFont
from torchvision.utils import make_grid

from augment.checks import MAX_CLASS_NAME_CHARS, check_class_ids
from augment.errors import AugmentError, ConfigError
from augment.fileio import PathLike, atomic_path

MAX_ROW_LABEL_CHARS = MAX_CLASS_NAME_CHARS + 8  # "<class id> <class name>"


def grid_image(images: torch.Tensor, nrow: int, padding: int = 2):
    """A PIL image of ``images`` (N, C, H, W) in [-1, 1], ``nrow`` images per row."""
    grid = make_grid(images.detach().float().cpu().clamp(-1, 1), nrow=nrow, padding=padding,
                     normalize=True, value_range=(-1, 1), pad_value=1.0)
    array = grid.mul(255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    if array.shape[2] == 1:
        array = array[:, :, 0]
    return Image.fromarray(array)


def save_grid(images: torch.Tensor, path: PathLike, nrow: int, row_labels: Optional[Sequence[str]] = None) -> Path:
    """Save ``images`` (N, C, H, W) in [-1, 1] as a PNG grid, ``nrow`` images per row; with
    ``row_labels`` (one per row: printable, at most ``MAX_ROW_LABEL_CHARS`` characters), each row
    is labelled on its left."""
    path = Path(path)
    labels = None if row_labels is None else _checked_labels(row_labels, -(-len(images) // nrow))
    image = grid_image(images, nrow)
    if labels is not None:
        image = _labelled_rows(image, labels)
    with atomic_path(path) as tmp:
        image.save(tmp, format="PNG")
    return path


def _checked_labels(row_labels: Sequence[str], rows: int) -> list:
    """``row_labels`` as a list of ``rows`` printable strings short enough for a caption
    (Pillow's text drawing refuses a newline and a string of millions of characters)."""
    labels = list(row_labels)
    if len(labels) != rows:
        raise ConfigError(f"{len(labels)} row labels for {rows} rows")
    for label in labels:
        if not isinstance(label, str) or not label.isprintable() or len(label) > MAX_ROW_LABEL_CHARS:
            shown = repr(label[:40]) if isinstance(label, str) else repr(label)[:40]
            raise ConfigError(f"row label {shown} refused: a label is printable text of at most "
                              f"{MAX_ROW_LABEL_CHARS} characters")
    return labels


def _labelled_rows(image, labels: list):
    """``image`` with a white margin on its left holding one label per row (PIL's default font)."""
    font = ImageFont.load_default()
    width = max(int(ImageDraw.Draw(image).textlength(t, font=font)) for t in labels) + 8
    out = Image.new(image.mode, (image.width + width, image.height), "white")  # (255 alone is red in RGB)
    out.paste(image, (width, 0))
    draw, row = ImageDraw.Draw(out), image.height / len(labels)
    for k, text in enumerate(labels):
        draw.text((4, row * (k + 0.5)), text, fill="black", font=font, anchor="lm")
    return out


@torch.inference_mode()
def class_grid(generator: torch.nn.Module, per_class: int = 10, seed: int = 0,
               classes: Optional[Sequence[int]] = None) -> torch.Tensor:
    """Images (len(classes) * per_class, C, 32, 32) in [-1, 1]: row c holds class c.

    The latents come from a CPU ``torch.Generator`` seeded with ``seed``, so the same seed
    gives the same grid on any device.
    """
    cfg = generator.config
    classes = check_class_ids(classes, cfg.num_classes)
    device = next(generator.parameters()).device
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(len(classes) * per_class, cfg.z_dim, generator=gen).to(device)
    labels = torch.tensor(classes).repeat_interleave(per_class).to(device)
    was_training = generator.training
    generator.eval()
    try:
        return generator(z, labels).float().cpu()
    finally:
        generator.train(was_training)


def save_gif(frames: Sequence[PathLike], path: PathLike, duration_ms: int = 250) -> Path:
    """Assemble PNG frames (in order) into a looping GIF; the last frame is held longer."""
    if not frames:
        raise AugmentError("no frames to assemble into a GIF")
    images = [Image.open(f).convert("L") for f in frames]
    durations = [duration_ms] * (len(images) - 1) + [duration_ms * 8]
    path = Path(path)
    with atomic_path(path) as tmp:
        images[0].save(tmp, format="GIF", save_all=True, append_images=images[1:],
                       duration=durations, loop=0)
    return path


def run_frames(run_dir: PathLike) -> list[Path]:
    """The sample grids of a run directory, in step order."""
    samples = Path(run_dir) / "samples"
    frames = sorted(samples.glob("step_*.png"))
    if not frames:
        raise AugmentError(f"no sample grids (samples/step_*.png) in {run_dir}")
    return frames


def save_loss_plot(metrics_path: PathLike, path: PathLike) -> Path:
    """Plot critic loss, generator loss, GP and the Wasserstein estimate against step."""
    rows = [json.loads(line) for line in Path(metrics_path).read_text().splitlines() if line.strip()]
    steps = [r["step"] for r in rows]
    keys = [("loss_d", "critic loss"), ("loss_g", "generator loss"), ("gp", "gradient penalty"),
            ("wasserstein", "Wasserstein estimate")]
    fig = Figure(figsize=(4 * len(keys), 3.2))
    axes = fig.subplots(1, len(keys))
    for ax, (key, title) in zip(axes, keys):
        ax.plot(steps, [r[key] for r in rows], lw=1)
        ax.set_title(title)
        ax.set_xlabel("generator step")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    return path
