"""Every command, bad input: non-zero exit, one error line naming the bad value, no traceback,
nothing written."""


import numpy as np
import pytest
from click.testing import CliRunner

from augment.checkpoint import save_generator
from augment.cli import main
from augment.gan.models import Generator
from tests.conftest import assert_one_line_error, bar_digits

T = "{tmp}"
G = "{tmp}/g.safetensors"  # a valid tiny generator
CASES = [
    # train
    (["train", "--run-dir", f"{T}/r", "--data-dir", f"{T}/missing"], 1, "missing"),
    (["train", "--run-dir", f"{T}/r", "--data-dir", f"{T}/idx", "--dataset", "mnist"], 1, "SHA-256"),
    (["train", "--run-dir", f"{T}/r", "--data-dir", f"{T}/full"], 1, "pass --dataset"),  # no kind of source
    (["train", "--run-dir", f"{T}/r", "--data-dir", f"{T}/truncated", "--dataset", "idx"], 1, "truncated"),
    (["train", "--run-dir", f"{T}/r", "--data-dir", f"{T}/mismatch", "--dataset", "idx"], 1, "80 images but 79"),
    (["train", "--run-dir", f"{T}/r", "--data-dir", f"{T}/idx", "--dataset", "idx", "--num-classes", "5"], 1,
     "num_classes is 5"),
    (["train", "--run-dir", f"{T}/full", "--data-dir", f"{T}/idx", "--dataset", "idx"], 1, "not empty"),
    (["train", "--run-dir", f"{T}/r", "--batch-size", "0"], 2, "--batch-size"),
    (["train", "--run-dir", f"{T}/r", "--n-critic", "-1"], 2, "--n-critic"),
    (["train", "--run-dir", f"{T}/r", "--beta1", "2"], 2, "--beta1"),
    (["train", "--run-dir", f"{T}/r", "--lr", "nan"], 2, "not a finite number"),
    (["train", "--run-dir", f"{T}/r", "--max-minutes", "nan"], 2, "not a finite number"),
    (["train", "--run-dir", f"{T}/r", "--imbalance-ratio", "inf"], 2, "not a finite number"),
    (["train", "--run-dir", f"{T}/r", "--z-dim", "1000000000000"], 2, "--z-dim"),
    (["train", "--run-dir", f"{T}/r", "--keep-best", "agreement"], 2, "goes with eval_every"),
    (["dump", "-o", f"{T}/d", "-n", "10", "--truncation", "nan"], 2, "not a finite number"),
    (["data", "fetch", "--timeout", "nan"], 2, "not a finite number"),
    (["train-classifier", "-o", f"{T}/c.safetensors", "--lr", "nan"], 2, "not a finite number"),
    (["experiment", "--preset", "quick", "--out", f"{T}/e", "--synthetic-ratio", "inf"], 2, "not a finite number"),
    (["sample", "-o", f"{T}/s.png", "--min-confidence", "nan"], 2, "not a finite number"),
    (["train", "--run-dir", f"{T}/r", "--dataset", "cifar"], 2, "--dataset"),
    (["train", "--run-dir", f"{T}/r", "--device", "tpu"], 2, "tpu"),
    (["train", "--run-dir", f"{T}/r", "--resume"], 1, "last.pt"),
    (["train", "--run-dir", f"{T}/r", "--resume", "--gp-weight", "1"], 1, "last.pt"),
    (["train", "--run-dir", f"{T}/r", "--epochs", "ten"], 2, "--epochs"),
    # sample / export
    (["sample", f"{T}/nope.safetensors", "-o", f"{T}/o.png"], 1, "nope.safetensors"),
    (["sample", f"{T}/corrupt.safetensors", "-o", f"{T}/o.png"], 1, "corrupt.safetensors"),
    (["sample", f"{T}/cfg.json", "-o", f"{T}/o.png"], 1, "cfg.json"),
    (["sample", G, "-o", f"{T}/o.png", "--classes", "3,10"], 1, "class 10"),
    (["sample", G, "-o", f"{T}/o.png", "--per-class", "0"], 2, "--per-class"),
    (["sample", G, "-o", f"{T}/o.bmp"], 2, "o.bmp"),
    (["export", f"{T}/cfg.json", "-o", f"{T}/e.safetensors"], 1, "cfg.json"),
    (["export", G, "-o", f"{T}/e.safetensors"], 1, "g.safetensors"),
    # an output file: its format's suffix, and an existing one refused without --overwrite (as dump and evaluate)
    (["export", f"{T}/cfg.json", "-o", f"{T}/e.pt"], 2, "must end in .safetensors, got 'e.pt'"),
    (["export", f"{T}/cfg.json", "-o", f"{T}/old.safetensors"], 1, "--overwrite"),
    (["sample", G, "-o", f"{T}/old.png"], 1, "old.png exists; pass --overwrite"),
    (["sample", G, "-o", f"{T}/old.gif"], 1, "--overwrite"),
    (["train-classifier", "-o", f"{T}/c.pt"], 2, "must end in .safetensors"),
    (["train-classifier", "-o", f"{T}/old.safetensors"], 1, "--overwrite"),
    (["train-classifier", "-o", f"{T}/cfg.safetensors"], 1, "cfg.json exists"),  # its manifest's name
    (["train", "--run-dir", f"{T}/r", "--channels", "3"], 2, "--channels"),  # every source is grayscale
    # dump
    (["dump", G, "-o", f"{T}/d", "-n", "0"], 2, "--num-samples"),
    (["dump", G, "-o", f"{T}/d", "-n", "10", "--format", "jpeg"], 2, "--format"),
    (["dump", G, "-o", f"{T}/d", "-n", "10", "--classes", "4,11"], 1, "11"),
    (["dump", G, "-o", f"{T}/full", "-n", "10"], 1, "not empty"),
    (["dump", f"{T}/corrupt.safetensors", "-o", f"{T}/d", "-n", "10"], 1, "corrupt.safetensors"),
    (["dump", G, "-o", f"{T}/d", "-n", "10", "--device", "cpu", "--dtype", "bfloat16"], 1, "bfloat16"),
    # evaluate / train-classifier
    (["evaluate", f"{T}/nope.safetensors", "-o", f"{T}/ev", "--data-dir", f"{T}/idx"], 1, "nope.safetensors"),
    (["evaluate", G, "-o", f"{T}/ev", "--n-per-class", "2"], 2, "--n-per-class"),
    (["evaluate", G, "-o", f"{T}/ev", "--classifier", f"{T}/cfg.json", "--data-dir", f"{T}/idx",
      "--dataset", "idx"], 1, "cfg.json"),
    (["train-classifier", "-o", f"{T}/c.safetensors", "--data-dir", f"{T}/missing"], 1, "missing"),
    (["train-classifier", "-o", f"{T}/c.safetensors", "--lr", "0"], 2, "--lr"),
    # experiment / data
    (["experiment", "--out", f"{T}/x", "--preset", "huge"], 2, "--preset"),
    (["experiment", "--out", f"{T}/x", "--ratios", "1,x"], 2, "--ratios"),
    (["experiment", "--out", f"{T}/x", "--ratios", "0"], 2, "ratios"),
    (["experiment", "--out", f"{T}/x", "--regimes", "magic"], 2, "regime"),
    (["experiment", "--out", f"{T}/x", "--preset", "cpu", "--fair-seeds", "7"], 2, "fair_seeds"),
    (["experiment", "--out", f"{T}/x", "--fair-n", "ten"], 2, "--fair-n"),
    (["experiment", "--out", f"{T}/x", "--fair-widths", "32"], 2, "fair_widths"),
    (["experiment", "--out", f"{T}/x", "--data-dir", f"{T}/missing"], 1, "missing"),
    (["data", "verify", f"{T}/missing"], 1, "missing"),
    (["data", "verify", f"{T}/truncated", "--any-idx"], 1, "truncated"),
    (["data", "verify", f"{T}/idx", "--dataset", "mnist"], 1, "SHA-256"),
    (["data", "verify", f"{T}/cfg.json"], 1, "cannot tell what kind of data"),
    (["data", "fetch", "--timeout", "0"], 2, "--timeout"),
    (["data", "verify", f"{T}/idx", "--dataset", "folder"], 1, "one folder per class"),
    (["data", "verify", f"{T}/cfg.json", "--dataset", "npz"], 1, "cfg.json"),
    (["data", "verify", f"{T}/idx", "--dataset", "csv"], 2, "--dataset"),
    # long tails, data sources
    (["train", "--run-dir", f"{T}/r", "--imbalance-ratio", "0.5"], 2, "--imbalance-ratio"),
    (["train", "--run-dir", f"{T}/r", "--imbalance-ratio", "10", "--n-per-class", "5"], 2, "choose one subset"),
    (["train", "--run-dir", f"{T}/r", "--class-counts", "3,-1"], 2, "--class-counts"),
    (["train", "--run-dir", f"{T}/r", "--data-dir", f"{T}/idx", "--dataset", "idx", "--class-counts", "1,2"], 1,
     "2 class counts for 10 classes"),
    (["train", "--run-dir", f"{T}/r", "--data-dir", f"{T}/idx", "--dataset", "idx", "--imbalance-ratio", "10",
      "--n-max", "9"], 1, "fewer than the 9"),
    (["train", "--run-dir", f"{T}/r", "--data-dir", f"{T}/idx", "--dataset", "idx", "--imbalance-ratio", "100",
      "--n-max", "8"], 1, "rarest class no image"),
    (["train", "--run-dir", f"{T}/r", "--dataset", "npz"], 1, "needs a path"),
    (["dump", G, "-o", f"{T}/d", "-n", "1.5"], 2, "whole count"),
    (["dump", G, "-o", f"{T}/d", "-n", "10", "-f", "idx,tiff"], 2, "--format"),
    (["dump", G, "-o", f"{T}/d", "-n", "3", "--classes", "3,7,1,2"], 1, "without an image"),
    (["dump", G, "-o", f"{T}/d", "--class-counts", "1,2"], 1, "2 class weights for 10 classes"),
    (["dump", G, "-o", f"{T}/d", "-n", "10", "--min-confidence", "1.5"], 2, "--min-confidence"),
    (["dump", G, "-o", f"{T}/d", "-n", "10", "--filter-classifier", f"{T}/cfg.json"], 2, "--min-confidence"),
    (["experiment", "--out", f"{T}/x", "--preset", "longtail-cpu", "--ratios", "1"], 2, "does not apply"),
    (["experiment", "--out", f"{T}/x", "--preset", "longtail-cpu", "--methods", "erm,mixup"], 2, "mixup"),
    (["experiment", "--out", f"{T}/x", "--preset", "cpu", "--imbalance-ratios", "10"], 2, "does not apply"),
    (["experiment", "--out", f"{T}/x", "--preset", "quick", "--top-up-target", "100"], 2, "does not apply"),
    (["experiment", "--out", f"{T}/x", "--preset", "longtail-cpu", "--top-up-target", "0"], 2, "--top-up-target"),
    (["experiment", "--out", f"{T}/x", "--preset", "cpu", "--synthetic-ratio", "2"], 2, "does not apply"),
    (["experiment", "--out", f"{T}/x", "--preset", "longtail-cpu", "--synthetic-ratio", "0"], 2, "--synthetic-ratio"),
    (["experiment", "--out", f"{T}/x", "--preset", "longtail-cpu", "--synthetic-ratio", "inf"], 2, "finite"),
    (["experiment", "--out", f"{T}/x", "--preset", "longtail-cpu", "--imbalance-ratios", "0.5"], 2, ">= 1"),
    (["train-classifier", "-o", f"{T}/c.safetensors", "--widths", "4,x"], 2, "--widths"),
    (["nonsense"], 2, "nonsense"),
    (["--bogus"], 2, "--bogus"),
    (["data", "verify", "--bogus"], 2, "--bogus"),
]


@pytest.fixture
def workspace(tmp_path, tiny_model_config):
    from tests.conftest import write_idx_dir

    write_idx_dir(tmp_path / "idx")
    write_idx_dir(tmp_path / "truncated")
    raw = (tmp_path / "truncated" / "t10k-images-idx3-ubyte").read_bytes()
    (tmp_path / "truncated" / "t10k-images-idx3-ubyte").write_bytes(raw[:-100])
    import gzip
    trunc_train = tmp_path / "truncated" / "train-images-idx3-ubyte.gz"
    trunc_train.write_bytes(gzip.compress(gzip.decompress(trunc_train.read_bytes())[:-100]))
    write_idx_dir(tmp_path / "mismatch")
    import torch

    from augment.data.idx import encode_idx
    (tmp_path / "mismatch" / "train-labels-idx1-ubyte").write_bytes(encode_idx(torch.zeros(79, dtype=torch.uint8)))
    save_generator(tmp_path / "g.safetensors", Generator(tiny_model_config))
    blob = (tmp_path / "g.safetensors").read_bytes()
    (tmp_path / "corrupt.safetensors").write_bytes(blob[: len(blob) // 3])
    (tmp_path / "cfg.json").write_text("{}")
    images, labels = bar_digits(30, num_classes=3)
    np.savez(tmp_path / "three.npz", x=images.numpy(), y=labels.numpy())
    for name in ("old.png", "old.gif", "old.safetensors"):
        (tmp_path / name).write_bytes(b"keep")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("keep")
    return tmp_path


@pytest.mark.parametrize("args, code, word", CASES, ids=[" ".join(c[0][:2]) + f"-{i}" for i, c in enumerate(CASES)])
def test_bad_invocation(workspace, monkeypatch, args, code, word):
    monkeypatch.setenv("AUGMENT_DATA", str(workspace / "missing"))
    assert_one_line_error(workspace, args, code, word)


def test_the_shipped_evaluator_meets_data_not_mnist(workspace):
    """The kind recognised from the path (an .npz), and the shipped evaluator refused with the fix
    (the message names the path twice, so it is longer than the harness's 400 characters here)."""
    result = CliRunner().invoke(main, ["evaluate", str(workspace / "g.safetensors"), "-o", str(workspace / "ev"),
                                       "--data-dir", str(workspace / "three.npz")])
    assert result.exit_code == 1 and result.output.startswith("Error: ") and result.output.count("\n") == 1
    assert "--classifier" in result.output and not (workspace / "ev").exists()


def test_at_least_25_cases_across_all_commands():
    assert len(CASES) >= 25
    assert {c[0][0] for c in CASES} >= {"train", "sample", "export", "dump", "evaluate", "train-classifier",
                                        "experiment", "data"}


def test_a_multi_line_library_error_is_printed_on_one_line():
    import click

    from augment.errors import DataError
    from cli import AugmentGroup

    @click.group(cls=AugmentGroup)
    def group():
        pass

    @group.command()
    def broken():
        raise DataError("bad header\n    in line 2")

    result = CliRunner().invoke(group, ["broken"])
    assert result.exit_code == 1 and result.output == "Error: bad header in line 2\n"
