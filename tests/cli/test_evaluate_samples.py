"""``augment evaluate --samples``: a set of labelled images judged like a generator (npz, image
folder, IDX, dump; format from the path or the option), its memorization audit, and its bad
input (one error line, nothing written)."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from augment.cli import main
from augment.config import ModelConfig, SubsetSpec
from augment.data.subsets import subset_indices
from augment.data.idx import encode_idx
from augment.evaluation import scoring
from augment.evaluation.classifier import ClassifierConfig, ClassifierTrainConfig, train_classifier
from augment.evaluation.classifier_files import load_classifier, save_classifier
from augment.evaluation.sample_sets import SAMPLE_FORMATS, sample_format
from augment.gan.models import Generator
from augment.synthetic.dump import dump_synthetic
from tests.conftest import bar_digits, write_idx_dir

N_TRAIN, N_TEST = 200, 1000  # toy digits, 10 classes (100 held out a class: the 1% quantile)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """Real toy data (IDX), its evaluator, and sample sets: fresh toy digits as npz, folder and
    IDX; noised copies of the training images (npz); and a dump of a tiny generator."""
    root = tmp_path_factory.mktemp("samples")
    write_idx_dir(root / "real", N_TRAIN, N_TEST)
    images, labels = bar_digits(N_TRAIN, 0)
    model, _ = train_classifier(images, labels, ClassifierConfig(widths=(4, 8), feature_dim=16),
                                ClassifierTrainConfig(steps=30, batch_size=32, lr=1e-2, max_shift=0))
    save_classifier(root / "c.safetensors", model)
    fresh, fresh_labels = bar_digits(200, 7)
    np.savez(root / "fresh.npz", x=fresh.numpy(), y=fresh_labels.numpy(), class_names=np.array([str(c) for c in
                                                                                               range(10)]))
    noise = torch.randint(-2, 3, images.shape, generator=torch.Generator().manual_seed(0))
    copies = (images.long() + noise).clamp(0, 255).to(torch.uint8)
    np.savez(root / "copies.npz", x=copies.numpy(), y=labels.numpy())
    for i, (image, label) in enumerate(zip(fresh, fresh_labels.tolist())):
        (root / "folder" / str(label)).mkdir(parents=True, exist_ok=True)
        Image.fromarray(image.numpy()).save(root / "folder" / str(label) / f"{i}.png")
    (root / "idx").mkdir()
    (root / "idx" / "train-images-idx3-ubyte").write_bytes(encode_idx(fresh))
    (root / "idx" / "train-labels-idx1-ubyte").write_bytes(encode_idx(fresh_labels))
    with torch.random.fork_rng():
        torch.manual_seed(0)
        generator = Generator(ModelConfig(z_dim=8, embed_dim=4, g_width=8, d_width=8))
    dump_synthetic(root / "dump", generator, num_samples=100, formats=("idx", "npz"))
    dump_synthetic(root / "dump_png", generator, num_samples=100, formats=("png",))
    np.savez(root / "wrong_classes.npz", x=fresh.numpy(), y=fresh_labels.numpy(),
             class_names=np.array([f"c{c}" for c in range(10)]))
    np.savez(root / "empty.npz", x=np.zeros((0, 28, 28), np.uint8), y=np.zeros((0,), np.int64))
    big = torch.nn.functional.interpolate(fresh[:, None].float(), size=(32, 32)).round().to(torch.uint8)[:, 0]
    np.savez(root / "big.npz", x=big.numpy(), y=fresh_labels.numpy())
    return root


def evaluate(workspace: Path, out: str, *extra: str):
    args = ["evaluate", "-o", str(workspace / out), "--classifier", str(workspace / "c.safetensors"),
            "--data-dir", str(workspace / "real"), "--dataset", "idx", "-q", *extra]
    return CliRunner().invoke(main, args)


@pytest.mark.parametrize("name, kind", [("fresh.npz", "npz"), ("folder", "folder"), ("idx", "idx"), ("dump", "dump"),
                                        ("dump_png", "dump")])
def test_formats_are_recognised_from_the_path(workspace, name, kind):
    assert sample_format(workspace / name) == kind


def test_a_sample_set_gets_the_report_and_the_audit(workspace):
    result = evaluate(workspace, "fresh", "--samples", str(workspace / "fresh.npz"))
    assert result.exit_code == 0, result.output
    saved = json.loads((workspace / "fresh" / "results.json").read_text())
    assert set(saved["results"]) == {"samples", "real train"}
    assert saved["samples"]["format"] == "npz" and saved["samples"]["images"] == 200
    assert saved["settings"]["n_per_class"] == 20  # the baseline: the set's smallest class
    assert saved["memorization"]["training"]["images"] == N_TRAIN  # the own test split: all of train is training
    assert saved["memorization"]["near_duplicate_fraction"] < 0.05
    assert "memorization: " in result.output and "samples" in result.output
    assert "samples: `" in (workspace / "fresh" / "report.md").read_text()


def test_noised_training_images_read_as_copies(workspace):
    result = evaluate(workspace, "copies", "--samples", str(workspace / "copies.npz"))
    assert result.exit_code == 0, result.output
    memorization = json.loads((workspace / "copies" / "results.json").read_text())["memorization"]
    assert memorization["near_duplicate_fraction"] > 0.95 and memorization["authenticity"] < 0.05
    assert memorization["verdict"].startswith("copies its training images")
    assert (workspace / "copies" / "copies.png").is_file()


def test_the_training_set_is_the_subset_the_generator_saw(workspace):
    """Copies of all 200 training images, audited against a 5-per-class subset: exactly the
    copies of the subset's 50 images are near duplicates."""
    result = evaluate(workspace, "subset", "--samples", str(workspace / "copies.npz"), "--train-n-per-class", "5",
                      "--train-seed", "3")
    assert result.exit_code == 0, result.output
    memorization = json.loads((workspace / "subset" / "results.json").read_text())["memorization"]
    assert memorization["training"] == {"subset": "n5", "seed": 3, "images": 50, "feature_images": 50}
    assert memorization["near_duplicate_fraction"] == pytest.approx(50 / 200, abs=0.03)
    _, labels = bar_digits(N_TRAIN, 0)
    subset = set(subset_indices(labels.long(), SubsetSpec(n_per_class=5), 3, 10).tolist())
    assert {row["training_index"] for row in memorization["most_copied"]} <= subset


@pytest.mark.parametrize("name, option", [("folder", None), ("idx", None), ("dump", None), ("dump_png", None),
                                          ("fresh.npz", "npz")])
def test_every_format_reads_all_of_its_images(workspace, name, option):
    extra = ["--samples-format", option] if option else []
    result = evaluate(workspace, f"out_{name}", "--samples", str(workspace / name), *extra)
    assert result.exit_code == 0, result.output
    saved = json.loads((workspace / f"out_{name}" / "results.json").read_text())
    if name.startswith("dump"):  # every split the dump holds (a default dump adds a test split)
        manifest = json.loads((workspace / name / "manifest.json").read_text())
        assert saved["samples"]["images"] == sum(s["num_samples"] for s in manifest["splits"].values()) > 100
    else:
        assert saved["samples"]["images"] == 200


def test_the_python_api_matches(workspace):
    classifier = load_classifier(workspace / "c.safetensors")
    result = scoring.evaluate_sample_set(workspace / "fresh.npz", classifier=classifier, data_dir=workspace / "real",
                                         dataset="idx")
    assert result["samples"]["images"] == 200 and "ct" in result["memorization"]
    assert len(result["per_class"]["agreement"]) == 10


@pytest.mark.parametrize("extra, word", [
    (["--samples", "{w}/nope.npz"], "does not exist"),
    (["--samples", "{w}/wrong_classes.npz"], "classes"),
    (["--samples", "{w}/empty.npz"], "empty"),
    (["--samples", "{w}/big.npz"], "not resized"),
    (["--samples", "{w}/fresh.npz", "--samples-format", "jpeg"], "jpeg"),  # (a usage error: not one of the formats)
    (["{w}/g.safetensors", "--samples", "{w}/fresh.npz"], "one of them"),
    ([], "one of them"),
    (["--samples", "{w}/fresh.npz", "--train-n-per-class", "500"], "fewer than n_per_class=500"),
])
def test_bad_sample_sets_get_one_error_line_and_nothing_written(workspace, extra, word):
    result = evaluate(workspace, "bad", *[a.format(w=workspace) for a in extra])
    assert result.exit_code != 0
    errors = [line for line in result.output.splitlines() if line.startswith("Error")]
    assert len(errors) == 1 and word in errors[0], result.output
    assert result.output.strip() == errors[0]
    assert not (workspace / "bad").exists()


def test_the_help_lists_every_format():
    help_text = CliRunner().invoke(main, ["evaluate", "--help"]).output
    assert all(kind in help_text for kind in SAMPLE_FORMATS)


@pytest.mark.parametrize("manifest, word", [
    ('{"format": "%s", "splits": [1, 2], "formats": ["npz"]}', "damaged dump manifest"),
    ('{"format": "%s", "splits": ' + "[" * 100_000 + "]" * 100_000 + "}", "unreadable dump manifest"),
])
def test_a_hostile_dump_manifest_is_one_line(workspace, tmp_path, manifest, word):
    from augment.synthetic.dump import DUMP_FORMAT

    dump = tmp_path / "hostile_dump"
    dump.mkdir()
    (dump / "manifest.json").write_text(manifest.replace("%s", DUMP_FORMAT, 1))
    result = evaluate(workspace, "bad", "--samples", str(dump), "--samples-format", "dump")
    assert result.exit_code == 1 and word in result.output and len(result.output.strip().splitlines()) == 1
    assert not (workspace / "bad").exists()
