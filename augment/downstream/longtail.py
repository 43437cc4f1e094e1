"""The long-tailed grid: does a conditional generator trained on a long-tailed set rebalance
its rare classes better than the baselines a long-tail practitioner would use?

A cell is one classifier run on the MNIST-LT subset of imbalance ratio rho (``SubsetSpec``:
class c keeps ``n_max * rho^(-c/(C-1))`` images, rounded half up) with one method, a generator regime and
a seed. Methods (``METHODS``; each a '+'-joined set of parts):

* ``erm``: plain training on the long-tailed images (every image equally often);
* ``balanced``: class-balanced resampling (every class equally often);
* ``logit-adjusted``: the logit-adjusted loss (Menon et al., ICLR 2021), tau = ``logit_adjust_tau``;
* ``classical``: the per-sample random affine of ``augment.downstream.affine``, and its
  combinations ``classical+balanced`` and ``classical+logit-adjusted``;
* ``top-up``: every class topped up with synthetic images to ``top_up_target`` images (default:
  the largest class's count; a class with more real images keeps them all;
  ``augment.synthetic.mixing.top_up_real_synthetic``), with or without ``classical``;
* ``classical+synthetic+logit-adjusted``: ``synthetic_ratio`` x n_c synthetic images added to
  each class (the imbalance kept), trained with the logit-adjusted loss.

Regimes: ``fair`` (a generator trained by this project's trainer on exactly the cell's
long-tailed images: same subset spec, same seed), ``shipped`` (trained on all 60,000 balanced
labels: the upper bound), ``-`` for cells without synthetic data. Every cell trains the same
classifier for the same steps and is tested on the balanced MNIST test set: accuracy, balanced
accuracy (mean per-class recall), worst-class recall, the mean recall of the three rarest
classes and every class's recall. ``results.csv`` is rewritten after each cell, so a stopped
grid resumes; ``run.json``, ``diversity.csv`` (per-class quality of each fair generator against
the real-train ceiling at the same n) and the summary (``augment.downstream.longtail_summary``)
come at the end.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, ClassVar, Optional

import torch
from tqdm.auto import tqdm

from augment.checkpoint import load_generator
from augment.config import CLASS_ORDERS, LONG_TAIL_N_MAX, REAL_SAMPLINGS, SubsetSpec
from augment.data.real import RealMNIST
from augment.data.sources import dataset_name, load_labelled
from augment.data.subsets import subset_counts, subset_indices
from augment.downstream.affine import random_affine
from augment.downstream.grid import read_results, write_results
from augment.downstream.longtail_fair import check_fair_generators, check_fair_run_settings, fair_config, fair_run_name
from augment.downstream.longtail_summary import RARE, rarest_classes, write_longtail_summary
from augment.downstream.records import (
    check_same_budget,
    describe_generator,
    missing_generator,
    read_run_info,
    record_budget,
    write_run_info,
)
from augment.downstream.runner import OnDemandImages, per_class_diversity, train_or_resume
from augment.errors import ConfigError
from augment.evaluation.classifier import ClassifierTrainConfig, predict, train_classifier
from augment.evaluation.metrics import classifier_agreement
from augment.fileio import PathLike, exclusive_lock
from augment.synthetic.mixing import dataset_targets, mix_real_synthetic, top_up_real_synthetic
from augment.synthetic.shipped import verified_default_generator_path

PARTS = ("classical", "balanced", "logit-adjusted", "top-up", "synthetic")
METHODS = ("erm", "balanced", "logit-adjusted", "classical", "classical+balanced", "classical+logit-adjusted",
           "top-up", "classical+top-up", "classical+synthetic+logit-adjusted")
REGIMES = ("fair", "shipped")
RESULT_COLUMNS = ("imbalance_ratio", "method", "regime", "seed", "logit_adjust_tau", "synthetic_ratio",
                  "top_up_target", "test_accuracy", "balanced_accuracy", "worst_recall", "rare_recall", "train_images",
                  "seconds")


def method_parts(method: str) -> set:
    """The parts of a method id ('erm' has none); a ConfigError for an unknown method."""
    if method not in METHODS:
        raise ConfigError(f"unknown long-tail method {method!r}; choose from {', '.join(METHODS)}")
    return set() if method == "erm" else set(method.split("+"))


def uses_synthetic(method: str) -> bool:
    return bool(method_parts(method) & {"top-up", "synthetic"})


def method_settings(method: str, grid: "LongTailGridConfig") -> dict:
    """The grid settings a method's rows depend on, as their CSV columns ("" where unused)."""
    parts = method_parts(method)
    return {"logit_adjust_tau": grid.logit_adjust_tau if "logit-adjusted" in parts else "",
            "synthetic_ratio": grid.synthetic_ratio if "synthetic" in parts else "",
            "top_up_target": (grid.top_up_target or grid.n_max) if "top-up" in parts else ""}


def read_rows(results_path: Path) -> list[dict]:
    """The rows of results.csv, each with the tau / synthetic ratio / top-up target its method
    used: rows written before these were columns take tau and the ratio from run.json's budget,
    where they were recorded then, and the target from the row's largest class count (the only
    target then)."""
    rows = read_results(results_path)
    recorded = read_run_info(results_path.parent).get("budget") or {}
    for row in rows:
        parts = method_parts(row["method"]) if row["method"] in METHODS else set()
        for key, part in (("logit_adjust_tau", "logit-adjusted"), ("synthetic_ratio", "synthetic")):
            if part in parts and row.get(key) in ("", None) and key in recorded:
                row[key] = recorded[key]
        if "top-up" in parts and row.get("top_up_target") in ("", None):
            row["top_up_target"] = max(int(v) for k, v in row.items() if k.startswith("count_"))
    return rows


def check_method_settings(grid: "LongTailGridConfig", rows: list[dict], out_dir: Path) -> None:
    """Refuse to add cells with another tau (synthetic ratio, top-up target) than the rows of the
    same method already in ``out_dir`` were made with: one method, one setting per table."""
    for row in rows:
        if row["method"] not in grid.methods:
            continue
        for key, value in method_settings(row["method"], grid).items():
            have = row.get(key, "")
            if value != "" and have not in ("", None) and float(have) != value:
                raise ConfigError(f"{out_dir} holds {row['method']} cells made with {key}={float(have):g}, not "
                                  f"{value:g}; use another --out (or the same setting)")


@dataclass(frozen=True)
class LongTailGridConfig:
    """A long-tailed grid and its fixed classifier budget. Fair generators (the ``fair_*``
    fields) are trained here when ``fair_dir`` does not hold them: ``fair_widths`` (g_width,
    d_width), ``fair_gan_steps`` generator steps, critic real batches drawn as
    ``fair_real_sampling`` says."""

    # shared by every row of a directory; tau, the synthetic ratio and the top-up target are
    # columns of the rows that use them (``method_settings``), checked row by row (``check_method_settings``)
    budget_fields: ClassVar[tuple] = ("classifier_steps", "classifier_batch", "n_max", "class_order")

    imbalance_ratios: tuple = (10.0, 100.0)
    n_max: int = LONG_TAIL_N_MAX
    class_order: str = "index"
    methods: tuple = METHODS
    regimes: tuple = REGIMES
    seeds: tuple = (0, 1, 2)
    classifier_steps: int = 1000
    classifier_batch: int = 128
    logit_adjust_tau: float = 0.5  # tuned on validation (experiments/longtail_tuning.py); the paper's is 1
    synthetic_ratio: float = 1.0  # of classical+synthetic+logit-adjusted: synthetic x n_c added per class
    # of the top-up methods: each class filled up to this many images (None: n_max, the largest
    # class); a class with more real images keeps them all
    top_up_target: Optional[int] = None
    fair_gan_steps: int = 4000
    fair_widths: tuple = (64, 32)
    fair_real_sampling: str = "auto"
    fair_critic_augment: str = "none"
    diversity_per_class: int = 200

    def __post_init__(self) -> None:
        for m in self.methods:
            method_parts(m)
        bad = [r for r in self.regimes if r not in REGIMES]
        if bad:
            raise ConfigError(f"unknown regime(s) {bad}; choose from {', '.join(REGIMES)}")
        if not self.imbalance_ratios or any(not 1 <= r < math.inf for r in self.imbalance_ratios):
            raise ConfigError(f"imbalance ratios must be finite and >= 1, got {self.imbalance_ratios}")
        if not self.seeds:
            raise ConfigError("seeds is empty")
        if self.class_order not in CLASS_ORDERS or self.fair_real_sampling not in REAL_SAMPLINGS:
            raise ConfigError(f"class_order must be one of {CLASS_ORDERS}, fair_real_sampling one of {REAL_SAMPLINGS}")
        if not 0 < self.logit_adjust_tau < math.inf or not 0 < self.synthetic_ratio < math.inf:
            raise ConfigError(f"logit_adjust_tau and synthetic_ratio must be finite and > 0, "
                              f"got {self.logit_adjust_tau!r} and {self.synthetic_ratio!r}")
        if self.top_up_target is not None and (isinstance(self.top_up_target, bool) or
                                               not isinstance(self.top_up_target, int) or self.top_up_target < 1):
            raise ConfigError(f"top_up_target must be a whole number >= 1 (or None), got {self.top_up_target!r}")
        if len(self.fair_widths) != 2 or any(not isinstance(w, int) or w < 1 for w in self.fair_widths):
            raise ConfigError(f"fair_widths must be two widths >= 1 (g_width, d_width), got {self.fair_widths!r}")

    def subset(self, imbalance_ratio: float) -> SubsetSpec:
        return SubsetSpec(imbalance_ratio=float(imbalance_ratio), n_max=self.n_max, class_order=self.class_order)


PRESETS = {
    # 2 CPU cores: fair generators at half width (64/32) for 4,000 steps (about 3 h each on one
    # core), 1,000 classifier steps a cell; about ten hours in all, two processes at a time.
    "longtail-cpu": LongTailGridConfig(),
    # a GPU: reference-size fair generators, 10,000 steps, 2,000 classifier steps a cell.
    "longtail-gpu": LongTailGridConfig(classifier_steps=2000, fair_gan_steps=10000, fair_widths=(128, 64)),
}


@dataclass(frozen=True)
class LongTailCell:
    imbalance_ratio: float
    method: str
    regime: str  # "fair", "shipped", or "-" without synthetic data
    seed: int

    @property
    def key(self) -> str:
        return f"rho={self.imbalance_ratio:g}|{self.method}|{self.regime}|seed={self.seed}"


def grid_cells(grid: LongTailGridConfig) -> list[LongTailCell]:
    """All cells, in a stable order: per seed and ratio, the baselines, then each regime's
    synthetic methods."""
    cells = []
    for seed in grid.seeds:
        for rho in grid.imbalance_ratios:
            cells += [LongTailCell(float(rho), m, "-", seed) for m in grid.methods if not uses_synthetic(m)]
            cells += [LongTailCell(float(rho), m, regime, seed) for regime in grid.regimes
                      for m in grid.methods if uses_synthetic(m)]
    return cells


def row_key(row: dict) -> str:
    return f"rho={float(row['imbalance_ratio']):g}|{row['method']}|{row['regime']}|seed={int(row['seed'])}"


# ----------------------------------------------------------------------------------- running


@dataclass
class LongTailContext:
    grid: LongTailGridConfig
    out_dir: Path
    device: torch.device
    data_dir: Optional[Path]
    shipped_generator: Optional[Path]
    fair_dir: Path
    test: tuple  # (images (N, C, 32, 32), labels (N,)) of the real test set, on the device
    num_classes: int
    dataset: str = "mnist"
    progress: bool = False
    log: Callable[[str], None] = print

    def generator_for(self, cell: LongTailCell) -> Path:
        if cell.regime == "shipped":
            return self.shipped_generator or verified_default_generator_path()
        return fair_generator(self, cell.imbalance_ratio, cell.seed)


def fair_generator(ctx: LongTailContext, imbalance_ratio: float, seed: int) -> Path:
    """Reuse, resume or train the generator of exactly the cell's long-tailed images."""
    run = ctx.fair_dir / fair_run_name(ctx.grid.subset(imbalance_ratio), seed)
    if (run / "generator.safetensors").exists():  # run_longtail_grid checked its settings and steps
        return run / "generator.safetensors"
    cfg = fair_config(ctx.grid, imbalance_ratio, seed, ctx.data_dir, ctx.dataset, ctx.device)
    ctx.log(f"training the fair generator {run.name} ({cfg.max_steps} steps, widths "
            f"{cfg.model.g_width}/{cfg.model.d_width}) in {run}")
    return train_or_resume(run, cfg, ctx.progress, ctx.log)


def cell_training_set(cell: LongTailCell, ctx: LongTailContext):
    """(images, labels) of a cell: the long-tailed real images as one tensor, or with their
    synthetic part as ``OnDemandImages`` (made as the classifier draws them)."""
    real = RealMNIST(ctx.data_dir, train=True, device=ctx.device, subset=ctx.grid.subset(cell.imbalance_ratio),
                     seed=cell.seed, dataset=ctx.dataset)
    parts = method_parts(cell.method)
    if not parts & {"top-up", "synthetic"}:
        return real.data, real.targets
    synth_seed = 10_000 + cell.seed  # synthetic items differ from seed to seed, as in the balanced grid
    generator = ctx.generator_for(cell)
    if "top-up" in parts:
        mixed = top_up_real_synthetic(real, generator, ctx.grid.top_up_target, seed=synth_seed, device=ctx.device)
    else:
        mixed = mix_real_synthetic(real, generator, ctx.grid.synthetic_ratio, seed=synth_seed, device=ctx.device)
    return OnDemandImages(mixed, ctx.device), dataset_targets(mixed)


def long_tail_scores(pred: torch.Tensor, true: torch.Tensor, train_counts: list[int]) -> dict:
    """Accuracy, balanced accuracy (mean per-class recall), worst-class recall, the mean recall
    of the ``RARE`` classes with the fewest training images, and ``recall_c`` per class."""
    recall = classifier_agreement(pred, true, num_classes=len(train_counts))["per_class"]
    rare = rarest_classes(train_counts, RARE)
    return {"test_accuracy": float((pred == true).double().mean()), "balanced_accuracy": sum(recall) / len(recall),
            "worst_recall": min(recall), "rare_recall": sum(recall[c] for c in rare) / len(rare),
            **{f"recall_{c}": r for c, r in enumerate(recall)}}


def run_cell(cell: LongTailCell, ctx: LongTailContext) -> dict:
    """Train the fixed classifier for the fixed budget on the cell's data; score it on real test."""
    started = time.time()
    images, labels = cell_training_set(cell, ctx)
    parts = method_parts(cell.method)
    budget = ClassifierTrainConfig(
        steps=ctx.grid.classifier_steps, batch_size=ctx.grid.classifier_batch, seed=cell.seed, max_shift=0,
        sampling="balanced" if "balanced" in parts else "uniform",
        logit_adjust_tau=ctx.grid.logit_adjust_tau if "logit-adjusted" in parts else 0.0)
    model, _ = train_classifier(images, labels, train=budget, device=ctx.device,
                                batch_transform=random_affine if "classical" in parts else None)
    test_x, test_y = ctx.test
    counts = train_counts(ctx, cell)
    scores = long_tail_scores(predict(model, test_x).cpu(), test_y.cpu(), counts)
    return {"imbalance_ratio": cell.imbalance_ratio, "method": cell.method, "regime": cell.regime, "seed": cell.seed,
            **method_settings(cell.method, ctx.grid), **{k: round(v, 6) for k, v in scores.items()},
            "train_images": len(labels),
            "seconds": round(time.time() - started, 2),
            **{f"count_{c}": n for c, n in enumerate(counts)}}


def train_counts(ctx: LongTailContext, cell: LongTailCell) -> list[int]:
    """The real training images per class of a cell's subset."""
    return subset_counts(ctx.grid.subset(cell.imbalance_ratio), ctx.num_classes, cell.seed)


def run_longtail_grid(grid: LongTailGridConfig, out_dir: PathLike, device: torch.device,
                      data_dir: Optional[PathLike] = None, generator: Optional[PathLike] = None,
                      progress: bool = True, log: Callable[[str], None] = print, command: str = "",
                      mnist: bool = True, fair_dir: Optional[PathLike] = None, dataset: Optional[str] = None,
                      evaluator: Optional[PathLike] = None) -> Path:
    """Run every unfinished cell of ``grid`` into ``out_dir``; then the diversity table, the
    summary and its plots. Returns results.csv. Fair generators live in
    ``fair_dir/<subset label>_seed{S}/`` (``fair_run_name``, e.g. ``lt100_seed0``; default
    ``out_dir/fair_generators``): one found there is used as it is (when its config.json says it
    was trained with the grid's ``fair_*`` settings and it got to their steps); a missing one is
    trained (or its run resumed) with them.

    Args:
        grid: the grid and its budget (``LongTailGridConfig``, e.g. ``PRESETS["longtail-cpu"]``).
        out_dir: the results directory; a rerun skips finished cells.
        device: where the classifiers (and any fair generator trained here) run.
        data_dir: the MNIST directory (default: ``$AUGMENT_DATA``, else the cache).
        generator: the "shipped" regime's generator (default: the shipped one).
        progress: show progress bars.
        log: called with progress messages.
        command: the command line, recorded in run.json.
        mnist: check MNIST's checksums (False: any IDX data, e.g. test fixtures).
        dataset: the kind of data source (``augment.data.sources``); overrides ``mnist``.
        evaluator: the classifier file that scores the generators' samples (default: the shipped
            evaluator, for digits; an image folder or npz without one gets no diversity table).
        fair_dir: where the fair generators are (see above).
    """
    started = time.time()
    out_dir = Path(out_dir)
    fair_root = Path(fair_dir) if fair_dir else out_dir / "fair_generators"
    dataset = dataset_name(dataset, mnist)
    test = RealMNIST(data_dir, train=False, device=device, dataset=dataset)  # bad data fails before writing
    labels = load_labelled(data_dir, "train", dataset).labels
    for rho in grid.imbalance_ratios:  # every subset exists (a class with too few images: its error now)
        for seed in grid.seeds:  # (with class_order 'permuted' the counts move with the seed)
            subset_indices(labels, grid.subset(rho), seed, test.num_classes)
    if "shipped" in grid.regimes:
        load_generator(generator if generator is not None else verified_default_generator_path())
    results_path = out_dir / "results.csv"
    rows = read_rows(results_path)
    check_same_budget(out_dir, grid, rows, generator)
    check_method_settings(grid, rows, out_dir)
    check_fair_generators(grid, out_dir, fair_root, rows)
    for rho, seed in sorted({(c.imbalance_ratio, c.seed) for c in grid_cells(grid) if c.regime == "fair"}):
        check_fair_run_settings(fair_root / fair_run_name(grid.subset(rho), seed),
                                fair_config(grid, rho, seed, Path(data_dir) if data_dir else None, dataset, device))
    out_dir.mkdir(parents=True, exist_ok=True)
    with exclusive_lock(out_dir / ".lock", f"experiment directory {out_dir}"):
        rows = read_rows(results_path)
        done = {row_key(r) for r in rows}
        cells = [c for c in grid_cells(grid) if c.key not in done]
        if rows:  # with the settings read_rows filled in before record_budget drops them from run.json
            write_results(results_path, rows, RESULT_COLUMNS)
        record_budget(out_dir, grid, rows, generator)
        ctx = LongTailContext(grid, out_dir, device, Path(data_dir) if data_dir else None,
                              Path(generator) if generator else None, fair_root, (test.data, test.targets),
                              test.num_classes, dataset, progress, log)
        log(f"{len(done)} cells done, {len(cells)} to run -> {results_path}")
        for cell in tqdm(cells, disable=not progress, unit="cell", dynamic_ncols=True):
            rows.append(run_cell(cell, ctx))
            write_results(results_path, rows, RESULT_COLUMNS)
        generators = used_generators(ctx, rows)
        found = [(name, path) for name, path, ok in generators if ok]
        diversity = per_class_diversity(found, grid.diversity_per_class, device, ctx.data_dir, dataset, evaluator)
        fair = {(float(r["imbalance_ratio"]), int(r["seed"])): ctx.fair_dir / fair_run_name(
            grid.subset(float(r["imbalance_ratio"])), int(r["seed"])) / "generator.safetensors"
            for r in rows if r["regime"] == "fair"}
        write_longtail_summary(out_dir, rows, diversity, grid, ctx.data_dir, dataset,
                               {k: v for k, v in fair.items() if v.is_file()})
        write_run_info(out_dir, grid, device, command, time.time() - started, len(cells),
                       {name: describe_generator(path) if ok else missing_generator(out_dir, name, path)
                        for name, path, ok in generators}, rows)
    return results_path


def used_generators(ctx: LongTailContext, rows: list[dict]) -> list[tuple[str, Path, bool]]:
    """(name, path, found) of each generator the rows used: "shipped", "fair lt100_seed0", ..."""
    out, seen = [], set()
    for regime, rho, seed in sorted({(r["regime"], float(r["imbalance_ratio"]), int(r["seed"]))
                                     for r in rows if r["regime"] != "-"}):
        if regime == "shipped":
            name, path = "shipped", ctx.shipped_generator or verified_default_generator_path()
        else:
            run = fair_run_name(ctx.grid.subset(rho), seed)
            name, path = f"fair {run}", ctx.fair_dir / run / "generator.safetensors"
        if name not in seen:
            seen.add(name)
            out.append((name, path, path.is_file()))
    return out
