"""Augmentation experiments: train one fixed classifier on real, synthetic and mixed data.

A grid of cells (real images per class n, synthetic:real ratio r, augmentation, generator
regime, seed). Every cell trains the same classifier for the same number of steps and reports
its accuracy on the real MNIST test set, overall and per class. Finished cells are stored in
``results.csv`` (rewritten atomically after each cell) and skipped when the grid is run again.

Augmentations: ``none`` (real only), ``classical`` (per-sample random affine, see
``augment.augmentation``), ``synthetic`` (real + r x n synthetic per class, or synthetic only
when r = inf), ``classical+synthetic`` (both). Regimes: ``shipped`` (the default generator,
trained on all 60k labelled images: an upper bound that leaks labels a low-n classifier does
not have), ``fair`` (a generator trained by this project's trainer on the same n-per-class
subset the classifier sees: the real use case), ``-`` for cells without synthetic data.
"""

from __future__ import annotations

import dataclasses
import json
import math
import platform
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Optional

import torch

from .config import CRITIC_AUGMENT_POLICIES
from .errors import ConfigError
from .fileio import PathLike, atomic_write_text, exclusive_lock

AUGMENTATIONS = ("none", "classical", "synthetic", "classical+synthetic")
REGIMES = ("shipped", "fair")
RESULT_COLUMNS = ("n_per_class", "ratio", "augmentation", "regime", "seed", "test_accuracy",
                  "train_images", "seconds")


@dataclass(frozen=True)
class Cell:
    """One run. ``n_per_class`` None = all real images; ``ratio`` inf = synthetic only."""

    n_per_class: Optional[int]
    ratio: float
    augmentation: str
    regime: str
    seed: int

    @property
    def key(self) -> str:
        n = "all" if self.n_per_class is None else self.n_per_class
        return f"n={n}|r={self.ratio:g}|{self.augmentation}|{self.regime}|seed={self.seed}"

    @property
    def uses_synthetic(self) -> bool:
        return "synthetic" in self.augmentation

    @property
    def uses_classical(self) -> bool:
        return "classical" in self.augmentation


@dataclass(frozen=True)
class GridConfig:
    """The grid and the fixed classifier budget. ``n_per_class`` entries: int or None (all)."""

    n_per_class: tuple = (10, 50, 100, 500, None)
    ratios: tuple = (0.5, 1.0, 2.0, 4.0, 8.0)
    augmentations: tuple = AUGMENTATIONS
    regimes: tuple = REGIMES
    fair_n: tuple = (10, 100, 500)  # n for which a fair generator is trained
    fair_seeds: Optional[tuple] = None  # seeds with fair cells (None: every seed)
    synthetic_only: bool = True
    synthetic_only_per_class: int = 5000
    seeds: tuple = (0, 1, 2)
    classifier_steps: int = 2000
    classifier_batch: int = 128
    # generator steps of each fair generator trained here (fast path on a GPU). The H100 main
    # run was at 10% agreement at 5,000 steps and clean from 8,000 (experiments/results/h100)
    fair_gan_steps: int = 10000
    fair_critic_augment: str = "none"  # TrainConfig.critic_augment of fair generators trained here
    fair_widths: tuple = (128, 64)  # (g_width, d_width) of fair generators trained here (reference)
    diversity_per_class: int = 200  # synthetic images per class for the diversity table

    def __post_init__(self) -> None:
        bad = [a for a in self.augmentations if a not in AUGMENTATIONS]
        if bad:
            raise ConfigError(f"unknown augmentation(s) {bad}; choose from {AUGMENTATIONS}")
        bad = [r for r in self.regimes if r not in REGIMES]
        if bad:
            raise ConfigError(f"unknown regime(s) {bad}; choose from {REGIMES}")
        if any(n is not None and n < 1 for n in self.n_per_class) or not self.seeds:
            raise ConfigError("n_per_class entries must be >= 1 (or None for all); seeds non-empty")
        if any(n is None or n < 1 for n in self.fair_n) or (
                self.fair_seeds is not None and any(s not in self.seeds for s in self.fair_seeds)):
            raise ConfigError("fair_n entries must be >= 1 (a fair generator for n = all is the shipped one); "
                              "fair_seeds must be among seeds")
        if self.fair_critic_augment not in CRITIC_AUGMENT_POLICIES:
            raise ConfigError(f"fair_critic_augment must be one of {', '.join(CRITIC_AUGMENT_POLICIES)}")
        if len(self.fair_widths) != 2 or any(not isinstance(w, int) or w < 1 for w in self.fair_widths):
            raise ConfigError(f"fair_widths must be two widths >= 1 (g_width, d_width), got {self.fair_widths!r}")
        if any(not r > 0 for r in self.ratios):
            raise ConfigError("ratios must be > 0 (ratio 0 is the 'none'/'classical' cells)")


PRESETS = {
    # CPU, about 10 minutes: the shipped generator only.
    "quick": GridConfig(n_per_class=(10, 100), ratios=(1.0, 4.0), regimes=("shipped",), seeds=(0, 1),
                        classifier_steps=300, synthetic_only_per_class=1000, diversity_per_class=100),
    # The full grid: a GPU job (fair generators are trained on the fly).
    "full": GridConfig(),
    # What 2 CPU cores do in a few hours: no n = all, two ratios, fair cells for seed 0 only,
    # from quarter-width fair generators of 5,000 steps (about 25 min each; the reference size
    # runs 0.65 steps/s here) unless ``--fair-dir`` holds them already.
    "cpu": GridConfig(n_per_class=(10, 100, 500), ratios=(1.0, 4.0), fair_seeds=(0,),
                      classifier_steps=1000, synthetic_only_per_class=2000, diversity_per_class=200,
                      fair_gan_steps=5000, fair_widths=(32, 16)),
}


def _has_fair(grid: GridConfig, n: Optional[int], seed: int) -> bool:
    return n in grid.fair_n and (grid.fair_seeds is None or seed in grid.fair_seeds)


def grid_cells(grid: GridConfig) -> list[Cell]:
    """All cells of a grid, in a stable order (cheap cells first within each seed)."""
    cells = []
    for seed in grid.seeds:
        for n in grid.n_per_class:
            for aug in grid.augmentations:
                if aug in ("none", "classical"):
                    cells.append(Cell(n, 0.0, aug, "-", seed))
                    continue
                for regime in grid.regimes:
                    if regime == "fair" and not _has_fair(grid, n, seed):
                        continue
                    cells += [Cell(n, float(r), aug, regime, seed) for r in grid.ratios]
        if grid.synthetic_only and "synthetic" in grid.augmentations:
            for regime in grid.regimes:
                ns = [None] if regime == "shipped" else \
                    [n for n in grid.n_per_class if _has_fair(grid, n, seed)]
                cells += [Cell(n, math.inf, "synthetic", regime, seed) for n in ns]
    return cells


# ------------------------------------------------------------------------------ the results


def read_results(path: Path) -> list[dict]:
    import csv

    if not path.exists():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def write_results(path: Path, rows: list[dict]) -> None:
    """Rewrite the whole CSV atomically (so a killed run keeps every finished cell)."""
    import csv
    import io

    columns = list(RESULT_COLUMNS)
    for row in rows:
        columns += [k for k in row if k not in columns]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, buf.getvalue())


def cell_key(row: dict) -> str:
    n = row["n_per_class"]
    ratio = float(row["ratio"])
    return f"n={n}|r={ratio:g}|{row['augmentation']}|{row['regime']}|seed={int(row['seed'])}"


# ----------------------------------------------------------------------------------- running


@dataclass
class ExperimentContext:
    """What every cell shares: data, device, the shipped generator and the fair ones."""

    grid: GridConfig
    out_dir: Path
    device: torch.device
    data_dir: Optional[Path]
    shipped_generator: Optional[Path]
    progress: bool = False
    log: Callable[[str], None] = print
    mnist: bool = True  # verify MNIST's checksums (False: any IDX data, e.g. test fixtures)
    fair_dir: Optional[Path] = None  # fair runs n{N}_seed{S}/ (default: out_dir/fair_generators)
    test: Optional[tuple] = None  # (images, labels) of the real test set, on the device

    def generator_for(self, cell: Cell) -> Path:
        if cell.regime == "shipped":
            if self.shipped_generator is None:
                from .pretrained import verified_default_generator_path

                return verified_default_generator_path()
            return self.shipped_generator
        return fair_generator(self, cell.n_per_class, cell.seed)


def fair_generator(ctx: ExperimentContext, n_per_class: int, seed: int) -> Path:
    """Train (or reuse, or resume) a generator on the same n-per-class subset as the cell's
    classifier: ``TrainConfig(n_per_class=n, seed=seed)`` selects it with the same seeded
    draw as ``RealMNIST(n_per_class=n, seed=seed)``."""
    from .config import ModelConfig, TrainConfig
    from .training import resume, train

    run = (ctx.fair_dir or ctx.out_dir / "fair_generators") / f"n{n_per_class}_seed{seed}"
    generator = run / "generator.safetensors"  # its critic_augment was checked by run_grid
    if generator.exists():
        return generator
    g_width, d_width = ctx.grid.fair_widths
    cfg = TrainConfig(model=ModelConfig(g_width=g_width, d_width=d_width),
                      data_dir=str(ctx.data_dir) if ctx.data_dir else None, n_per_class=n_per_class,
                      dataset="mnist" if ctx.mnist else "idx",
                      seed=seed, max_steps=ctx.grid.fair_gan_steps, step_impl="auto",
                      critic_augment=ctx.grid.fair_critic_augment,
                      device=str(ctx.device), sample_every=max(1, ctx.grid.fair_gan_steps // 10),
                      checkpoint_every=max(1, ctx.grid.fair_gan_steps // 10), tensorboard=False)
    ctx.log(f"training the fair generator n={n_per_class} seed={seed} "
            f"({ctx.grid.fair_gan_steps} steps, widths {g_width}/{d_width}) in {run}")
    if (run / "checkpoints" / "last.pt").exists():
        return resume(run, {"max_steps": cfg.max_steps}, progress=ctx.progress)
    if (run / "config.json").is_file():  # a run of ours stopped before its first checkpoint
        ctx.log(f"{run} stopped before its first checkpoint; starting it again")
        shutil.rmtree(run)
    return train(cfg, run, progress=ctx.progress)


def _check_fair_run(run: Path, critic_augment: str) -> None:
    """Refuse to reuse or resume a fair run trained with another ``critic_augment`` than the
    grid asks for (the rows would be labelled with the wrong setting). A run stopped before
    its first checkpoint starts again with the grid's setting, so it is not checked."""
    if not ((run / "generator.safetensors").exists() or (run / "checkpoints" / "last.pt").exists()):
        return
    settings = run_training_settings(run)
    if settings is None:
        return  # weights without their run's config (trained elsewhere): run.json records them
    trained = settings["critic_augment"]
    if trained != critic_augment:
        raise ConfigError(f"{run} was trained with critic_augment={trained!r} but the grid asks for "
                          f"{critic_augment!r}; pass --fair-critic-augment {trained} or another --fair-dir")


def materialize(dataset, batch_size: int = 2000) -> tuple[torch.Tensor, torch.Tensor]:
    """All items of a map-style dataset as (images (N, C, 32, 32), labels (N,) int64),
    fetched in batches (a synthetic batch is one generator forward)."""
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=False)
    xs, ys = [], []
    for x, y in loader:
        xs.append(x)
        ys.append(torch.as_tensor(y))
    return torch.cat(xs), torch.cat(ys).long()


class OnDemandImages:
    """The images of a map-style dataset, made when first drawn and then kept: ``source[idx]``
    for an int64 index tensor ``(B,)`` gives float32 ``(B, C, 32, 32)`` in [-1, 1] on ``device``.

    The items not yet made are fetched in one ``__getitems__`` call (one generator forward for
    synthetic items), so each item is made at most once and items the classifier never draws
    are never made: 1,000 steps of 128 draw ~114k of the 480k synthetic items of n = all, r = 8.
    Items are pure functions of their index, so a classifier sees bitwise the images that
    ``materialize`` would have given it. Storage is allocated up front but untouched pages of
    a CPU tensor cost no memory."""

    def __init__(self, dataset, device: torch.device | str):
        if len(dataset) == 0:
            raise ConfigError("no training items: the dataset is empty")
        self.dataset, self.device = dataset, torch.device(device)
        first = self._fetch(torch.zeros(1, dtype=torch.long))
        self.images = torch.empty((len(dataset), *first.shape[1:]), dtype=torch.float32, device=self.device)
        self.made = torch.zeros(len(dataset), dtype=torch.bool, device=self.device)
        self.images[0], self.made[0] = first[0], True

    @property
    def shape(self) -> torch.Size:
        return self.images.shape

    def __len__(self) -> int:
        return len(self.images)

    @property
    def count_made(self) -> int:
        """How many items have been made so far."""
        return int(self.made.sum())

    def _fetch(self, idx: torch.Tensor) -> torch.Tensor:
        from .mixing import fetch_items
        from .synthetic import collate_batch

        images = collate_batch(fetch_items(self.dataset, idx.tolist()))[0]
        return images.to(device=self.device, dtype=torch.float32)

    def __getitem__(self, idx: torch.Tensor) -> torch.Tensor:
        idx = idx.to(self.device)
        missing = torch.unique(idx[~self.made[idx]])
        if len(missing):
            self.images[missing] = self._fetch(missing)
            self.made[missing] = True
        return self.images[idx]


def cell_training_set(cell: Cell, ctx: ExperimentContext) -> tuple[torch.Tensor | OnDemandImages, torch.Tensor]:
    """The (images, labels) a cell's classifier trains on: real images as one tensor, mixed or
    synthetic ones as ``OnDemandImages`` (made as the classifier draws them)."""
    from .data import RealMNIST
    from .mixing import dataset_targets, mix_real_synthetic

    real = None
    if math.isfinite(cell.ratio):
        real = RealMNIST(ctx.data_dir, train=True, device=ctx.device, n_per_class=cell.n_per_class,
                         seed=cell.seed, mnist=ctx.mnist)
        if not cell.uses_synthetic:
            return real.data, real.targets
    synth_seed = 10_000 + cell.seed  # synthetic items differ from seed to seed
    per_class = None if math.isfinite(cell.ratio) else ctx.grid.synthetic_only_per_class
    mixed = mix_real_synthetic(real, ctx.generator_for(cell), cell.ratio, seed=synth_seed,
                               per_class=per_class, device=ctx.device)
    return OnDemandImages(mixed, ctx.device), dataset_targets(mixed)


def run_cell(cell: Cell, ctx: ExperimentContext) -> dict:
    """Train the fixed classifier for the fixed budget on the cell's data; test on real MNIST."""
    from .augmentation import random_affine
    from .classifier import ClassifierTrainConfig, predict, train_classifier
    from .metrics import accuracy, classifier_agreement

    started = time.time()
    images, labels = cell_training_set(cell, ctx)
    budget = ClassifierTrainConfig(steps=ctx.grid.classifier_steps, batch_size=ctx.grid.classifier_batch,
                                   seed=cell.seed, max_shift=0)
    model, _ = train_classifier(images, labels, train=budget, device=ctx.device,
                                batch_transform=random_affine if cell.uses_classical else None)
    test_x, test_y = ctx.test
    pred = predict(model, test_x).cpu()
    per_class = classifier_agreement(pred, test_y.cpu(), num_classes=int(test_y.max()) + 1)["per_class"]
    row = {"n_per_class": "all" if cell.n_per_class is None else cell.n_per_class,
           "ratio": cell.ratio, "augmentation": cell.augmentation, "regime": cell.regime,
           "seed": cell.seed, "test_accuracy": round(accuracy(test_y.cpu(), pred), 6),
           "train_images": len(labels), "seconds": round(time.time() - started, 2)}
    row.update({f"acc_{c}": round(a, 6) for c, a in enumerate(per_class)})
    return row


def run_grid(grid: GridConfig, out_dir: PathLike, device: torch.device,
             data_dir: Optional[PathLike] = None, generator: Optional[PathLike] = None,
             progress: bool = True, log: Callable[[str], None] = print,
             command: str = "", mnist: bool = True, fair_dir: Optional[PathLike] = None) -> Path:
    """Run every unfinished cell of ``grid`` into ``out_dir``; then write the summary, the
    diversity table and the plots. Returns the path of results.csv. Fair generators live in
    ``fair_dir/n{N}_seed{S}/`` (default ``out_dir/fair_generators``): one found there
    (``generator.safetensors``) is used as it is, e.g. one trained on a GPU; a missing one is
    trained (or its run resumed)."""
    from tqdm.auto import tqdm

    from .data import RealMNIST

    started = time.time()  # the invocation's wall time: loading, cells, diversity and plots
    out_dir = Path(out_dir)
    test = RealMNIST(data_dir, train=False, device=device, mnist=mnist)  # fail before writing
    if "shipped" in grid.regimes:  # a bad --generator or install fails now, not after the real-only cells
        from .checkpoint import load_generator
        from .pretrained import verified_default_generator_path

        load_generator(generator if generator is not None else verified_default_generator_path())
    results_path = out_dir / "results.csv"
    rows = read_results(results_path)
    _check_same_budget(out_dir, grid, rows, generator)  # before writing
    done = {cell_key(r) for r in rows}
    cells = [c for c in grid_cells(grid) if c.key not in done]
    fair_root = Path(fair_dir) if fair_dir else out_dir / "fair_generators"
    for n, seed in sorted({(c.n_per_class, c.seed) for c in cells if c.regime == "fair"}):
        _check_fair_run(fair_root / f"n{n}_seed{seed}", grid.fair_critic_augment)  # before writing
    out_dir.mkdir(parents=True, exist_ok=True)
    with exclusive_lock(out_dir / ".lock", f"experiment directory {out_dir}"):
        rows = read_results(results_path)  # again: another invocation may have added cells
        done = {cell_key(r) for r in rows}
        cells = [c for c in grid_cells(grid) if c.key not in done]
        ctx = ExperimentContext(grid, out_dir, device, Path(data_dir) if data_dir else None,
                                Path(generator) if generator else None, log=log,
                                mnist=mnist, test=(test.data, test.targets),
                                fair_dir=Path(fair_dir) if fair_dir else None)
        log(f"{len(done)} cells done, {len(cells)} to run -> {results_path}")
        for cell in tqdm(cells, disable=not progress, unit="cell", dynamic_ncols=True):
            rows.append(run_cell(cell, ctx))
            write_results(results_path, rows)
        generators = used_generators(ctx, rows)
        diversity = generator_diversity(ctx, [(name, path) for name, path, found in generators if found])
        missing = {name for name, _, found in generators if not found}
        if missing:  # keep what an earlier invocation measured of generators no longer here
            log(f"not found, so their diversity rows are kept from before: {', '.join(sorted(missing))}")
            diversity += [r for r in read_diversity(out_dir / "diversity.csv") if r["generator"] in missing]
        from .experiment_report import write_summary

        write_summary(out_dir, rows, diversity)
        _write_run_info(out_dir, grid, device, command, time.time() - started, len(cells),
                        {name: describe_generator(path) if found else _missing_generator(out_dir, name, path)
                         for name, path, found in generators}, rows)
        return results_path


BUDGET_FIELDS = ("classifier_steps", "classifier_batch", "synthetic_only_per_class")


def _check_same_budget(out_dir: Path, grid: GridConfig, rows: list[dict], generator: Optional[PathLike]) -> None:
    """Refuse to add cells to ``out_dir`` under another classifier budget or another shipped
    generator than its rows were made with (as recorded in its run.json): the tables would mix
    them silently."""
    if not rows:
        return
    try:
        info = json.loads((out_dir / "run.json").read_text())
    except (OSError, ValueError):
        return
    if not isinstance(info, dict):
        return
    recorded = info.get("budget") or info.get("grid") or {}
    for field in BUDGET_FIELDS:
        if field in recorded and recorded[field] != getattr(grid, field):
            raise ConfigError(f"{out_dir} holds cells made with {field}={recorded[field]}, not "
                              f"{getattr(grid, field)}; use another --out (or the same budget)")
    shipped = (info.get("generators") or {}).get("shipped") or {}
    if "sha256" in shipped and any(r["regime"] == "shipped" for r in rows):
        from .fileio import sha256_file
        from .pretrained import verified_default_generator_path

        path = Path(generator) if generator is not None else verified_default_generator_path()
        if sha256_file(path) != shipped["sha256"]:
            raise ConfigError(f"{out_dir} holds cells made with another shipped generator "
                              f"({shipped.get('path')}, SHA-256 {shipped['sha256'][:12]}); use another --out")


def used_generators(ctx: ExperimentContext, rows: Iterable[dict]) -> list[tuple[str, Path, bool]]:
    """(name, path, found) of each generator the rows used: "shipped" or "fair n=N seed=S".
    Nothing is trained here: a fair generator no longer at its path (e.g. rows kept from a
    run whose weights stayed elsewhere) comes back with found False."""
    used = sorted({(r["regime"], str(r["n_per_class"]), int(r["seed"])) for r in rows if r["regime"] != "-"})
    seen, out = set(), []
    for regime, n, seed in used:
        if regime == "shipped":
            path = ctx.generator_for(Cell(None, 1.0, "synthetic", regime, seed))
        else:
            path = (ctx.fair_dir or ctx.out_dir / "fair_generators") / f"n{n}_seed{seed}" / "generator.safetensors"
        if path not in seen:
            seen.add(path)
            out.append(("shipped" if regime == "shipped" else f"fair n={n} seed={seed}", path, path.is_file()))
    return out


def _missing_generator(out_dir: Path, name: str, path: Path) -> dict:
    """run.json's entry for a generator the rows used that is no longer at ``path``: what an
    earlier run.json recorded of it, marked missing, and where it was looked for."""
    try:
        earlier = json.loads((out_dir / "run.json").read_text())["generators"][name]
    except (OSError, ValueError, KeyError, TypeError):
        earlier = {}
    earlier = earlier if isinstance(earlier, dict) else {}
    return {**earlier, "missing": True, "looked_for": str(path)}


def read_diversity(path: Path) -> list[dict]:
    """The rows of a diversity.csv (numbers as floats, class as int); [] without the file."""
    import csv

    try:
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
    except FileNotFoundError:
        return []
    return [{k: (v if k == "generator" else int(v) if k == "class" else float(v or "nan")) for k, v in r.items()}
            for r in rows]


def describe_generator(path: Path) -> dict:
    """Where a generator came from: its file, SHA-256, model config, training step and, when
    its run's config.json lies beside it, how it was trained."""
    from .checkpoint import read_generator_file
    from .fileio import sha256_file

    model, _, metadata = read_generator_file(path)
    step = metadata.get("step")
    try:  # relative to the working directory when inside it (the repo: no machine-specific prefix)
        shown = str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        shown = str(path)
    info = {"path": shown, "sha256": sha256_file(path), "model": dataclasses.asdict(model),
            "step": int(step) if step is not None and step.isdigit() else None,
            "weights": metadata.get("weights", "live")}  # 'average': an EMA (ema_decay)
    settings = run_training_settings(path.parent)
    if settings is not None:
        info["training"] = settings
    return info


def run_training_settings(run: Path) -> Optional[dict]:
    """How the run in ``run`` trained (from its config.json; None without a readable one):
    n_per_class, seed, batch_size, n_critic, lr, real_batches, critic_augment, ema_decay,
    max_steps. Configs older than critic_augment trained without it ("none"); older than
    ema_decay, without an average (None)."""
    try:
        train = json.loads((run / "config.json").read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(train, dict):
        return None
    keys = ("n_per_class", "seed", "batch_size", "n_critic", "lr", "real_batches", "critic_augment", "ema_decay",
            "max_steps")
    return {k: train.get(k, "none" if k == "critic_augment" else None) for k in keys}


def generator_diversity(ctx: ExperimentContext, generators: list[tuple[str, Path]]) -> list[dict]:
    """Per-class agreement, intra-class diversity and coverage of each generator the grid used."""
    from .checkpoint import load_generator
    from .evaluation import evaluate_generator

    table = []
    for name, path in generators:
        result = evaluate_generator(load_generator(path, ctx.device), n_per_class=ctx.grid.diversity_per_class,
                                    seed=0, data_dir=ctx.data_dir, device=ctx.device, mnist=ctx.mnist)
        per_class = result["per_class"]
        for c in range(len(per_class["agreement"])):
            table.append({"generator": name, "class": c, **{k: v[c] for k, v in per_class.items()}})
    return table


def _write_run_info(out_dir: Path, grid: GridConfig, device: torch.device, command: str,
                    seconds: float, cells_run: int, generators: dict, rows: list[dict]) -> None:
    """run.json: the classifier budget every row shares, the generators behind the rows
    (``describe_generator``) and one entry per invocation, with its grid (a rerun that only
    rebuilds the tables adds an entry with cells_run 0 instead of overwriting the wall time of
    the real run). ``cell_seconds_total`` sums the
    rows' own times, so it also counts cells of invocations that were stopped before their end."""
    path = out_dir / "run.json"
    try:
        invocations = json.loads(path.read_text()).get("invocations", [])
    except (OSError, ValueError, AttributeError):
        invocations = []
    invocations.append({"command": command, "grid": dataclasses.asdict(grid), "device": str(device),
                        "machine": machine_description(device), "torch": torch.__version__,
                        "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                        "wall_time_s": round(seconds, 1), "cells_run": cells_run})
    info = {"budget": {k: getattr(grid, k) for k in BUDGET_FIELDS}, "generators": generators,
            "invocations": invocations,
            "cells_run_total": sum(i.get("cells_run", 0) for i in invocations),
            "wall_time_s_total": round(sum(i.get("wall_time_s", 0.0) for i in invocations), 1),
            "cells_total": len(rows), "cell_seconds_total": round(sum(float(r["seconds"]) for r in rows), 1)}
    atomic_write_text(path, json.dumps(info, indent=2, default=str) + "\n")


def cpu_model() -> str:
    """The CPU's model name (Linux: /proc/cpuinfo), else the platform's machine type."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_description(device: torch.device) -> str:
    """E.g. "NVIDIA H100 80GB HBM3" or "2-core AMD EPYC (x86_64), no GPU"."""
    import os

    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{os.cpu_count()}-core {cpu_model()} ({platform.machine()}), no GPU"
