"""augment.evaluation.fit: the shipped evaluator and generator are refused for data that is not
MNIST's, and any evaluator or generator for data of other classes, in one line with the fix,
before anything is written."""

import numpy as np
import pytest
import torch

from augment.checkpoint import save_generator
from augment.config import ModelConfig, TrainConfig
from augment.errors import CheckpointError, ConfigError
from augment.evaluation import scoring
from augment.evaluation.classifier import ClassifierConfig, build_classifier
from augment.evaluation.classifier_files import (
    DEFAULT_WEIGHTS,
    default_classifier,
    load_classifier,
    quality_filter,
    save_classifier,
)
from augment.evaluation.fit import check_evaluator_fits, check_generator_fits, data_signature
from augment.evaluation.monitor import build_monitor, check_monitor_inputs
from augment.gan.models import Generator
from augment.provenance import MNIST, DataSignature
from augment.synthetic.dataset import SamplingOptions, SyntheticMNIST
from augment.synthetic.shipped import GENERATOR_PATH
from tests.conftest import bar_digits

NAMES = ("t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "boot")
TINY = ModelConfig(z_dim=8, embed_dim=4, g_width=8, d_width=8)


@pytest.fixture
def named_npz(tmp_path):
    """A Fashion-like npz: 10 named classes of 28x28 toy images, 12 each (a held-out test split)."""
    images, labels = bar_digits(120)
    path = tmp_path / "fashion.npz"
    np.savez(path, x=images.numpy(), y=labels.numpy().astype(np.int64), class_names=np.array(NAMES))
    return path


def classifier_file(path, names, kind, classes=10):
    """A random classifier file that says it was trained on ``kind`` data of classes ``names``."""
    model = build_classifier(ClassifierConfig(num_classes=classes, widths=(4, 8), feature_dim=16))
    save_classifier(path, model, {"class_names": list(names),
                                  **DataSignature(kind, tuple(names), (28, 28), 1).metadata()})
    return path


def generator_file(path, names=None, kind=None, size=(28, 28), classes=10):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        generator = Generator(ModelConfig(num_classes=classes, z_dim=8, embed_dim=4, g_width=8, d_width=8))
    extra = {} if names is None else {"class_names": list(names), **DataSignature(kind, tuple(names), size).metadata()}
    save_generator(path, generator, extra)
    return path


def test_the_shipped_evaluator_is_refused_for_an_idx_pair_before_anything_is_written(idx_dir, tmp_path):
    """Fashion-MNIST as an IDX pair has ten classes "0".."9" at 28x28: only the kind tells."""
    out = tmp_path / "report"
    for dataset in ("idx", None):  # given, or recognised from the path
        with pytest.raises(ConfigError) as e:
            scoring.run_evaluation(GENERATOR_PATH, out, n_per_class=6, data_dir=idx_dir, dataset=dataset)
        message = str(e.value)
        assert message.startswith("the shipped evaluator does not fit idx data (10 classes 0..9, 28x28)")
        assert f"augment train-classifier --data-dir {idx_dir} --dataset idx -o FILE" in message
        assert message.endswith("(--classifier FILE)") and "\n" not in message
        assert not out.exists()
    with pytest.raises(ConfigError, match="the shipped evaluator does not fit idx data"):
        scoring.run_evaluation(None, out, samples=idx_dir, data_dir=idx_dir, dataset="idx")
    with pytest.raises(ConfigError, match=r"the shipped evaluator does not fit.*\(classifier=FILE\)$"):
        scoring.evaluate_real_baseline(6, data_dir=idx_dir, dataset="idx")


def test_the_shipped_generator_is_refused_for_data_not_mnists_even_with_a_fitting_classifier(named_npz, tmp_path):
    judge = classifier_file(tmp_path / "judge.safetensors", NAMES, "npz")
    with pytest.raises(ConfigError) as e:
        scoring.run_evaluation(GENERATOR_PATH, tmp_path / "r", n_per_class=6, classifier_path=judge,
                               data_dir=named_npz, dataset="npz")
    assert str(e.value).startswith("the shipped generator does not fit npz data (10 classes t-shirt, trouser, "
                                   "pullover, ..., 28x28): it fits only MNIST's digits")
    assert f"augment train --data-dir {named_npz} --dataset npz" in str(e.value)
    assert not (tmp_path / "r").exists()


def test_any_evaluator_or_generator_needs_the_datas_classes(named_npz, idx_dir, tmp_path):
    letters = tuple("ABCDEFGHIJ")
    judge = load_classifier(classifier_file(tmp_path / "letters.safetensors", letters, "folder"))
    data = data_signature(named_npz)  # kind recognised from the path
    assert data == DataSignature("npz", NAMES, (28, 28), 1)
    with pytest.raises(ConfigError, match="its class 0 is 'A', not 't-shirt'.*--classifier FILE"):
        check_evaluator_fits(judge, data, "the classifier letters.safetensors")
    check_evaluator_fits(judge, data_signature(idx_dir, "idx"))  # an IDX pair's numbers name nothing: it fits
    five = load_classifier(classifier_file(tmp_path / "five.safetensors", letters[:5], "folder", classes=5))
    with pytest.raises(ConfigError, match="it has 5 classes"):
        check_evaluator_fits(five, data)
    with pytest.raises(ConfigError, match="it has 5 classes"):
        check_generator_fits(generator_file(tmp_path / "g5.safetensors", classes=5), data)
    letters_generator = generator_file(tmp_path / "gl.safetensors", letters, "folder")
    with pytest.raises(ConfigError, match=rf"the generator {letters_generator} does not fit .*class 0 is 'A'"):
        check_generator_fits(letters_generator, data)
    check_generator_fits(generator_file(tmp_path / "gf.safetensors", NAMES, "npz"), data)
    check_generator_fits(Generator(TINY), data)  # a module: its classes counted
    with pytest.raises(ConfigError, match="the shipped generator does not fit"):
        check_generator_fits(None, data)


def test_the_shipped_files_are_known_as_mnists_and_others_by_what_they_record(tmp_path):
    assert default_classifier().trained_on == MNIST
    assert load_classifier(DEFAULT_WEIGHTS).trained_on == MNIST  # passed by path: known by its SHA-256
    legacy = tmp_path / "legacy.safetensors"
    save_classifier(legacy, build_classifier(ClassifierConfig(widths=(4,))))
    assert load_classifier(legacy).trained_on == DataSignature(None, tuple(str(c) for c in range(10)))
    assert quality_filter(0.5).trained_on == MNIST
    bad = tmp_path / "bad.safetensors"
    save_classifier(bad, build_classifier(ClassifierConfig(widths=(4,))), {"source_size": [28, 0]})
    with pytest.raises(CheckpointError, match=r"bad source_size \[28, 0\]"):
        load_classifier(bad)


def test_the_quality_filters_judge_must_fit_the_generators_training_data(tmp_path):
    fashion = generator_file(tmp_path / "fashion.safetensors", NAMES, "npz")
    with pytest.raises(ConfigError, match="quality filter's classifier .* does not fit the generator's training data, "
                                          "npz data"):
        SyntheticMNIST(fashion, 8, sampling=SamplingOptions(quality=quality_filter(0.5)))
    digits = generator_file(tmp_path / "digits.safetensors", tuple(str(c) for c in range(10)), "idx")
    with pytest.raises(ConfigError, match="fits only MNIST's digits"):
        SyntheticMNIST(digits, 8, sampling=SamplingOptions(quality=quality_filter(0.5)))
    judge = classifier_file(tmp_path / "judge.safetensors", NAMES, "npz")
    assert len(SyntheticMNIST(fashion, 8, sampling=SamplingOptions(quality=quality_filter(0.5, judge)))) == 8
    assert len(SyntheticMNIST(generator_file(tmp_path / "old.safetensors"), 8,  # a file that does not say: counted
                              sampling=SamplingOptions(quality=quality_filter(0.5)))) == 8


def test_the_in_training_judge_must_fit_the_runs_data(idx_dir, tmp_path):
    five = classifier_file(tmp_path / "five.safetensors", tuple("ABCDE"), "folder", classes=5)
    cfg = TrainConfig(model=TINY, data_dir=str(idx_dir), dataset="idx", eval_every=5, eval_classifier=str(five))
    for check in (check_monitor_inputs, build_monitor):
        with pytest.raises(ConfigError, match=f"the classifier {five} does not fit .*--eval-classifier FILE"):
            check(cfg)
