"""One runner for every experiment grid (``augment.downstream.grid``): ``run_grid`` runs each
unfinished cell of a balanced or longtail grid into a directory. Each cell trains the same
classifier for the same number of steps on its data, as its method (a row of
``augment.downstream.methods.METHODS``) says, and scores it on the real test set; rows go to
``results.csv`` after each cell, so a stopped grid resumes where it was. Then the directory
gets its diversity table, summary tables and plots (``balanced_summary``, ``longtail_summary``)
and ``run.json`` (``records``). Fair generators (``fair``) are trained on the cell's own real
subset when they are not found.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import torch
from tqdm.auto import tqdm

from augment.checkpoint import load_generator
from augment.config import SubsetSpec
from augment.data.real import RealMNIST
from augment.data.sources import load_labelled, source_kind
from augment.data.subsets import subset_counts, subset_indices
from augment.downstream import balanced_summary, longtail_summary
from augment.downstream.affine import random_affine
from augment.downstream.diversity import diversity_judge, per_class_diversity
from augment.downstream.fair import (
    check_fair_run,
    check_recorded_fair_generator,
    fair_run_name,
    fair_train_config,
    train_or_resume,
)
from augment.downstream.grid import Cell, GridConfig, read_results, write_results
from augment.downstream.on_demand import OnDemandImages
from augment.downstream.records import (
    REAL_CEILING,
    check_same_budget,
    describe_generator,
    missing_generator,
    read_diversity,
    record_budget,
    recorded_generator_sha256,
    write_run_info,
)
from augment.evaluation.classifier import ClassifierTrainConfig, predict, train_classifier
from augment.evaluation.fit import check_generator_fits, data_signature
from augment.evaluation.metrics import classifier_agreement
from augment.fileio import PathLike, exclusive_lock
from augment.provenance import DataSignature
from augment.synthetic.mixing import dataset_targets, mix_real_synthetic, top_up_real_synthetic
from augment.synthetic.shipped import verified_default_generator_path

SUMMARIES = {"balanced": balanced_summary.write_summary, "longtail": longtail_summary.write_summary}


@dataclass
class GridRun:
    """What every cell of a grid's run shares: data, device, the shipped generator and the fair ones."""

    grid: GridConfig
    out_dir: Path
    device: torch.device
    data_dir: Optional[Path]
    dataset: str  # the kind of data source (augment.data.sources)
    data: DataSignature  # what the data is: kind, classes, size (augment.provenance)
    shipped_generator: Optional[Path]  # the 'shipped' regime's (default: the shipped one)
    fair_dir: Path  # fair runs <subset label>_seed{S}/
    test: tuple  # (images (N, C, 32, 32), labels (N,)) of the real test set, on the device
    num_classes: int
    evaluator: Optional[Path] = None  # classifier file of the diversity table (default: the shipped one)
    progress: bool = False
    log: Callable[[str], None] = print

    def generator_for(self, cell: Cell) -> Path:
        if cell.regime == "shipped":
            return self.shipped_generator or verified_default_generator_path()
        return fair_generator(self, cell.subset, cell.seed)


def fair_generator(ctx: GridRun, subset: SubsetSpec, seed: int) -> Path:
    """Reuse, resume or train the generator of exactly the cell's real images:
    ``TrainConfig(subset=subset, seed=seed)`` selects them with the same seeded draw as
    ``RealMNIST(subset=subset, seed=seed)``."""
    run = ctx.fair_dir / fair_run_name(subset, seed)
    if (run / "generator.safetensors").exists():  # run_grid checked its settings and steps
        return run / "generator.safetensors"
    cfg = fair_train_config(ctx.grid, subset, seed, ctx.data_dir, ctx.dataset, ctx.device)
    ctx.log(f"training the fair generator {run.name} ({cfg.max_steps} steps, recipe {ctx.grid.fair_recipe}, widths "
            f"{cfg.model.g_width}/{cfg.model.d_width}) in {run}")
    return train_or_resume(run, cfg, ctx.progress, ctx.log)


def cell_training_set(cell: Cell, ctx: GridRun) -> tuple[torch.Tensor | OnDemandImages, torch.Tensor]:
    """The (images, labels) a cell's classifier trains on: real images as one tensor, mixed or
    synthetic ones as ``OnDemandImages`` (made as the classifier draws them)."""
    method = ctx.grid.method(cell.method)
    real = None
    if cell.uses_real:
        real = RealMNIST(ctx.data_dir, train=True, device=ctx.device, subset=cell.subset, seed=cell.seed,
                         dataset=ctx.dataset)
        if not method.uses_synthetic:
            return real.data, real.targets
    synth_seed = 10_000 + cell.seed  # synthetic items differ from seed to seed
    generator = ctx.generator_for(cell)
    if method.synthetic == "top-up":
        target = ctx.grid.method_settings(cell.method)["top_up_target"]
        mixed = top_up_real_synthetic(real, generator, target, seed=synth_seed, device=ctx.device)
    else:
        per_class = None if cell.uses_real else ctx.grid.synthetic_only_per_class
        mixed = mix_real_synthetic(real, generator, cell.ratio, seed=synth_seed, per_class=per_class,
                                   device=ctx.device)
    return OnDemandImages(mixed, ctx.device), dataset_targets(mixed)


def run_cell(cell: Cell, ctx: GridRun) -> dict:
    """Train the fixed classifier for the fixed budget on the cell's data, as its method says;
    score it on the real test set. Returns the cell's row."""
    started = time.time()
    method = ctx.grid.method(cell.method)
    settings = ctx.grid.method_settings(cell.method)
    images, labels = cell_training_set(cell, ctx)
    budget = ClassifierTrainConfig(steps=ctx.grid.classifier_steps, batch_size=ctx.grid.classifier_batch,
                                   seed=cell.seed, max_shift=0, sampling=method.sampling,
                                   logit_adjust_tau=settings.get("logit_adjust_tau") or 0.0)
    model, _ = train_classifier(images, labels, train=budget, device=ctx.device,
                                batch_transform=random_affine if method.classical else None)
    test_x, test_y = ctx.test
    agreement = classifier_agreement(predict(model, test_x).cpu(), test_y.cpu(), num_classes=ctx.num_classes)
    counts = subset_counts(cell.subset, ctx.num_classes, cell.seed)
    return {**ctx.grid.cell_columns(cell), **settings,
            **ctx.grid.scores(agreement["overall"], agreement["per_class"], counts),
            "train_images": len(labels), "seconds": round(time.time() - started, 2)}


def run_grid(grid: GridConfig, out_dir: PathLike, device: torch.device, data_dir: Optional[PathLike] = None,
             generator: Optional[PathLike] = None, progress: bool = True, log: Callable[[str], None] = print,
             command: str = "", fair_dir: Optional[PathLike] = None, dataset: Optional[str] = None,
             evaluator: Optional[PathLike] = None) -> Path:
    """Run every unfinished cell of ``grid`` into ``out_dir``; then the diversity table, the
    summary and its plots, and run.json. Returns the path of results.csv. Before the first cell,
    every generator the cells would use (the "shipped" regime's, the fair ones found) and the
    evaluator are checked to fit the data (``augment.evaluation.fit``): nothing partial is written.

    Args:
        grid: the grid and its budget (e.g. ``PRESETS["quick"].grid``).
        out_dir: the results directory; a rerun skips finished cells.
        device: where the classifiers (and any fair generator trained here) run.
        data_dir: the data (default: ``$AUGMENT_DATA``, else the cache).
        generator: the "shipped" regime's generator (default: the shipped one, which fits only
            MNIST: other data needs one trained on it).
        progress: show progress bars.
        log: called with progress messages.
        command: the command line, recorded in run.json.
        fair_dir: where the fair generators are, ``<subset label>_seed{S}/`` (``fair_run_name``,
            e.g. ``n10_seed0``, ``lt100_seed0``; default ``out_dir/fair_generators``): one found
            there is used as it is (unless its config.json says it was trained otherwise than the
            grid's ``fair_settings`` or it stopped short of the grid's steps); a missing one is
            trained (or its run resumed).
        dataset: the kind of data source (``augment.data.sources``); None: recognised from the path.
        evaluator: the classifier file that scores the generators' samples (default: the shipped
            evaluator, which fits only MNIST: other data without one gets no diversity table).
    """
    started = time.time()  # the invocation's wall time: loading, cells, diversity and plots
    out_dir = Path(out_dir)
    data_dir = Path(data_dir) if data_dir else None
    dataset = source_kind(data_dir, dataset)
    test = RealMNIST(data_dir, train=False, device=device, dataset=dataset)  # bad data fails before writing
    ctx = GridRun(grid, out_dir, device, data_dir, dataset, data_signature(data_dir, dataset),
                  Path(generator) if generator else None,
                  Path(fair_dir) if fair_dir else out_dir / "fair_generators", (test.data, test.targets),
                  test.num_classes, Path(evaluator) if evaluator else None, progress, log)
    _check_subsets_exist(ctx)
    if "shipped" in grid.regimes:  # a bad --generator or install fails now, not after the real-only cells
        load_generator(generator if generator is not None else verified_default_generator_path())
    results_path = out_dir / "results.csv"
    rows = read_results(results_path)
    check_same_budget(out_dir, grid, rows, generator)  # before writing
    grid.check_method_settings(rows, out_dir)
    _check_fair_generators(ctx, rows)
    _check_generators_fit(ctx, rows)
    skipped = diversity_judge(ctx.evaluator, ctx.data, device)[1]  # a --classifier that does not fit: refused now
    if skipped:
        log(skipped)
    out_dir.mkdir(parents=True, exist_ok=True)
    with exclusive_lock(out_dir / ".lock", f"experiment directory {out_dir}"):
        rows = read_results(results_path)  # again: another invocation may have added cells
        cells = _cells_to_run(grid, rows)
        record_budget(out_dir, grid, rows, generator)
        log(f"{len(rows)} cells done, {len(cells)} to run -> {results_path}")
        for cell in tqdm(cells, disable=not progress, unit="cell", dynamic_ncols=True):
            rows.append(run_cell(cell, ctx))
            write_results(results_path, rows, grid.result_columns)
        generators = used_generators(ctx, rows)
        diversity = per_class_diversity([(name, path) for name, path, found in generators if found],
                                        grid.diversity_per_class, device, data_dir, dataset, ctx.data, ctx.evaluator)
        missing = {name for name, _, found in generators if not found}
        if missing:  # keep what an earlier invocation measured of generators no longer here
            log(f"not found, so their diversity rows are kept from before: {', '.join(sorted(missing))}")
            keep = missing if diversity else missing | {REAL_CEILING}
            diversity += [r for r in read_diversity(out_dir / "diversity.csv") if r["generator"] in keep]
        fair = {}
        for row in rows:
            if row["regime"] == "fair":
                subset, seed = grid.row_subset(row), int(row["seed"])
                fair[(subset, seed)] = ctx.fair_dir / fair_run_name(subset, seed) / "generator.safetensors"
        SUMMARIES[grid.kind](out_dir, grid, rows, diversity, {k: p for k, p in fair.items() if p.is_file()},
                             data_dir, dataset)
        write_run_info(out_dir, grid, device, command, time.time() - started, len(cells),
                       {name: describe_generator(path) if found else missing_generator(out_dir, name, path)
                        for name, path, found in generators}, rows)
    return results_path


def _cells_to_run(grid: GridConfig, rows: list[dict]) -> list[Cell]:
    done = {grid.key(r) for r in rows}
    return [c for c in grid.cells() if grid.cell_key(c) not in done]


def _check_subsets_exist(ctx: GridRun) -> None:
    """Every real subset of the grid's cells exists in the training data (else the one-line error
    of ``subset_indices``, e.g. a class with too few images, before anything is written)."""
    needed = {(c.subset, c.seed) for c in ctx.grid.cells() if c.uses_real and not c.subset.is_all}
    if needed:
        labels = load_labelled(ctx.data_dir, "train", ctx.dataset).labels
        for subset, seed in sorted(needed, key=lambda s: (s[0].label(), s[1])):
            subset_indices(labels, subset, seed, ctx.num_classes)


def _check_generators_fit(ctx: GridRun, rows: list[dict]) -> None:
    """Every generator a cell still to run would use fits the data (``check_generator_fits``): the
    "shipped" regime's, and each fair generator already in the fair directory (one trained here
    learns from the data itself)."""
    pending = _cells_to_run(ctx.grid, rows)
    if any(c.regime == "shipped" for c in pending):
        check_generator_fits(ctx.shipped_generator, ctx.data, "--generator FILE, or --regimes fair")
    for subset, seed in sorted({(c.subset, c.seed) for c in pending if c.regime == "fair"},
                               key=lambda s: (s[0].label(), s[1])):
        weights = ctx.fair_dir / fair_run_name(subset, seed) / "generator.safetensors"
        if weights.is_file():
            check_generator_fits(weights, ctx.data, f"--fair-dir DIR holding {weights.parent.name}/, or remove "
                                                    f"{weights.parent} to train it anew")


def _check_fair_generators(ctx: GridRun, rows: list[dict]) -> None:
    """Before anything is written: the fair generators the rows used are the ones run.json
    recorded (``check_recorded_fair_generator``), and each fair run the cells still to run would
    use was trained as the grid asks (``check_fair_run``)."""
    grid = ctx.grid
    pending = {(c.subset, c.seed) for c in _cells_to_run(grid, rows) if c.regime == "fair"}
    used = {(grid.row_subset(r), int(r["seed"])) for r in rows if r["regime"] == "fair"}
    for subset, seed in used:
        weights = ctx.fair_dir / fair_run_name(subset, seed) / "generator.safetensors"
        recorded = recorded_generator_sha256(ctx.out_dir, grid.generator_name(subset, seed))
        check_recorded_fair_generator(weights, recorded, (subset, seed) in pending)
    for subset, seed in sorted(pending, key=lambda s: (s[0].label(), s[1])):
        check_fair_run(ctx.fair_dir / fair_run_name(subset, seed),
                       fair_train_config(grid, subset, seed, ctx.data_dir, ctx.dataset, ctx.device),
                       grid.fair_settings)


def used_generators(ctx: GridRun, rows: list[dict]) -> list[tuple[str, Path, bool]]:
    """(name, path, found) of each generator the rows used: "shipped", or the grid's name of a
    fair one ("fair n=10 seed=0", "fair lt100_seed0"), fair ones by subset and seed. Nothing is
    trained here: a fair generator no longer at its path (e.g. rows kept from a run whose weights
    stayed elsewhere) comes back with found False."""
    column = ctx.grid.key_columns[0]  # the subset's column (n_per_class, imbalance_ratio)
    first = {}
    for row in rows:
        if row["regime"] != "-":
            first.setdefault((row["regime"], _number_first(row[column]), int(row["seed"])), row)
    out, seen = [], set()
    for (regime, _, seed), row in sorted(first.items(), key=lambda kv: kv[0]):
        if regime == "shipped":
            name, path = "shipped", ctx.shipped_generator or verified_default_generator_path()
        else:
            subset = ctx.grid.row_subset(row)
            name = ctx.grid.generator_name(subset, seed)
            path = ctx.fair_dir / fair_run_name(subset, seed) / "generator.safetensors"
        if name not in seen:
            seen.add(name)
            out.append((name, path, path.is_file()))
    return out


def _number_first(value: str) -> tuple:
    """A sort key: numbers by value, before other strings ('all')."""
    try:
        return (0, float(value), "")
    except ValueError:
        return (1, 0.0, str(value))
