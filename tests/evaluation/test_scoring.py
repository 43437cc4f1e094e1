"""Tests for augment.evaluation: sampling, result structure, report directory, CLI, and the
sanity checks of the metrics on real MNIST with the shipped evaluator (skipped without it)."""

import json
import math
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from torch import nn

from augment.checkpoint import save_generator
from augment.config import ModelConfig
from augment.data.idx import encode_idx
from augment.errors import AugmentError
from augment.evaluation import metrics, report
from augment.evaluation import scoring as ev
from augment.evaluation.classifier import ClassifierConfig, ClassifierTrainConfig, extract_features, train_classifier
from augment.evaluation.classifier_files import save_classifier
from augment.gan.models import Generator
from augment.images import to_model_images
from tests.conftest import REAL_MNIST, bar_digits

TINY_MODEL = ModelConfig(z_dim=8, embed_dim=4, g_width=8, d_width=8)
TINY_CLASSIFIER = ClassifierConfig(widths=(4, 8), feature_dim=16)
MNIST_DIR = REAL_MNIST  # wherever real MNIST is ($AUGMENT_DATA, the fetch cache, beside the checkout), or None
IDX_NAMES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
             "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    """IDX directory: 12 train and 10 test bar digits per class."""
    directory = tmp_path_factory.mktemp("idx")
    for split, n, seed in (("train", 12, 0), ("test", 10, 1)):
        images, labels = bar_digits(10 * n, seed)
        (directory / IDX_NAMES[split][0]).write_bytes(encode_idx(images))
        (directory / IDX_NAMES[split][1]).write_bytes(encode_idx(labels.to(torch.uint8)))
    return directory


@pytest.fixture(scope="module")
def tiny_classifier(tiny_data):
    images, labels = bar_digits(120, 0)
    model, _ = train_classifier(images, labels, TINY_CLASSIFIER,
                                ClassifierTrainConfig(steps=30, batch_size=32, lr=1e-2, max_shift=0))
    return model


@pytest.fixture(scope="module")
def tiny_reference(tiny_classifier, tiny_data):
    return ev.load_reference(tiny_classifier, tiny_data, dataset="idx")


def tiny_generator(seed: int = 0) -> Generator:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return Generator(TINY_MODEL)


# ---------------------------------------------------------------------------- sampling


def test_sample_generator_is_deterministic_and_class_major():
    generator = tiny_generator().train()
    images, labels = ev.sample_generator(generator, 7, seed=3, batch_size=500)
    small_batches, same_labels = ev.sample_generator(generator, 7, seed=3, batch_size=4)
    assert generator.training  # mode restored
    assert images.shape == (70, 1, 32, 32) and labels.tolist() == sum([[c] * 7 for c in range(10)], [])
    assert torch.allclose(images, small_batches, atol=1e-6) and torch.equal(labels, same_labels)
    other, _ = ev.sample_generator(generator, 7, seed=4)
    assert not torch.allclose(images, other)
    assert float(images.abs().max()) <= 1.0


def test_sample_generator_rejects_nonsense():
    with pytest.raises(AugmentError):
        ev.sample_generator(tiny_generator(), 0)


# --------------------------------------------------------------------------- structure


def check_result(result: dict, count: int, cas: bool = False) -> None:
    assert result["count"] == count
    columns = set(report.PER_CLASS_COLUMNS) - (set() if cas else {"cas"})
    assert set(result["per_class"]) == columns
    assert all(len(values) == 10 for values in result["per_class"].values())
    assert set(result["overall"]) == set(report.SUMMARY_COLUMNS) - (set() if cas else {"cas"})
    matrix = torch.tensor(result["confusion_matrix"])
    assert matrix.shape == (10, 10) and int(matrix.sum()) == count
    for key in ("agreement", "precision", "recall", "coverage"):
        assert 0.0 <= result["overall"][key] <= 1.0
    assert result["overall"]["frechet"] >= 0


def test_per_class_prdc_compares_each_class_with_its_own_real_images(tiny_classifier, tiny_reference):
    """Every "sample" is one real test image of class 3: for class 3 it lies on the real data
    (precision 1); identical samples span no volume, so no real image falls inside their k-NN
    balls (recall 0 in every class). Swapping real and fake anywhere breaks both."""
    three = tiny_reference.images[tiny_reference.labels == 3][:1]
    images, labels = three.repeat(40, 1, 1, 1), torch.arange(10).repeat_interleave(4)
    result = ev.evaluate_samples(images, labels, tiny_classifier, tiny_reference, k=2, seed=0)
    per_class = result["per_class"]
    assert per_class["recall"] == [0.0] * 10
    assert per_class["precision"][3] == 1.0 and per_class["coverage"][3] > 0  # it is a class-3 test image
    assert per_class["agreement"][3] == 1.0 and per_class["agreement"][0] == 0.0


def test_evaluate_generator_and_baseline(tiny_classifier, tiny_reference):
    state = torch.get_rng_state()
    result = ev.evaluate_generator(tiny_generator(), n_per_class=8, seed=0,
                                   classifier=tiny_classifier, reference=tiny_reference)
    check_result(result, 80)
    again = ev.evaluate_generator(tiny_generator(), n_per_class=8, seed=0,
                                  classifier=tiny_classifier, reference=tiny_reference)
    assert again["overall"] == result["overall"]
    baseline = ev.evaluate_real_baseline(n_per_class=8, classifier=tiny_classifier,
                                         reference=tiny_reference, cas=True, cas_steps=3)
    check_result(baseline, 80, cas=True)
    assert baseline["overall"]["agreement"] > result["overall"]["agreement"]
    assert torch.equal(torch.get_rng_state(), state)


def test_evaluate_generator_checks_classes(tiny_classifier, tiny_reference):
    with torch.random.fork_rng(devices=[]):
        five = Generator(ModelConfig(num_classes=5, z_dim=8, embed_dim=4, g_width=8, d_width=8))
    with pytest.raises(AugmentError, match="5 classes"):
        ev.evaluate_generator(five, 8, classifier=tiny_classifier, reference=tiny_reference)


def test_baseline_needs_enough_real_images(tiny_classifier, tiny_reference):
    with pytest.raises(AugmentError, match="fewer than n_per_class"):
        ev.evaluate_real_baseline(n_per_class=50, classifier=tiny_classifier,
                                  reference=tiny_reference)


# ------------------------------------------------------------------------------ report


@pytest.fixture
def files(tmp_path, tiny_classifier):
    generator_path = tmp_path / "g.safetensors"
    save_generator(generator_path, tiny_generator())
    classifier_path = tmp_path / "c.safetensors"
    save_classifier(classifier_path, tiny_classifier)
    return generator_path, classifier_path


def run(files, tiny_data, out_dir, **kwargs):
    generator_path, classifier_path = files
    return ev.run_evaluation(generator_path, out_dir, n_per_class=6, classifier_path=classifier_path,
                             data_dir=tiny_data, dataset="idx", **kwargs)


def strict_json(path: Path) -> dict:
    def refuse(name):
        raise ValueError(f"non-standard JSON constant {name}")

    return json.loads(path.read_text(), parse_constant=refuse)


def test_run_evaluation_writes_a_complete_report(files, tiny_data, tmp_path):
    out = tmp_path / "report"
    report = run(files, tiny_data, out)
    assert sorted(p.name for p in out.iterdir()) == [
        "confusion.png", "copies.png", "per_class.png", "report.md", "results.json", "samples.png"]
    saved = strict_json(out / "results.json")
    assert saved["format"] == ev.REPORT_FORMAT
    memorization = saved["memorization"]
    assert {"ct", "authenticity", "near_duplicate_fraction", "verdict", "features", "per_class"} <= set(memorization)
    assert memorization["training"] == {"subset": "all", "seed": 0, "images": 120, "feature_images": 60}
    assert memorization["held_out"]["images"] == 100 and "test split" in memorization["held_out"]["split"]
    assert len(memorization["per_class"]["authenticity"]) == 10 and "## Memorization" in (out / "report.md").read_text()
    assert set(saved["results"]) == {ev.GENERATOR, ev.REAL_BASELINE}
    assert saved["settings"]["n_per_class"] == 6 and saved["data"]["test_images"] == 100
    assert saved["results"][ev.GENERATOR]["overall"]["frechet"] == pytest.approx(
        report["results"][ev.GENERATOR]["overall"]["frechet"])
    text = (out / "report.md").read_text()
    assert "| set | agreement | frechet |" in text and ev.REAL_BASELINE in text
    assert "![Samples (row = class)](samples.png)" in text
    from PIL import Image

    assert Image.open(out / "samples.png").size == (6 * 34 + 2, 10 * 34 + 2)  # 6 a class
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp dirs left


def test_out_dir_rules(files, tiny_data, tmp_path):
    out = tmp_path / "report"
    out.mkdir()
    run(files, tiny_data, out)  # an empty directory is fine
    first = (out / "results.json").read_text()
    with pytest.raises(AugmentError, match="not empty"):
        run(files, tiny_data, out)
    assert (out / "results.json").read_text() == first
    run(files, tiny_data, out, overwrite=True, seed=1)
    assert json.loads((out / "results.json").read_text())["settings"]["seed"] == 1
    other = tmp_path / "other"
    other.mkdir()
    (other / "keep.txt").write_text("mine")
    with pytest.raises(AugmentError, match="not an evaluation report"):
        run(files, tiny_data, other, overwrite=True)
    assert (other / "keep.txt").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_failed_report_leaves_nothing(files, tiny_data, tmp_path, monkeypatch):
    def broken(report, path):
        raise RuntimeError("plot failed")

    monkeypatch.setattr(report, "_plot_confusion", broken)
    out = tmp_path / "report"
    with pytest.raises(RuntimeError, match="plot failed"):
        run(files, tiny_data, out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.safetensors", "g.safetensors"]


def test_evaluate_command(files, tiny_data, tmp_path):
    from augment.cli.evaluate import evaluate

    out = tmp_path / "cli-report"
    generator_path, classifier_path = files
    args = [str(generator_path), "-o", str(out), "--n-per-class", "6", "--classifier",
            str(classifier_path), "--data-dir", str(tiny_data), "--dataset", "idx", "--quiet"]
    result = CliRunner().invoke(evaluate, args)
    assert result.exit_code == 0, result.output
    assert ev.GENERATOR in result.output and ev.REAL_BASELINE in result.output
    assert "per class" in result.output and (out / "report.md").is_file()
    assert "memorization: " in result.output
    assert str(out) in result.output.strip().splitlines()[-1]


# ------------------------------------------------- sanity checks on real MNIST (optional)


class StandIn(nn.Module):
    """A stand-in "generator" with the Generator call signature, built from real images.

    mode 'real': an image of the asked class; 'shifted': an image of class (c + 1) mod 10
    (wrong labels); 'constant': one fixed image whatever is asked; 'noise': uniform-looking
    noise. The picked image is a function of z, so seeded sampling stays deterministic."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, mode: str):
        super().__init__()
        self.config = ModelConfig(z_dim=8, embed_dim=4, g_width=8, d_width=8)
        self.mode = mode
        order = torch.argsort(labels, stable=True)
        counts = torch.bincount(labels, minlength=10)
        self.register_buffer("bank", images[order])
        self.register_buffer("counts", counts)
        self.register_buffer("starts", torch.cumsum(counts, 0) - counts)
        self.register_buffer("mix", torch.randn(8, 32 * 32, generator=torch.Generator().manual_seed(0)))

    def forward(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if self.mode == "noise":
            return torch.erf(z @ self.mix).view(-1, 1, 32, 32)
        if self.mode == "constant":
            return self.bank[:1].expand(len(z), -1, -1, -1)
        if self.mode == "shifted":
            labels = (labels + 1) % 10
        uniform = 0.5 * (1 + torch.erf(z[:, 0] / math.sqrt(2)))
        index = self.starts[labels] + (uniform * self.counts[labels]).long().clamp(
            max=self.counts[labels] - 1)
        return self.bank[index]


@pytest.fixture(scope="module")
def mnist_test():
    """Real MNIST test seen by the shipped evaluator: a namespace with ``classifier``,
    ``labels``, ``features`` (all 10,000), a ``reference`` built from every 5th image (from
    index 1) and, disjoint from it, ``bank_images``/``bank_labels`` (every 5th from index 0)
    for the stand-in generators; fifths, not halves, keep the k-NN metrics fast."""
    if MNIST_DIR is None:
        pytest.skip("real MNIST not available")
    from types import SimpleNamespace

    from augment.data.mnist import load_split
    from augment.evaluation.classifier_files import default_classifier

    classifier = default_classifier()
    images_u8, labels = load_split(MNIST_DIR, "test")
    images = to_model_images(images_u8)
    feats, preds = ev.features_and_predictions(classifier, images)
    ref, bank = slice(1, None, 5), slice(0, None, 5)
    reference = ev.RealReference(images[ref], labels[ref], feats[ref], preds[ref], 10,
                                 MNIST_DIR, "mnist")
    return SimpleNamespace(classifier=classifier, labels=labels, features=feats,
                           reference=reference, bank_images=images[bank],
                           bank_labels=labels[bank])


def evaluate_stand_in(mnist_test, mode):
    generator = StandIn(mnist_test.bank_images, mnist_test.bank_labels, mode)
    return ev.evaluate_generator(generator, n_per_class=40, seed=0,
                                 classifier=mnist_test.classifier,
                                 reference=mnist_test.reference, audit=False)["overall"]


def test_a_set_against_itself_has_zero_distance(mnist_test):
    feats = mnist_test.reference.features
    assert metrics.frechet_distance(feats, feats) < 1e-6
    same = metrics.prdc(feats, feats, k=5)
    assert same["precision"] == same["recall"] == same["coverage"] == 1.0


def test_two_disjoint_halves_of_real_test_are_close(mnist_test):
    feats, labels = mnist_test.features, mnist_test.labels
    noise = torch.rand(1000, 1, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1
    noise_distance = metrics.frechet_distance(extract_features(mnist_test.classifier, noise),
                                              feats)
    even, odd = slice(0, None, 2), slice(1, None, 2)
    assert metrics.frechet_distance(feats[even], feats[odd]) < 0.002 * noise_distance
    per_class = metrics.per_class_frechet(feats[even], labels[even], feats[odd], labels[odd], 10)
    assert max(per_class) < 0.01 * noise_distance


def test_degenerate_generators_are_caught(mnist_test):
    good = evaluate_stand_in(mnist_test, "real")
    assert good["agreement"] > 0.97 and good["precision"] > 0.8 and good["recall"] > 0.7
    assert 0.85 < good["diversity"] < 1.15

    constant = evaluate_stand_in(mnist_test, "constant")  # collapse: no variety
    assert constant["diversity"] < 0.01
    assert constant["recall"] < 0.05 and constant["coverage"] < 0.05

    shuffled = evaluate_stand_in(mnist_test, "shifted")  # real digits, wrong classes
    assert shuffled["agreement"] < 0.05
    assert shuffled["class_frechet"] > 20 * good["class_frechet"]
    assert shuffled["frechet"] < 2 * good["frechet"] + 0.5  # blind overall, hence per class

    noise = evaluate_stand_in(mnist_test, "noise")
    assert noise["frechet"] > 100 * good["frechet"]
    assert noise["precision"] < 0.05 and noise["coverage"] < 0.05
