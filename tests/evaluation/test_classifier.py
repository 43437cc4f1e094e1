"""Tests for augment.evaluation.classifier: shapes, seeded training, shifts, weight files, shipped weights."""

import json
import shutil

import pytest
import torch
from click.testing import CliRunner

from augment.checkpoint import save_generator
from augment.config import ModelConfig
from augment.data.idx import encode_idx
from augment.errors import CheckpointError, ConfigError, DataError
from augment.evaluation import classifier as clf
from augment.evaluation import classifier_files
from augment.fileio import sha256_file
from augment.gan.models import Generator
from augment.manifests import read_manifest, write_manifest
from augment.provenance import DataSignature
from tests.conftest import REAL_MNIST, bar_digits

TINY = clf.ClassifierConfig(widths=(4, 8), feature_dim=16)
MNIST_DIR = REAL_MNIST  # wherever real MNIST is ($AUGMENT_DATA, the fetch cache, beside the checkout), or None


def test_forward_shapes_and_features():
    model = clf.build_classifier(TINY)
    x = torch.rand(5, 1, 32, 32) * 2 - 1
    assert model(x).shape == (5, 10)
    feats = model.features(x)
    assert feats.shape == (5, 16) and bool((feats >= 0).all())
    default = clf.Classifier()
    assert default.features(x).shape == (5, default.config.feature_dim)


def test_config_validation():
    with pytest.raises(ConfigError):
        clf.ClassifierConfig(widths=())
    with pytest.raises(ConfigError):
        clf.ClassifierConfig(num_classes=1)
    with pytest.raises(ConfigError):
        clf.ClassifierTrainConfig(batch_size=1)
    with pytest.raises(ConfigError):
        clf.ClassifierTrainConfig(max_shift=20)
    assert clf.ClassifierConfig(widths=[8, 16]).widths == (8, 16)  # JSON lists become tuples


def test_build_is_seeded_and_leaves_global_rng_alone():
    state = torch.get_rng_state()
    a, b, c = (clf.build_classifier(TINY, seed=s) for s in (3, 3, 4))
    assert torch.equal(torch.get_rng_state(), state)
    for (name, pa), pb, pc in zip(a.state_dict().items(), b.state_dict().values(),
                                  c.state_dict().values()):
        assert torch.equal(pa, pb), name
    assert not torch.equal(a.conv[0].weight, c.conv[0].weight)


def test_random_shift_moves_each_image_within_bounds():
    images = torch.full((64, 1, 32, 32), -1.0)
    images[:, 0, 16, 16] = 1.0
    out = clf.random_shift(images, 2, torch.Generator().manual_seed(0))
    assert out.shape == images.shape
    again = clf.random_shift(images, 2, torch.Generator().manual_seed(0))
    assert torch.equal(out, again)
    offsets = set()
    for img in out[:, 0]:
        (row, col), = (img == 1.0).nonzero().tolist()  # exactly one bright pixel survives
        assert abs(row - 16) <= 2 and abs(col - 16) <= 2
        offsets.add((row, col))
        assert int((img == -1.0).sum()) == 32 * 32 - 1  # filled with background
    assert len(offsets) > 5
    assert torch.equal(clf.random_shift(images, 0, torch.Generator()), images)


def test_training_learns_and_is_deterministic():
    images, labels = bar_digits(120, seed=0)
    test_images, test_labels = bar_digits(50, seed=1)
    train = clf.ClassifierTrainConfig(steps=30, batch_size=32, lr=1e-2, max_shift=0, seed=5)
    state = torch.get_rng_state()
    model, history = clf.train_classifier(images, labels, TINY, train, device="cpu",
                                          eval_images=test_images, eval_labels=test_labels)
    assert torch.equal(torch.get_rng_state(), state)
    assert not model.training
    assert history[-1]["step"] == 30
    assert {"step", "epoch", "loss", "train_accuracy", "eval_accuracy", "seconds"} <= set(history[-1])
    assert clf.evaluate_accuracy(model, test_images, test_labels) >= 0.9
    again, _ = clf.train_classifier(images, labels, TINY, train, device="cpu")  # no eval set
    for a, b in zip(model.state_dict().values(), again.state_dict().values()):
        assert torch.equal(a, b)


def test_lr_factor_warms_up_then_decays():
    factors = [clf.lr_factor(step, 100) for step in range(100)]
    assert factors[0] == pytest.approx(0.04) and max(factors) == pytest.approx(1.0)
    assert factors.index(max(factors)) == 25 and factors[-1] < 0.01
    assert clf.lr_factor(0, 1) == pytest.approx(0.04)  # a one-step run is fine


def test_training_by_epochs_and_float_inputs():
    images, labels = bar_digits(40)
    model_images = clf.as_model_images(images, "cpu")
    assert model_images.shape == (40, 1, 32, 32) and float(model_images.min()) >= -1
    _, history = clf.train_classifier(model_images, labels, TINY,
                                      clf.ClassifierTrainConfig(epochs=2, batch_size=16))
    assert [row["step"] for row in history] == [2, 4]  # 40 // 16 = 2 batches a pass


def test_training_rejects_bad_input():
    images, labels = bar_digits(20)
    with pytest.raises(DataError, match="outside"):
        clf.train_classifier(images, labels + 5, TINY, clf.ClassifierTrainConfig(steps=1))
    with pytest.raises(DataError, match="labels of shape"):
        clf.train_classifier(images, labels[:-1], TINY, clf.ClassifierTrainConfig(steps=1))
    with pytest.raises(DataError, match="uint8"):
        clf.train_classifier(torch.zeros(20, 3, 3), labels, TINY, clf.ClassifierTrainConfig(steps=1))


def test_features_and_predictions_batching_and_mode():
    model = clf.build_classifier(TINY).train()
    images, _ = bar_digits(30)
    feats, preds = clf.features_and_predictions(model, images, batch_size=7)
    assert model.training  # mode restored
    whole = clf.extract_features(model, images, batch_size=1000)
    assert feats.shape == (30, 16) and preds.shape == (30,) and preds.dtype == torch.int64
    assert torch.allclose(feats, whole, atol=1e-5)
    assert torch.equal(clf.predict(model, images), preds)


def test_save_load_roundtrip_and_checks(tmp_path):
    model = clf.build_classifier(TINY, seed=1).eval()
    path = tmp_path / "c.safetensors"
    digest = classifier_files.save_classifier(path, model, {"note": "x"})
    assert digest == sha256_file(path)
    loaded = classifier_files.load_classifier(path, sha256=digest)
    assert loaded.config == TINY and not loaded.training
    x = torch.rand(3, 1, 32, 32) * 2 - 1
    assert torch.equal(loaded(x), model(x))
    with pytest.raises(CheckpointError, match="SHA-256"):
        classifier_files.load_classifier(path, sha256="0" * 64)
    gen_path = tmp_path / "g.safetensors"
    save_generator(gen_path, Generator(ModelConfig(z_dim=8, embed_dim=4, g_width=8, d_width=8)))
    with pytest.raises(CheckpointError, match="not an augment classifier"):
        classifier_files.load_classifier(gen_path)
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a weights file at all")
    with pytest.raises(CheckpointError, match="not a readable"):
        classifier_files.load_classifier(junk)
    with pytest.raises(CheckpointError, match="not found"):
        classifier_files.load_classifier(tmp_path / "missing.safetensors")


def test_manifest_roundtrip(tmp_path):
    path = tmp_path / "c.safetensors"
    classifier_files.save_classifier(path, clf.build_classifier(TINY))
    manifest = write_manifest(path, {"test_accuracy": 0.5})
    assert manifest == tmp_path / "c.json"
    body = json.loads(manifest.read_text())
    assert body["sha256"] == sha256_file(path) and body["file"] == "c.safetensors"
    model, info = classifier_files.load_verified_classifier(path)
    assert info["test_accuracy"] == 0.5 and model.config == TINY
    manifest.write_text("{broken")
    with pytest.raises(CheckpointError, match="unreadable"):
        classifier_files.load_verified_classifier(path)


def test_shipped_classifier_loads_and_corruption_is_caught(tmp_path):
    info = read_manifest(classifier_files.DEFAULT_MANIFEST)
    assert info["sha256"] == sha256_file(classifier_files.DEFAULT_WEIGHTS)
    assert info["test_accuracy"] >= 0.992
    model = classifier_files.default_classifier()
    assert model.config.num_classes == 10 and not model.training
    bad = tmp_path / "classifier.safetensors"
    shutil.copy(classifier_files.DEFAULT_WEIGHTS, bad)
    shutil.copy(classifier_files.DEFAULT_MANIFEST, tmp_path / "classifier.json")
    raw = bytearray(bad.read_bytes())
    raw[-100] ^= 0xFF  # one flipped byte in the weights
    bad.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError) as excinfo:
        classifier_files.load_verified_classifier(bad)
    message = str(excinfo.value)
    assert "SHA-256" in message and "\n" not in message


@pytest.mark.skipif(MNIST_DIR is None, reason="real MNIST not available")
def test_shipped_classifier_accuracy_on_real_test():
    from augment.data.mnist import load_split

    images, labels = load_split(MNIST_DIR, "test")
    assert clf.evaluate_accuracy(classifier_files.default_classifier(), images, labels) >= 0.992


def test_train_classifier_command(tmp_path):
    from augment.cli.evaluate import train_classifier

    data = tmp_path / "data"
    data.mkdir()
    for split, (img, lbl), seed in (("train", ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"), 0),
                                    ("test", ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"), 1)):
        images, labels = bar_digits(30, seed=seed)
        (data / img).write_bytes(encode_idx(images))
        (data / lbl).write_bytes(encode_idx(labels.to(torch.uint8)))
    out = tmp_path / "weights" / "c.safetensors"
    result = CliRunner().invoke(train_classifier, [
        "-o", str(out), "--data-dir", str(data), "--dataset", "idx", "--steps", "2",
        "--batch-size", "8", "--device", "cpu", "--quiet"])
    assert result.exit_code == 0, result.output
    assert sha256_file(out) in result.output.strip().splitlines()[-1]
    model, info = classifier_files.load_verified_classifier(out)
    assert info["train_images"] == 30 and info["train_config"]["steps"] == 2
    assert "train-classifier" in info["command"] and 0 <= info["test_accuracy"] <= 1
    assert model.trained_on == DataSignature("idx", tuple(str(c) for c in range(10)), (28, 28), 1)  # in its file


def imbalanced_digits() -> tuple[torch.Tensor, torch.Tensor]:
    """96 toy digits: 80 of class 0, 12 of class 1, 4 of class 2."""
    images, labels = bar_digits(900, seed=3)
    keep = torch.cat([(labels == c).nonzero()[:n] for c, n in ((0, 80), (1, 12), (2, 4))]).flatten()
    return images[keep], labels[keep]


def drawn_classes(sampling: str) -> torch.Tensor:
    """How often each class was drawn in 40 batches of 16 (each drawn image told by its pixels)."""
    images, labels = imbalanced_digits()
    model_images = clf.as_model_images(images, "cpu")
    drawn = []

    def spy(batch, generator):
        match = (batch[:, None] == model_images[None]).flatten(2).all(2)  # (B, N): which training image
        drawn.append(labels[match.float().argmax(1)])
        return batch

    train = clf.ClassifierTrainConfig(steps=40, batch_size=16, max_shift=0, sampling=sampling)
    clf.train_classifier(images, labels, clf.ClassifierConfig(num_classes=3, widths=(4,), feature_dim=8), train,
                         device="cpu", batch_transform=spy)
    return torch.bincount(torch.cat(drawn).long(), minlength=3)


def test_class_balanced_sampling_draws_every_class_equally_often():
    uniform, balanced = drawn_classes("uniform"), drawn_classes("balanced")
    assert uniform[0] > 5 * uniform[2]  # the data's own frequencies: 80 : 12 : 4
    assert balanced.min() > 0.7 * balanced.max(), balanced.tolist()  # about 213 each of 640


def test_the_logit_adjusted_loss_adds_tau_log_prior_to_the_logits(monkeypatch):
    images, labels = imbalanced_digits()
    given, plain = [], []
    real_cross_entropy, real_forward = clf.F.cross_entropy, clf.Classifier.forward

    def cross_entropy(logits, y, **kwargs):
        given.append(logits.detach())
        return real_cross_entropy(logits, y, **kwargs)

    def forward(self, x):
        out = real_forward(self, x)
        plain.append(out.detach())
        return out

    monkeypatch.setattr(clf.F, "cross_entropy", cross_entropy)
    monkeypatch.setattr(clf.Classifier, "forward", forward)
    cfg = clf.ClassifierConfig(num_classes=3, widths=(4,), feature_dim=8)
    clf.train_classifier(images, labels, cfg, clf.ClassifierTrainConfig(steps=3, batch_size=16, max_shift=0,
                                                                        logit_adjust_tau=1.5), device="cpu")
    prior = torch.tensor([80, 12, 4]) / 96
    assert len(given) == len(plain) == 3
    for adjusted, logits in zip(given, plain):
        torch.testing.assert_close(adjusted - logits, (1.5 * prior.log()).expand_as(logits))


def test_long_tail_options_are_checked():
    with pytest.raises(ConfigError, match="sampling"):
        clf.ClassifierTrainConfig(sampling="sqrt")
    with pytest.raises(ConfigError, match="logit_adjust_tau"):
        clf.ClassifierTrainConfig(logit_adjust_tau=-1.0)
