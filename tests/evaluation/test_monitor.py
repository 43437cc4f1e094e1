"""In-training evaluation: the judge a run gets, and the scores a monitor gives."""

import math

import pytest
import torch

from augment.config import ModelConfig, TrainConfig
from augment.evaluation import metrics
from augment.evaluation.classifier import (
    ClassifierConfig,
    ClassifierTrainConfig,
    features_and_predictions,
    train_classifier,
)
from augment.evaluation.classifier_files import save_classifier
from augment.evaluation.monitor import MONITOR_SEED, TrainingMonitor, build_monitor
from augment.evaluation.reference import load_reference
from augment.evaluation.scoring import sample_generator
from augment.gan.models import Generator
from tests.conftest import bar_digits

TINY = ModelConfig(z_dim=8, embed_dim=4, g_width=8, d_width=8)


@pytest.fixture(scope="module")
def judge():
    images, labels = bar_digits(200, 0)
    model, _ = train_classifier(images, labels, ClassifierConfig(widths=(4, 8), feature_dim=16),
                                ClassifierTrainConfig(steps=40, batch_size=32, lr=1e-2, max_shift=0))
    return model


def test_scores_are_in_their_ranges_and_the_same_for_the_same_generator(idx_dir, judge):
    monitor = TrainingMonitor(judge, load_reference(judge, idx_dir, dataset="idx"), per_class=8)
    torch.manual_seed(0)
    G = Generator(TINY)
    first, again = monitor({"live": G}), monitor({"live": G})
    assert first == again  # the same latents every evaluation
    scores = first["live"]
    assert set(scores) == {"agreement", "class_frechet", "coverage"}
    assert 0 <= scores["agreement"] <= 1 and 0 <= scores["coverage"] <= 1 and scores["class_frechet"] >= 0
    assert G.training  # sampled in eval mode, given back in train mode
    images, labels = sample_generator(G, 8, MONITOR_SEED)  # coverage with the real balls made once: prdc's
    feats, _ = features_and_predictions(judge, images)
    assert scores["coverage"] == metrics.prdc(monitor.reference.features, feats, k=5)["coverage"]


def test_the_judge_is_the_given_file_else_one_made_from_the_training_images(tmp_path, idx_dir, judge):
    cfg = TrainConfig(model=TINY, data_dir=str(idx_dir), dataset="idx", eval_every=5, eval_per_class=10)
    said = []
    monitor = build_monitor(cfg, log=said.append, judge_steps=3)
    assert "trained now on the run's training images (3 steps" in said[-1]
    assert monitor.classifier.config.num_classes == 10
    save_classifier(tmp_path / "judge.safetensors", judge)
    given = build_monitor(TrainConfig(**{**cfg.__dict__, "eval_classifier": str(tmp_path / "judge.safetensors")}),
                          log=said.append)
    assert "judged by" in said[-1] and str(tmp_path / "judge.safetensors") in said[-1]
    assert not math.isnan(given({"live": Generator(TINY)})["live"]["agreement"])
    assert build_monitor(TrainConfig(model=TINY, data_dir=str(idx_dir), dataset="idx")) is None  # no eval_every
