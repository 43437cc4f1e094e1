"""Augmentation experiments: train one fixed classifier on real, synthetic and mixed data.

``run_grid`` runs every unfinished cell of a grid (``augment.downstream.grid``): each cell trains the same
classifier for the same number of steps on its real, mixed or synthetic set and reports its
accuracy on the real test set, overall and per class. Rows go to ``results.csv`` after
each cell, so a stopped grid resumes where it was; then the directory gets its diversity table,
``run.json`` (``augment.downstream.records``), summary tables and plots
(``augment.downstream.summary``). Fair generators are trained on the cell's own n-per-class
subset when they are not found.
"""

from __future__ import annotations

import math
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Optional

import torch
from tqdm.auto import tqdm

from augment.checkpoint import generator_step, load_generator
from augment.config import ModelConfig, SubsetSpec, TrainConfig
from augment.data.real import RealMNIST
from augment.data.sources import dataset_name, load_labelled
from augment.data.subsets import per_class_subset
from augment.downstream.affine import random_affine
from augment.downstream.grid import Cell, GridConfig, cell_key, grid_cells, read_results, write_results
from augment.downstream.records import (
    REAL_CEILING,
    check_same_budget,
    describe_generator,
    missing_generator,
    read_diversity,
    record_budget,
    recorded_generator_sha256,
    run_training_settings,
    write_run_info,
)
from augment.downstream.summary import write_summary
from augment.errors import ConfigError
from augment.evaluation.classifier import ClassifierTrainConfig, predict, train_classifier
from augment.evaluation.classifier_files import default_classifier, load_classifier
from augment.evaluation.metrics import accuracy, classifier_agreement
from augment.evaluation.report import class_labels
from augment.evaluation.scoring import evaluate_generator, evaluate_real_baseline, load_reference
from augment.fileio import PathLike, exclusive_lock, sha256_file
from augment.synthetic.dataset import collate_batch
from augment.synthetic.mixing import dataset_targets, fetch_items, mix_real_synthetic
from augment.synthetic.shipped import verified_default_generator_path
from augment.training.loop import resume, train

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
    dataset: str = "mnist"  # the kind of data source (augment.data.sources)
    fair_dir: Optional[Path] = None  # fair runs n{N}_seed{S}/ (default: out_dir/fair_generators)
    test: Optional[tuple] = None  # (images, labels) of the real test set, on the device
    evaluator: Optional[Path] = None  # classifier file of the diversity table (default: the shipped one)

    def generator_for(self, cell: Cell) -> Path:
        if cell.regime == "shipped":
            if self.shipped_generator is None:
                return verified_default_generator_path()
            return self.shipped_generator
        return fair_generator(self, cell.n_per_class, cell.seed)


def fair_generator(ctx: ExperimentContext, n_per_class: int, seed: int) -> Path:
    """Train (or reuse, or resume) a generator on the same n-per-class subset as the cell's
    classifier: ``TrainConfig(subset=SubsetSpec(n_per_class=n), seed=seed)`` selects it with the same seeded
    draw as ``RealMNIST(subset=SubsetSpec(n_per_class=n), seed=seed)``."""
    run = (ctx.fair_dir or ctx.out_dir / "fair_generators") / f"n{n_per_class}_seed{seed}"
    generator = run / "generator.safetensors"  # its critic_augment was checked by run_grid
    if generator.exists():  # run_grid checked that it got to the grid's steps
        return generator
    cfg = fair_train_config(ctx.grid.fair_widths, ctx.grid.fair_gan_steps, seed, ctx.data_dir, ctx.dataset,
                            ctx.device, SubsetSpec(n_per_class=n_per_class),
                            critic_augment=ctx.grid.fair_critic_augment)
    ctx.log(f"training the fair generator n={n_per_class} seed={seed} ({cfg.max_steps} steps, widths "
            f"{cfg.model.g_width}/{cfg.model.d_width}) in {run}")
    return train_or_resume(run, cfg, ctx.progress, ctx.log)


def fair_train_config(widths: tuple, steps: int, seed: int, data_dir: Optional[Path], dataset: str,
                      device: torch.device, subset: SubsetSpec, **options) -> TrainConfig:
    """The ``TrainConfig`` of a fair generator: widths (g_width, d_width), ``steps`` generator
    steps, the cell's seed (so the same real images as its classifier), the step that is
    fastest on ``device``, ten grids and checkpoints over the run, trained on ``subset``; ``options``
    are further ``TrainConfig`` fields (critic_augment, real_sampling)."""
    g_width, d_width = widths
    return TrainConfig(model=ModelConfig(num_classes=None, g_width=g_width, d_width=d_width),
                       data_dir=str(data_dir) if data_dir else None, dataset=dataset,
                       seed=seed, max_steps=steps, step_impl="auto", device=str(device),
                       sample_every=max(1, steps // 10), checkpoint_every=max(1, steps // 10), tensorboard=False,
                       subset=subset, **options)


def train_or_resume(run: Path, cfg: TrainConfig, progress: bool, log: Callable[[str], None]) -> Path:
    """``run``'s generator file: resumed from its checkpoint when it has one, else trained anew
    (a run stopped before its first checkpoint starts again)."""
    if (run / "checkpoints" / "last.pt").exists():
        return resume(run, {"max_steps": cfg.max_steps}, progress=progress)
    if (run / "config.json").is_file():  # a run of ours stopped before its first checkpoint
        log(f"{run} stopped before its first checkpoint; starting it again")
        shutil.rmtree(run)
    return train(cfg, run, progress=progress)


def check_fair_run_finished(run: Path, steps: int) -> None:
    """Refuse a fair run of ours (it has a config.json) whose generator was saved before the
    grid's ``steps`` (a time limit, ``max_minutes``, ended it): its rows would stand for a longer
    run than it was. A generator file that does not say its step is taken as it is."""
    weights = run / "generator.safetensors"
    if not (weights.is_file() and (run / "config.json").is_file()):
        return
    step = generator_step(weights)
    if step is None or step >= steps:
        return
    how = (f"continue it with `augment train --run-dir {run} --resume --max-steps {steps}` (and a larger "
           f"--max-minutes)"
           if (run / "checkpoints" / "last.pt").is_file() else "train it again")
    raise ConfigError(f"{run}: its generator stopped at step {step} of the {steps} the grid asks for; {how}, or "
                      f"pass another --fair-dir")


def _check_fair_run(run: Path, critic_augment: str, steps: int, recorded_sha256: Optional[str] = None) -> None:
    """Refuse to reuse or resume a fair run trained with another ``critic_augment`` than the
    grid asks for (the rows would be labelled with the wrong setting), and, where earlier rows
    were made with this fair generator (``recorded_sha256``, from run.json), any generator but
    that one: new cells would mix two generators under one name; and one that stopped short of
    the grid's ``steps`` (``check_fair_run_finished``). A run stopped before its first checkpoint
    starts again with the grid's setting, so it is not checked."""
    if recorded_sha256 is not None:
        weights = run / "generator.safetensors"
        if not weights.is_file():
            raise ConfigError(f"earlier cells used the fair generator with SHA-256 {recorded_sha256[:12]}, which is "
                              f"no longer at {weights}; a new one would differ: put it back, pass --fair-dir "
                              f"where it is, or use another --out")
        if sha256_file(weights) != recorded_sha256:
            raise ConfigError(f"{weights} is not the fair generator earlier cells used (SHA-256 "
                              f"{recorded_sha256[:12]}); pass --fair-dir where that one is, or use another --out")
    if not ((run / "generator.safetensors").exists() or (run / "checkpoints" / "last.pt").exists()):
        return
    settings = run_training_settings(run)
    if settings is None:
        return  # weights without their run's config (trained elsewhere): run.json records them
    trained = settings["critic_augment"]
    if trained != critic_augment:
        raise ConfigError(f"{run} was trained with critic_augment={trained!r} but the grid asks for "
                          f"{critic_augment!r}; pass --fair-critic-augment {trained} or another --fair-dir")
    check_fair_run_finished(run, steps)


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
    real = None
    if math.isfinite(cell.ratio):
        real = RealMNIST(ctx.data_dir, train=True, device=ctx.device, subset=SubsetSpec(n_per_class=cell.n_per_class),
                         seed=cell.seed, dataset=ctx.dataset)
        if not cell.uses_synthetic:
            return real.data, real.targets
    synth_seed = 10_000 + cell.seed  # synthetic items differ from seed to seed
    per_class = None if math.isfinite(cell.ratio) else ctx.grid.synthetic_only_per_class
    mixed = mix_real_synthetic(real, ctx.generator_for(cell), cell.ratio, seed=synth_seed,
                               per_class=per_class, device=ctx.device)
    return OnDemandImages(mixed, ctx.device), dataset_targets(mixed)


def run_cell(cell: Cell, ctx: ExperimentContext) -> dict:
    """Train the fixed classifier for the fixed budget on the cell's data; test on real MNIST."""
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
             command: str = "", mnist: bool = True, fair_dir: Optional[PathLike] = None,
             dataset: Optional[str] = None, evaluator: Optional[PathLike] = None) -> Path:
    """Run every unfinished cell of ``grid`` into ``out_dir``; then write the summary, the
    diversity table and the plots. Returns the path of results.csv. Fair generators live in
    ``fair_dir/n{N}_seed{S}/`` (default ``out_dir/fair_generators``): one found there
    (``generator.safetensors``) is used as it is, e.g. one trained on a GPU, unless its run's
    config.json says it was trained otherwise or it stopped short of the grid's steps; a missing
    one is trained (or its run resumed)."""
    started = time.time()  # the invocation's wall time: loading, cells, diversity and plots
    out_dir = Path(out_dir)
    dataset = dataset_name(dataset, mnist)
    test = RealMNIST(data_dir, train=False, device=device, dataset=dataset)  # fail before writing
    _check_subsets_exist(grid, data_dir, dataset)
    if "shipped" in grid.regimes:  # a bad --generator or install fails now, not after the real-only cells

        load_generator(generator if generator is not None else verified_default_generator_path())
    results_path = out_dir / "results.csv"
    rows = read_results(results_path)
    check_same_budget(out_dir, grid, rows, generator)  # before writing
    done = {cell_key(r) for r in rows}
    cells = [c for c in grid_cells(grid) if c.key not in done]
    fair_root = Path(fair_dir) if fair_dir else out_dir / "fair_generators"
    used = {(r["n_per_class"], int(r["seed"])) for r in rows if r["regime"] == "fair"}
    for n, seed in sorted({(c.n_per_class, c.seed) for c in cells if c.regime == "fair"}):
        recorded = recorded_generator_sha256(out_dir, f"fair n={n} seed={seed}") if (str(n), seed) in used else None
        _check_fair_run(fair_root / f"n{n}_seed{seed}", grid.fair_critic_augment, grid.fair_gan_steps,
                        recorded)  # before writing
    out_dir.mkdir(parents=True, exist_ok=True)
    with exclusive_lock(out_dir / ".lock", f"experiment directory {out_dir}"):
        rows = read_results(results_path)  # again: another invocation may have added cells
        done = {cell_key(r) for r in rows}
        cells = [c for c in grid_cells(grid) if c.key not in done]
        record_budget(out_dir, grid, rows, generator)
        ctx = ExperimentContext(grid, out_dir, device, Path(data_dir) if data_dir else None,
                                Path(generator) if generator else None, log=log,
                                dataset=dataset, test=(test.data, test.targets),
                                fair_dir=Path(fair_dir) if fair_dir else None,
                                evaluator=Path(evaluator) if evaluator else None)
        log(f"{len(done)} cells done, {len(cells)} to run -> {results_path}")
        for cell in tqdm(cells, disable=not progress, unit="cell", dynamic_ncols=True):
            rows.append(run_cell(cell, ctx))
            write_results(results_path, rows)
        generators = used_generators(ctx, rows)
        diversity = generator_diversity(ctx, [(name, path) for name, path, found in generators if found])
        missing = {name for name, _, found in generators if not found}
        if missing:  # keep what an earlier invocation measured of generators no longer here
            log(f"not found, so their diversity rows are kept from before: {', '.join(sorted(missing))}")
            keep = missing if diversity else missing | {REAL_CEILING}
            diversity += [r for r in read_diversity(out_dir / "diversity.csv") if r["generator"] in keep]

        write_summary(out_dir, rows, diversity)
        write_run_info(out_dir, grid, device, command, time.time() - started, len(cells),
                       {name: describe_generator(path) if found else missing_generator(out_dir, name, path)
                        for name, path, found in generators}, rows)
        return results_path


def _check_subsets_exist(grid: GridConfig, data_dir: Optional[PathLike], dataset: str) -> None:
    """Every n-per-class subset of the grid exists in the training data (else the one-line
    ``DataError`` of ``per_class_subset``, before anything is written)."""
    ns = [n for n in grid.n_per_class if n is not None]
    if ns:
        labels = load_labelled(data_dir, "train", dataset).labels
        per_class_subset(labels, max(ns))


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


def generator_diversity(ctx: ExperimentContext, generators: list[tuple[str, Path]]) -> list[dict]:
    """``per_class_diversity`` of the generators the grid used, at its ``diversity_per_class``."""
    return per_class_diversity(generators, ctx.grid.diversity_per_class, ctx.device, ctx.data_dir, ctx.dataset,
                               ctx.evaluator)


def per_class_diversity(generators: list[tuple[str, Path]], n_per_class: int, device: torch.device,
                        data_dir: Optional[Path], dataset: str, evaluator: Optional[Path] = None) -> list[dict]:
    """Per-class agreement, intra-class diversity, coverage and Fréchet of each ``(name, path)``
    generator, and of as many real training images per class (``REAL_CEILING``), one row per
    (generator, class), with its ``class_name`` where the data names its classes. Coverage and
    Fréchet depend strongly on the number of samples (a perfect generator's coverage is ~0.3 at
    100 a class against ~1,000 real test images), so a generator's row is read against that
    ceiling at the same n, not against 1. [] without
    generators, and for an image folder or npz without an ``evaluator`` (a classifier file of that
    data: the shipped evaluator knows only digits; IDX data is taken for MNIST-like digits)."""
    if not generators or (evaluator is None and dataset in ("folder", "npz")):
        return []
    classifier = default_classifier(device) if evaluator is None else load_classifier(evaluator, device)
    reference = load_reference(classifier, data_dir, dataset=dataset)
    results = [(name, evaluate_generator(load_generator(path, device), n_per_class=n_per_class, seed=0,
                                         classifier=classifier, reference=reference))
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
