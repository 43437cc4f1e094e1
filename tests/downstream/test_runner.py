import csv
import dataclasses
import json
import shutil

import numpy as np
import pytest
import torch

from augment.checkpoint import read_generator_file, save_generator
from augment.config import ModelConfig, SubsetSpec
from augment.downstream.balanced_grid import BalancedGridConfig
from augment.downstream.grid import read_results
from augment.downstream.records import read_diversity
from augment.downstream.runner import run_grid
from augment.errors import AugmentError, ConfigError, DataError
from augment.evaluation.classifier import ClassifierConfig, build_classifier
from augment.evaluation.classifier_files import save_classifier
from augment.fileio import sha256_file
from augment.gan.models import Generator
from tests.conftest import bar_digits


def test_grid_runs_resumes_and_reports(tmp_path, idx_dir, tiny_generator, tiny_evaluator):
    grid = BalancedGridConfig(n_per_class=(2,), ratios=(1.0,), regimes=("shipped",), seeds=(0,),
                              classifier_steps=3, classifier_batch=8, synthetic_only_per_class=3,
                              diversity_per_class=6)
    out = tmp_path / "exp"
    results = run_grid(grid, out, torch.device("cpu"), data_dir=idx_dir, generator=tiny_generator,
                       progress=False, log=lambda m: None, dataset="idx", evaluator=tiny_evaluator)
    rows = read_results(results)
    assert len(rows) == len(grid.cells()) == 5
    by_aug = {(r["method"], r["ratio"]): r for r in rows}
    assert int(by_aug[("none", "0.0")]["train_images"]) == 20
    assert int(by_aug[("synthetic", "1.0")]["train_images"]) == 40
    assert int(by_aug[("synthetic", "inf")]["train_images"]) == 30
    assert all(0 <= float(r["test_accuracy"]) <= 1 for r in rows)
    assert {f"acc_{c}" for c in range(10)} <= set(rows[0])
    for name in ("summary.md", "run.json", "diversity.csv", "accuracy_vs_n.png",
                 "accuracy_vs_ratio.png", "per_class_accuracy.png", "diversity.png"):
        assert (out / name).exists(), name
    assert "± " in (out / "summary.md").read_text()
    diversity = read_diversity(out / "diversity.csv")  # each generator, and real images at the same n
    assert sorted({r["generator"] for r in diversity}) == ["real train (ceiling)", "shipped"]
    assert all(len([r for r in diversity if r["generator"] == g]) == 10 for g in ("shipped", "real train (ceiling)"))
    assert "'real train (ceiling)'" in (out / "summary.md").read_text()

    # a rerun skips finished cells; a bigger grid runs only the new ones
    mtime = results.stat().st_mtime_ns
    run_grid(grid, out, torch.device("cpu"), data_dir=idx_dir, generator=tiny_generator,
             progress=False, log=lambda m: None, dataset="idx", evaluator=tiny_evaluator)
    assert len(read_results(results)) == 5
    bigger = dataclasses.replace(grid, seeds=(0, 1))
    run_grid(bigger, out, torch.device("cpu"), data_dir=idx_dir, generator=tiny_generator,
             progress=False, log=lambda m: None, dataset="idx", evaluator=tiny_evaluator)
    rows2 = read_results(results)
    assert len(rows2) == 10 and rows2[:5] == rows
    assert results.stat().st_mtime_ns != mtime
    with open(results) as f:
        assert next(csv.reader(f))[:6] == ["n_per_class", "ratio", "method", "regime", "seed",
                                           "test_accuracy"]
    info = json.loads((out / "run.json").read_text())  # every invocation is kept
    assert [i["cells_run"] for i in info["invocations"]] == [5, 0, 5]
    assert info["cells_run_total"] == info["cells_total"] == 10
    assert info["cell_seconds_total"] == pytest.approx(sum(float(r["seconds"]) for r in rows2), abs=0.1)
    shipped = info["generators"]["shipped"]  # which generator made the rows
    assert shipped["sha256"] == sha256_file(tiny_generator) and shipped["path"] == str(tiny_generator)
    assert shipped["model"] == dataclasses.asdict(read_generator_file(tiny_generator)[0])


def test_every_generator_and_the_classifier_must_fit_the_data_before_the_first_cell(tmp_path, idx_dir, tiny_generator,
                                                                                    tiny_evaluator):
    grid = BalancedGridConfig(n_per_class=(2,), ratios=(1.0,), methods=("none", "synthetic"), regimes=("shipped",),
                              seeds=(0,), classifier_steps=2, classifier_batch=8, synthetic_only=False,
                              diversity_per_class=6)
    out, cpu = tmp_path / "exp", torch.device("cpu")
    run = dict(progress=False, log=lambda m: None, data_dir=idx_dir)  # the kind recognised: toy digits, 'idx'
    with pytest.raises(ConfigError, match=rf"^the shipped generator does not fit idx data .*MNIST's digits.*--data-dir "
                                          rf"{idx_dir} --dataset idx.*--generator FILE, or --regimes fair\)$"):
        run_grid(grid, out, cpu, **run)  # MNIST's generator labelled digits that were not MNIST's
    letters = tmp_path / "letters.npz"  # 26 classes: a generator of 10 ran two cells, then "unknown class 10"
    images, _ = bar_digits(26 * 6)
    names = np.array([chr(65 + c) for c in range(26)])
    np.savez(letters, x=images.numpy(), y=np.arange(26 * 6) % 26, class_names=names)
    with pytest.raises(ConfigError, match=f"the generator {tiny_generator} does not fit npz data .*it has 10 classes"):
        run_grid(grid, out, cpu, **{**run, "data_dir": letters}, generator=tiny_generator)
    fair_dir = tmp_path / "fair"  # a fair generator found there is checked too (one trained here learns the data)
    (fair_dir / "n2_seed0").mkdir(parents=True)
    save_generator(fair_dir / "n2_seed0" / "generator.safetensors", Generator(ModelConfig(
        num_classes=5, z_dim=8, embed_dim=4, g_width=8, d_width=8)))
    with pytest.raises(ConfigError, match="n2_seed0/generator.safetensors does not fit .*it has 5 classes.*--fair-dir"):
        run_grid(dataclasses.replace(grid, regimes=("fair",), fair_n=(2,)), out, cpu, **run, fair_dir=fair_dir)
    five = tmp_path / "five.safetensors"
    save_classifier(five, build_classifier(ClassifierConfig(num_classes=5, widths=(4,))))
    with pytest.raises(ConfigError, match=f"the classifier {five} does not fit .*it has 5 classes"):
        run_grid(grid, out, cpu, **run, generator=tiny_generator, evaluator=five)
    assert not out.exists()  # nothing partial
    log = []
    run_grid(grid, out, cpu, **{**run, "log": log.append}, generator=tiny_generator)
    assert any(m.startswith("no diversity table: the shipped evaluator does not fit idx data") for m in log)
    assert read_diversity(out / "diversity.csv") == [] and len(read_results(out / "results.csv")) == 2


def test_fair_generators_from_another_directory_are_used_as_they_are(tmp_path, idx_dir,
                                                                     tiny_generator):
    fair_dir = tmp_path / "trained_elsewhere"
    (fair_dir / "n2_seed0").mkdir(parents=True)
    shutil.copyfile(tiny_generator, fair_dir / "n2_seed0" / "generator.safetensors")
    grid = BalancedGridConfig(n_per_class=(2,), ratios=(1.0,), methods=("synthetic",),
                              regimes=("fair",), fair_n=(2,), seeds=(0,), classifier_steps=2, classifier_batch=8,
                              synthetic_only_per_class=3, diversity_per_class=6)
    out = tmp_path / "exp"
    rows = read_results(run_grid(grid, out, torch.device("cpu"), data_dir=idx_dir,
                                 progress=False, log=lambda m: None, dataset="idx",
                                 fair_dir=fair_dir))
    assert {(r["regime"], r["ratio"]) for r in rows} == {("fair", "1.0"), ("fair", "inf")}
    assert not (out / "fair_generators").exists()  # nothing was trained


def test_a_rebuild_without_the_fair_generators_trains_nothing_and_keeps_their_diversity(
        tmp_path, idx_dir, tiny_generator, tiny_evaluator):
    fair_dir = tmp_path / "trained_elsewhere"
    (fair_dir / "n2_seed0").mkdir(parents=True)
    shutil.copyfile(tiny_generator, fair_dir / "n2_seed0" / "generator.safetensors")
    grid = BalancedGridConfig(n_per_class=(2,), ratios=(1.0,), methods=("synthetic",), regimes=("fair",),
                              fair_n=(2,), seeds=(0,), classifier_steps=2, classifier_batch=8,
                              synthetic_only=False, diversity_per_class=6)
    out = tmp_path / "exp"
    run = dict(progress=False, log=lambda m: None, dataset="idx", data_dir=idx_dir, evaluator=tiny_evaluator)
    run_grid(grid, out, torch.device("cpu"), fair_dir=fair_dir, **run)
    before = (out / "diversity.csv").read_text()
    shutil.rmtree(fair_dir)  # the weights stayed on another machine
    log = []
    run_grid(grid, out, torch.device("cpu"), fair_dir=fair_dir, **{**run, "log": log.append})
    assert not fair_dir.exists() and not (out / "fair_generators").exists()  # nothing was trained
    assert (out / "diversity.csv").read_text() == before  # the ceiling row too, though nothing was scored
    assert "real train (ceiling)" in before
    assert any("kept from before: fair n=2 seed=0" in m for m in log)
    info = json.loads((out / "run.json").read_text())["generators"]["fair n=2 seed=0"]
    assert info["missing"] is True and info["looked_for"] == str(fair_dir / "n2_seed0" / "generator.safetensors")
    assert info["sha256"] == sha256_file(tiny_generator)  # what the first run recorded is kept


def test_new_cells_refuse_another_fair_generator_than_earlier_cells_used(tmp_path, idx_dir, tiny_generator):
    fair_dir = tmp_path / "trained_elsewhere"
    weights = fair_dir / "n2_seed0" / "generator.safetensors"
    weights.parent.mkdir(parents=True)
    shutil.copyfile(tiny_generator, weights)
    grid = BalancedGridConfig(n_per_class=(2,), ratios=(1.0,), methods=("synthetic",), regimes=("fair",),
                              fair_n=(2,), seeds=(0,), classifier_steps=2, classifier_batch=8,
                              synthetic_only=False, diversity_per_class=6)
    out = tmp_path / "exp"
    run = dict(progress=False, log=lambda m: None, dataset="idx", data_dir=idx_dir, fair_dir=fair_dir)
    run_grid(grid, out, torch.device("cpu"), **run)
    more = dataclasses.replace(grid, ratios=(1.0, 2.0))  # a new cell on the same fair generator
    torch.manual_seed(1)
    save_generator(weights, Generator(read_generator_file(tiny_generator)[0]))  # another one, same path
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    with pytest.raises(ConfigError, match="not the fair generator earlier cells used"):
        run_grid(more, out, torch.device("cpu"), **run)
    weights.unlink()  # gone: a new one would be trained, and differ
    with pytest.raises(ConfigError, match="no longer at"):
        run_grid(more, out, torch.device("cpu"), **run)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # nothing written
    shutil.copyfile(tiny_generator, weights)  # the one the rows were made with
    run_grid(more, out, torch.device("cpu"), **run)
    assert len(read_results(out / "results.csv")) == 2


def test_each_cell_trains_with_its_own_method_and_synthetic_seed(tmp_path, idx_dir, tiny_generator, monkeypatch):
    import augment.downstream.runner as experiment
    import augment.evaluation.classifier as classifier
    import augment.synthetic.mixing as mixing
    from augment.downstream.affine import random_affine

    cells, transforms, synthetic_seeds = [], [], {}
    real_training_set, real_train, real_mix = (experiment.cell_training_set, classifier.train_classifier,
                                               mixing.mix_real_synthetic)

    def training_set(cell, ctx):
        cells.append(cell)
        return real_training_set(cell, ctx)

    def train(images, labels, *args, batch_transform=None, **kwargs):
        transforms.append(batch_transform)
        return real_train(images, labels, *args, batch_transform=batch_transform, **kwargs)

    def mix(real, generator, ratio, seed=0, **kwargs):
        synthetic_seeds[(cells[-1].method, cells[-1].seed)] = seed
        return real_mix(real, generator, ratio, seed=seed, **kwargs)

    monkeypatch.setattr(experiment, "cell_training_set", training_set)
    monkeypatch.setattr(experiment, "train_classifier", train)
    monkeypatch.setattr(experiment, "mix_real_synthetic", mix)
    methods = ("none", "classical", "synthetic", "classical+synthetic")
    grid = BalancedGridConfig(n_per_class=(2,), ratios=(1.0,), methods=methods, regimes=("shipped",),
                              seeds=(0, 1), classifier_steps=2, classifier_batch=8,
                              synthetic_only=False, diversity_per_class=6)
    run_grid(grid, tmp_path / "exp", torch.device("cpu"), data_dir=idx_dir, generator=tiny_generator,
             progress=False, log=lambda m: None, dataset="idx")
    assert len(cells) == len(transforms) == 8
    for cell, transform in zip(cells, transforms):
        assert transform is (random_affine if "classical" in cell.method else None), cell
    assert sorted(synthetic_seeds.values()) == [10_000, 10_000, 10_001, 10_001]  # differ from seed to seed
    assert all(seed == 10_000 + cell_seed for (_, cell_seed), seed in synthetic_seeds.items())


def test_a_rerun_under_another_budget_or_shipped_generator_is_refused(tmp_path, idx_dir, tiny_generator):
    grid = BalancedGridConfig(n_per_class=(2,), ratios=(1.0,), methods=("none", "synthetic"), regimes=("shipped",),
                              seeds=(0,), classifier_steps=2, classifier_batch=8, synthetic_only=False,
                              diversity_per_class=6)
    out = tmp_path / "exp"
    run = dict(progress=False, log=lambda m: None, dataset="idx", data_dir=idx_dir)
    run_grid(grid, out, torch.device("cpu"), generator=tiny_generator, **run)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    for field, value in (("classifier_steps", 3), ("classifier_batch", 16), ("synthetic_only_per_class", 7)):
        recorded = getattr(grid, field)
        with pytest.raises(ConfigError, match=f"{field}={recorded}, not {value}"):
            run_grid(dataclasses.replace(grid, seeds=(0, 1), **{field: value}), out, torch.device("cpu"),
                     generator=tiny_generator, **run)
    other = tmp_path / "other.safetensors"
    torch.manual_seed(1)
    save_generator(other, Generator(read_generator_file(tiny_generator)[0]))
    with pytest.raises(ConfigError, match="another shipped generator"):
        run_grid(dataclasses.replace(grid, seeds=(0, 1)), out, torch.device("cpu"), generator=other, **run)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # nothing written
    run_grid(dataclasses.replace(grid, seeds=(0, 1)), out, torch.device("cpu"), generator=tiny_generator, **run)
    info = json.loads((out / "run.json").read_text())
    assert info["budget"] == {"classifier_steps": 2, "classifier_batch": 8, "synthetic_only_per_class": 5000}
    assert [i["grid"]["seeds"] for i in info["invocations"]] == [[0], [0, 1]]


def test_a_run_killed_after_its_first_cell_still_refuses_another_budget(tmp_path, idx_dir, tiny_generator,
                                                                        monkeypatch):
    import augment.downstream.runner as experiment

    grid = BalancedGridConfig(n_per_class=(2,), ratios=(1.0,), methods=("none", "synthetic"), regimes=("shipped",),
                              seeds=(0,), classifier_steps=2, classifier_batch=8, synthetic_only=False,
                              diversity_per_class=6)
    out = tmp_path / "exp"
    run = dict(progress=False, log=lambda m: None, dataset="idx", data_dir=idx_dir, generator=tiny_generator)
    real_run_cell, calls = experiment.run_cell, []

    def killed_in_second_cell(cell, ctx):
        calls.append(cell)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_run_cell(cell, ctx)

    monkeypatch.setattr(experiment, "run_cell", killed_in_second_cell)
    with pytest.raises(KeyboardInterrupt):
        run_grid(grid, out, torch.device("cpu"), **run)
    monkeypatch.setattr(experiment, "run_cell", real_run_cell)
    assert len(read_results(out / "results.csv")) == 1  # one cell done, the end never reached
    with pytest.raises(ConfigError, match="classifier_steps=2, not 3"):
        run_grid(dataclasses.replace(grid, classifier_steps=3), out, torch.device("cpu"), **run)
    run_grid(grid, out, torch.device("cpu"), **run)  # the same budget finishes the grid
    assert len(read_results(out / "results.csv")) == 2


def test_a_second_invocation_on_the_same_directory_is_refused(tmp_path, idx_dir, tiny_generator):
    from augment.fileio import exclusive_lock

    grid = BalancedGridConfig(n_per_class=(2,), ratios=(1.0,), methods=("none",), seeds=(0,), classifier_steps=2,
                              classifier_batch=8, diversity_per_class=6)
    out = tmp_path / "exp"
    with exclusive_lock(out / ".lock", "held by this test"):  # as if another run were writing
        with pytest.raises(AugmentError, match="in use by another process"):
            run_grid(grid, out, torch.device("cpu"), data_dir=idx_dir, generator=tiny_generator,
                     progress=False, log=lambda m: None, dataset="idx")
    assert not (out / "results.csv").exists()
    run_grid(grid, out, torch.device("cpu"), data_dir=idx_dir, generator=tiny_generator,
             progress=False, log=lambda m: None, dataset="idx")
    assert len(read_results(out / "results.csv")) == 1


def test_a_bad_generator_fails_before_any_cell(tmp_path, idx_dir):
    grid = BalancedGridConfig(n_per_class=(2,), ratios=(1.0,), regimes=("shipped",), seeds=(0,), classifier_steps=2)
    (tmp_path / "bad.safetensors").write_bytes(b"not weights")
    with pytest.raises(AugmentError, match="bad.safetensors"):
        run_grid(grid, tmp_path / "exp", torch.device("cpu"), data_dir=idx_dir, progress=False,
                 log=lambda m: None, dataset="idx", generator=tmp_path / "bad.safetensors")
    assert not (tmp_path / "exp").exists()


def test_a_fair_run_stopped_before_its_first_checkpoint_starts_again(tmp_path, idx_dir):
    grid = BalancedGridConfig(n_per_class=(8,), ratios=(1.0,), methods=("synthetic",), regimes=("fair",),
                              fair_n=(8,), seeds=(0,), classifier_steps=2, classifier_batch=8,
                              synthetic_only=False, fair_gan_steps=1, diversity_per_class=6,
                              fair_critic_augment="translation", fair_widths=(8, 4))
    stopped = tmp_path / "fair" / "n8_seed0"
    (stopped / "samples").mkdir(parents=True)
    (stopped / "config.json").write_text("{}")  # what a run killed before step 1 leaves behind
    log = []
    rows = read_results(run_grid(grid, tmp_path / "exp", torch.device("cpu"), data_dir=idx_dir,
                                 progress=False, log=log.append, dataset="idx", fair_dir=tmp_path / "fair"))
    assert [(r["regime"], r["n_per_class"]) for r in rows] == [("fair", "8")]
    assert (stopped / "generator.safetensors").exists()
    assert any("stopped before its first checkpoint" in m for m in log)
    fair = json.loads((tmp_path / "exp" / "run.json").read_text())["generators"]["fair n=8 seed=0"]
    assert fair["step"] == 1 and (fair["model"]["g_width"], fair["model"]["d_width"]) == (8, 4)
    assert fair["training"]["critic_augment"] == "translation" and fair["training"]["n_per_class"] == 8


def test_a_subset_larger_than_the_data_is_refused_before_anything_is_written(tmp_path, idx_dir, tiny_generator):
    grid = BalancedGridConfig(n_per_class=(2, 9), ratios=(1.0,), regimes=("shipped",), seeds=(0,), classifier_steps=2)
    with pytest.raises(DataError, match="fewer than n_per_class=9"):
        run_grid(grid, tmp_path / "exp", torch.device("cpu"), data_dir=idx_dir, generator=tiny_generator,
                 progress=False, log=lambda m: None, dataset="idx")
    assert not (tmp_path / "exp").exists()


def test_a_fair_run_with_another_critic_augment_is_refused_before_any_cell(tmp_path, idx_dir, tiny_generator):
    run = tmp_path / "fair" / "n2_seed0"
    run.mkdir(parents=True)
    shutil.copyfile(tiny_generator, run / "generator.safetensors")
    (run / "config.json").write_text(json.dumps({"critic_augment": "translation,cutout"}))
    grid = BalancedGridConfig(n_per_class=(2,), ratios=(1.0,), regimes=("fair",), fair_n=(2,), seeds=(0,),
                              classifier_steps=2, classifier_batch=8, diversity_per_class=6)
    with pytest.raises(ConfigError, match="critic_augment='translation,cutout'"):
        run_grid(grid, tmp_path / "exp", torch.device("cpu"), data_dir=idx_dir, progress=False,
                 log=lambda m: None, dataset="idx", fair_dir=tmp_path / "fair")
    assert not (tmp_path / "exp").exists()
    rows = read_results(run_grid(dataclasses.replace(grid, methods=("synthetic",), synthetic_only=False,
                                                     fair_critic_augment="translation,cutout"),
                                 tmp_path / "exp", torch.device("cpu"), data_dir=idx_dir, progress=False,
                                 log=lambda m: None, dataset="idx", fair_dir=tmp_path / "fair"))
    assert [(r["regime"], r["method"]) for r in rows] == [("fair", "synthetic")]


class CountingDataset(torch.utils.data.Dataset):
    """Wraps a dataset and records every index fetched through ``__getitems__``."""

    def __init__(self, dataset):
        self.dataset, self.fetched = dataset, []

    def __len__(self):
        return len(self.dataset)

    def __getitems__(self, indices):
        self.fetched += list(indices)
        return self.dataset.__getitems__(indices)


def test_on_demand_images_are_the_materialized_ones_made_once_and_only_when_drawn(idx_dir, generator):
    from augment.data.real import RealMNIST
    from augment.downstream.on_demand import OnDemandImages, materialize
    from augment.synthetic.mixing import mix_real_synthetic

    real = RealMNIST(idx_dir, train=True, device="cpu", subset=SubsetSpec(n_per_class=3), seed=0, dataset="idx")
    mixed = mix_real_synthetic(real, generator, 8.0, seed=5, device="cpu")
    images, _ = materialize(mixed, batch_size=7)
    counting = CountingDataset(mixed)
    source = OnDemandImages(counting, "cpu")
    assert source.shape == images.shape and len(source) == len(images) == 30 * 9
    g = torch.Generator().manual_seed(0)
    drawn = set()
    for _ in range(6):
        idx = torch.randint(0, len(images), (16,), generator=g)
        assert torch.equal(source[idx], images[idx])  # bitwise, real and synthetic items alike
        drawn |= set(idx.tolist())
    assert sorted(counting.fetched) == sorted(drawn | {0})  # each drawn item made exactly once
    assert source.count_made == len(drawn | {0}) < len(images)


def test_a_classifier_trained_on_demand_equals_one_trained_on_materialized_images(idx_dir, generator):
    from augment.data.real import RealMNIST
    from augment.downstream.on_demand import OnDemandImages, materialize
    from augment.evaluation.classifier import ClassifierTrainConfig, train_classifier
    from augment.synthetic.mixing import dataset_targets, mix_real_synthetic

    real = RealMNIST(idx_dir, train=True, device="cpu", subset=SubsetSpec(n_per_class=2), seed=1, dataset="idx")
    mixed = mix_real_synthetic(real, generator, 4.0, seed=3, device="cpu")
    images, labels = materialize(mixed)
    assert torch.equal(labels, dataset_targets(mixed))
    budget = ClassifierTrainConfig(steps=4, batch_size=8, seed=2, max_shift=0)
    eager, _ = train_classifier(images, labels, train=budget, device="cpu")
    lazy, _ = train_classifier(OnDemandImages(mixed, "cpu"), labels, train=budget, device="cpu")
    for (name, a), (_, b) in zip(eager.state_dict().items(), lazy.state_dict().items()):
        assert torch.equal(a, b), name


def test_on_demand_images_of_a_dataset_without_batched_fetch(generator):
    from augment.downstream.on_demand import OnDemandImages
    from augment.synthetic.dataset import SyntheticMNIST

    ds = SyntheticMNIST(generator, num_samples=12, seed=4)
    items = [ds[i] for i in range(12)]  # a plain list: no __getitems__
    idx = torch.tensor([5, 0, 5, 11])
    assert torch.equal(OnDemandImages(items, "cpu")[idx], torch.stack([items[i][0] for i in idx.tolist()]))


def test_on_demand_images_of_an_empty_dataset_are_refused():
    from augment.downstream.on_demand import OnDemandImages

    with pytest.raises(ConfigError, match="empty"):
        OnDemandImages([], "cpu")


@pytest.mark.parametrize("step, refused", [(3, True), (7, False)])
def test_a_fair_run_short_of_the_grids_steps_is_refused_one_past_them_is_used(tmp_path, idx_dir,
                                                                              tiny_model_config, step, refused):
    run = tmp_path / "fair" / "n2_seed0"
    run.mkdir(parents=True)
    save_generator(run / "generator.safetensors", Generator(tiny_model_config), {"step": step})
    (run / "config.json").write_text(json.dumps({"critic_augment": "none", "max_steps": 100, "max_minutes": 1}))
    grid = BalancedGridConfig(n_per_class=(2,), ratios=(1.0,), methods=("synthetic",), regimes=("fair",),
                              fair_n=(2,), seeds=(0,), classifier_steps=2, classifier_batch=8, synthetic_only=False,
                              fair_gan_steps=5, diversity_per_class=6)
    go = lambda: run_grid(grid, tmp_path / "exp", torch.device("cpu"), data_dir=idx_dir,  # noqa: E731
                          progress=False, log=lambda m: None, dataset="idx", fair_dir=tmp_path / "fair")
    if refused:  # a time limit ended it before the grid's 5 steps: its rows would claim 5
        with pytest.raises(ConfigError, match="stopped at step 3 of the 5 the grid asks for; train it again"):
            go()
        assert not (tmp_path / "exp").exists()
    else:  # past the grid's steps, though short of its own config's: used as it is
        assert [r["regime"] for r in read_results(go())] == ["fair"]
