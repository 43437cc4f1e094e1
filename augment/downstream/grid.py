"""What every experiment grid shares: its config fields, its cells and its results file.

A cell is one classifier run: a real subset (``SubsetSpec``), a method (a row of
``augment.downstream.methods.METHODS``), a generator regime and a seed, and for the methods that
add ``r x n_c`` synthetic images, the ratio r. ``GridConfig`` holds the fields every grid has
and the classifier budget; its subclasses (``BalancedGridConfig``, ``LongtailGridConfig``) add
their axes, list their cells and name their rows' columns. A field made with ``option`` is a
CLI option of ``augment experiment`` (``--`` + its name), its help and kind read from here.
``results.csv`` holds one row per finished cell (``read_results``, ``write_results``,
rewritten atomically after each cell); ``GridConfig.row_key`` matches rows to cells.

Regimes: ``shipped`` (the default generator, trained on all 60k labelled images: an upper
bound that leaks labels a low-n classifier does not have), ``fair`` (a generator trained by
this project's trainer on exactly the cell's real images: the real use case), ``-`` for cells
without synthetic data.
"""

from __future__ import annotations

import csv
import dataclasses
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from augment.config import CRITIC_AUGMENT_POLICIES, TRAIN_PRESETS, SubsetSpec
from augment.downstream.methods import METHODS, Method, methods_of
from augment.errors import ConfigError
from augment.fileio import atomic_write_text

REGIMES = ("shipped", "fair")
# how a grid trains its fair generators (``--fair-recipe``): 'reference', the reference recipe (the
# TrainConfig defaults), or a preset of ``augment train --preset`` (``TRAIN_PRESETS``)
FAIR_RECIPES = ("reference",) + tuple(TRAIN_PRESETS)
# the TrainConfig fields the presets set (their widths are --fair-widths; eval_every only watches)
# and keep_best, which a fair run never has: a fair run found in --fair-dir must have them as the
# grid's recipe does
RECIPE_SETTINGS = tuple((key, None, "--fair-recipe") for key in sorted(
    {key for preset in TRAIN_PRESETS.values() for key in preset} - {"model", "eval_every"} | {"keep_best"}))
# the kinds of CLI option a grid field can be ("experiment" parses each): 'count' (N: seeds 0..N-1),
# 'sizes' (ints or 'all'), 'numbers', 'ints', 'ints or all', 'names' (comma-separated), 'positive'
# (a number > 0), 'whole' (an int >= 1), 'choice' (one of its ``choices``)
OPTION_KINDS = ("count", "sizes", "numbers", "ints", "ints or all", "names", "positive", "whole", "choice")


def option(default: Any, help: str, kind: str, **metadata: Any) -> Any:
    """A grid field that is also a CLI option of ``augment experiment`` (``help``, ``kind`` as in
    ``OPTION_KINDS``; ``choices`` for 'choice'; ``shown`` False keeps the presets' values out of
    the help; ``none`` says what None means)."""
    assert kind in OPTION_KINDS, kind
    return field(default=default, metadata={"help": help, "kind": kind, **metadata})


@dataclass(frozen=True)
class Cell:
    """One classifier run."""

    subset: SubsetSpec  # the real images (all by default); a fair generator trains on the same
    method: str
    regime: str  # 'shipped', 'fair', or '-' without synthetic data
    seed: int
    ratio: float = 0.0  # synthetic images per real one of each class ('ratio' methods); inf: synthetic only

    @property
    def uses_real(self) -> bool:
        return self.ratio != float("inf")


@dataclass(frozen=True)
class GridConfig:
    """The fields every grid has: its methods, regimes and seeds, the fixed classifier budget
    and how its fair generators are trained when ``--fair-dir`` does not hold them (``fair_recipe``,
    ``fair_widths`` (g_width, d_width), ``fair_gan_steps`` generator steps, ``fair_critic_augment``)."""

    kind: ClassVar[str] = ""  # 'balanced' or 'longtail': which methods it runs, which summary it writes
    key_columns: ClassVar[tuple] = ()  # the columns of a row that name its cell
    result_columns: ClassVar[tuple] = ()  # results.csv's first columns
    budget_fields: ClassVar[tuple] = ("classifier_steps", "classifier_batch")  # shared by every row of a directory
    # what a fair run's config.json must say to stand for the grid's fair generator:
    # (key, section of the config or None, the option that sets it); see ``fair.check_fair_run``
    fair_settings: ClassVar[tuple] = (("critic_augment", None, "--fair-critic-augment"),) + RECIPE_SETTINGS

    methods: tuple = option((), "the methods (rows of the method table)", "names", shown=False)
    regimes: tuple = option(REGIMES, "the generator regimes: 'shipped', 'fair' or both", "names")
    seeds: tuple = option((0, 1, 2), "how many seeds (0 to N-1)", "count")
    classifier_steps: int = option(1000, "the classifier budget: training steps of every cell", "whole")
    classifier_batch: int = 128
    fair_gan_steps: int = option(10000, "generator steps of each fair generator this grid trains", "whole")
    fair_widths: tuple = option((128, 64), "G,D base widths of the fair generators this grid trains", "ints")
    fair_critic_augment: str = option("none", "DiffAugment policy of the fair generators this grid trains",
                                      "choice", choices=CRITIC_AUGMENT_POLICIES)
    fair_recipe: str = option("reference", "how the fair generators this grid trains are trained: 'reference' (the "
                              "reference recipe) or a preset of 'augment train --preset' ('cpu': the CPU recipe "
                              "less its in-training evaluation, whose pick of the best weights would use labels and "
                              "test images the cell's classifier does not have); their widths stay --fair-widths",
                              "choice", choices=FAIR_RECIPES)
    diversity_per_class: int = 200  # synthetic images per class for the diversity table

    def __post_init__(self) -> None:
        known = methods_of(self.kind)
        bad = [m for m in self.methods if m not in known]
        if bad or not self.methods:
            raise ConfigError(f"unknown {self.kind} method(s) {bad}; choose from {', '.join(known)}")
        bad = [r for r in self.regimes if r not in REGIMES]
        if bad:
            raise ConfigError(f"unknown regime(s) {bad}; choose from {', '.join(REGIMES)}")
        if not self.seeds:
            raise ConfigError("seeds is empty")
        if self.fair_critic_augment not in CRITIC_AUGMENT_POLICIES:
            raise ConfigError(f"fair_critic_augment must be one of {', '.join(CRITIC_AUGMENT_POLICIES)}")
        if self.fair_recipe not in FAIR_RECIPES:
            raise ConfigError(f"fair_recipe must be one of {', '.join(FAIR_RECIPES)}, got {self.fair_recipe!r}")
        if len(self.fair_widths) != 2 or any(not isinstance(w, int) or w < 1 for w in self.fair_widths):
            raise ConfigError(f"fair_widths must be two widths >= 1 (g_width, d_width), got {self.fair_widths!r}")

    # ---------------------------------------------------------------- what a grid kind says
    def cells(self) -> list[Cell]:
        """All cells, in a stable order."""
        raise NotImplementedError

    def cell_columns(self, cell: Cell) -> dict:
        """The ``key_columns`` of the cell's row."""
        raise NotImplementedError

    def row_subset(self, row: dict) -> SubsetSpec:
        """The real subset of a results.csv row (its fair generator's training images)."""
        raise NotImplementedError

    def generator_name(self, subset: SubsetSpec, seed: int) -> str:
        """The name of a fair generator in run.json and diversity.csv."""
        raise NotImplementedError

    def method_settings(self, method: str) -> dict:
        """The grid settings a method's rows depend on, as their columns ({} when none)."""
        return {}

    def scores(self, accuracy: float, recall: list, counts: list) -> dict:
        """A row's score columns from the test accuracy, each class's recall and the real training
        images per class (None for all)."""
        raise NotImplementedError

    def fair_options(self) -> dict:
        """TrainConfig fields of the fair generators besides their subset, seed, widths and steps."""
        return {"critic_augment": self.fair_critic_augment}

    # ---------------------------------------------------------------- shared
    def check_method_settings(self, rows: list[dict], out_dir: Path) -> None:
        """Refuse to add cells with another tau (synthetic ratio, top-up target) than the rows of
        the same method already in ``out_dir`` were made with: one method, one setting per table."""
        for row in rows:
            if row["method"] not in self.methods:
                continue
            for key, value in self.method_settings(row["method"]).items():
                have = row.get(key, "")
                if value != "" and have not in ("", None) and float(have) != value:
                    raise ConfigError(f"{out_dir} holds {row['method']} cells made with {key}={float(have):g}, not "
                                      f"{value:g}; use another --out (or the same setting)")

    def method(self, name: str) -> Method:
        return METHODS[name]

    def key(self, row: dict) -> str:
        """The key of a results.csv row (or of ``cell_columns``), read back as strings or not."""
        return "|".join(f"{k}={_canonical(row[k])}" for k in self.key_columns)

    def cell_key(self, cell: Cell) -> str:
        return self.key(self.cell_columns(cell))

    def option_fields(self) -> list[dataclasses.Field]:
        """The fields that are CLI options."""
        return [f for f in dataclasses.fields(self) if "kind" in f.metadata]


def redefault(name: str, default: Any) -> Any:
    """``GridConfig``'s field ``name`` (its help and kind) with another default, for a grid kind."""
    base = {f.name: f for f in dataclasses.fields(GridConfig)}[name]
    return field(default=default, metadata=base.metadata)


def _canonical(value: Any) -> str:
    """'1', 'inf', 'all', 'fair' for 1, 1.0, '1.0', inf, 'all', 'fair': one spelling per value."""
    try:
        return f"{float(value):g}"
    except (TypeError, ValueError):
        return str(value)


# ------------------------------------------------------------------------------ the results


def read_results(path: Path) -> list[dict]:
    """The rows of a results.csv as dicts of strings; [] when there is no file yet."""
    if not path.exists():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def write_results(path: Path, rows: list[dict], first_columns: tuple) -> None:
    """Rewrite the whole CSV atomically (so a killed run keeps every finished cell): the
    ``first_columns``, then any other column of the rows in order of appearance."""
    columns = list(first_columns)
    for row in rows:
        columns += [k for k in row if k not in columns]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, buf.getvalue())
