"""Hostile model files and outputs: a generator, classifier or checkpoint file made by hand to break
a reader, and outputs that cannot be written. Every case is one `Error:` line naming what is
wrong, a non-zero exit, no traceback and nothing written (the style of
tests/cli/test_bad_invocations.py: add a case as a row of CASES and, if it needs one, a file in
``workspace``). Library-level checks of the same boundaries follow the table."""

from __future__ import annotations

import errno
import json
import os

import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import save_file

import augment.checkpoint as checkpoint
from augment.checkpoint import (
    GENERATOR_FORMAT,
    generator_step,
    load_checkpoint,
    load_generator,
    save_checkpoint,
    save_generator,
    write_safetensors,
)
from augment.checks import class_names_problem
from augment.cli import main
from augment.config import ModelConfig, TrainConfig
from augment.errors import AugmentError, CheckpointError
from augment.fileio import atomic_directory, atomic_path, atomic_write_text
from augment.gan.models import Generator
from augment.safetensors_files import MAX_METADATA_CHARS
from tests.conftest import assert_one_line_error, write_idx_dir
from tests.test_checkpoint import _state as checkpoint_state

T = "{tmp}"
G = "{tmp}/g.safetensors"  # a valid tiny generator
CASES = [
    # generator files: metadata checked for size and depth before parsing, then for meaning
    (["sample", f"{T}/deep_class_names.safetensors", "-o", f"{T}/o.png"], 1, "nested deeper"),
    (["sample", f"{T}/deep_model_config.safetensors", "-o", f"{T}/o.png"], 1, "nested deeper"),
    (["sample", f"{T}/huge_class_name.safetensors", "-o", f"{T}/o.png"], 1, "characters long"),
    (["sample", f"{T}/long_class_name.safetensors", "-o", f"{T}/o.png"], 1, "class name"),
    (["sample", f"{T}/newline_class_name.safetensors", "-o", f"{T}/o.png"], 1, "class name"),
    (["dump", f"{T}/newline_class_name.safetensors", "-o", f"{T}/d", "-n", "10"], 1, "class name"),
    (["sample", f"{T}/eleven_class_names.safetensors", "-o", f"{T}/o.png"], 1, "11 class names for 10"),
    (["sample", f"{T}/z_dim_2_62.safetensors", "-o", f"{T}/o.png"], 1, "z_dim"),
    (["sample", f"{T}/model_config_list.safetensors", "-o", f"{T}/o.png"], 1, "bad model config"),
    (["sample", f"{T}/nan.safetensors", "-o", f"{T}/o.png"], 1, "NaN"),
    (["dump", f"{T}/inf.safetensors", "-o", f"{T}/d", "-n", "10"], 1, "NaN or infinity"),
    (["sample", f"{T}/pickle.safetensors", "-o", f"{T}/o.png"], 1, "pickle"),
    # checkpoints: step, RNG state, weights and nesting checked before the trainer or export sees them
    (["export", f"{T}/step_neg.pt", "-o", f"{T}/e.safetensors"], 1, "bad step -5"),
    (["export", f"{T}/step_abc.pt", "-o", f"{T}/e.safetensors"], 1, "bad step 'abc'"),
    (["export", f"{T}/step_bool.pt", "-o", f"{T}/e.safetensors"], 1, "bad step True"),
    (["export", f"{T}/rng_3_bytes.pt", "-o", f"{T}/e.safetensors"], 1, "RNG state of 3 bytes"),
    (["export", f"{T}/rng_float.pt", "-o", f"{T}/e.safetensors"], 1, "uint8"),
    (["export", f"{T}/elapsed_nan.pt", "-o", f"{T}/e.safetensors"], 1, "elapsed"),
    (["export", f"{T}/nan_critic.pt", "-o", f"{T}/e.safetensors"], 1, "NaN"),
    (["export", f"{T}/deep.pt", "-o", f"{T}/e.safetensors"], 1, "nested deeper"),
    (["export", f"{T}/generator_list.pt", "-o", f"{T}/e.safetensors"], 1, "bad generator weights"),
    (["export", f"{T}/newline_class_name.pt", "-o", f"{T}/e.safetensors"], 1, "class name"),
    (["sample", f"{T}/step_abc.pt", "-o", f"{T}/o.png"], 1, "bad step"),
    (["train", "--run-dir", f"{T}/resume_step_abc", "--resume"], 1, "bad step 'abc'"),
    (["train", "--run-dir", f"{T}/resume_step_neg", "--resume"], 1, "bad step -5"),
    (["train", "--run-dir", f"{T}/resume_rng_3_bytes", "--resume"], 1, "RNG state of 3 bytes"),
    # a file of another kind where a safetensors model file is expected: say what it is
    (["sample", G, "-o", f"{T}/o.png", "--min-confidence", "0.5", "--filter-classifier", f"{T}/clf.pkl"], 1,
     "a Python pickle"),
    (["sample", G, "-o", f"{T}/o.png", "--min-confidence", "0.5", "--filter-classifier", f"{T}/step_neg.pt"], 1,
     "zip archive"),
    (["sample", G, "-o", f"{T}/o.png", "--min-confidence", "0.5", "--filter-classifier", f"{T}/text.txt"], 1,
     "no JSON header"),
    # outputs under a path whose parent is a file
    (["dump", G, "-o", f"{T}/afile/d", "-n", "10"], 1, "is not a directory"),
    (["sample", G, "-o", f"{T}/afile/sub/o.png"], 1, "is not a directory"),
    (["export", f"{T}/ok.pt", "-o", f"{T}/afile/e.safetensors"], 1, "is not a directory"),
]


def _metadata(cfg: ModelConfig, **extra) -> dict:
    return {"format": GENERATOR_FORMAT, "format_version": "1", "model_config": json.dumps(cfg.__dict__), **extra}


def _checkpoint_state(cfg: TrainConfig) -> dict:
    """test_checkpoint's state, with what the loop adds: elapsed time, the log window, class names."""
    return {**checkpoint_state(cfg), "elapsed": 1.5, "log_window": {},
            "class_names": [str(c) for c in range(cfg.model.num_classes)]}


@pytest.fixture
def workspace(tmp_path, tiny_model_config):
    idx = write_idx_dir(tmp_path / "idx")
    g = Generator(tiny_model_config)
    save_generator(tmp_path / "g.safetensors", g)
    weights, cfg = g.state_dict(), tiny_model_config
    files = {
        "deep_class_names": _metadata(cfg, class_names="[" * 100_000 + "]" * 100_000),
        "deep_model_config": {**_metadata(cfg), "model_config": '{"a":' * 100_000 + "1" + "}" * 100_000},
        "huge_class_name": _metadata(cfg, class_names=json.dumps(["x" * 5_000_000] + [str(c) for c in range(1, 10)])),
        "long_class_name": _metadata(cfg, class_names=json.dumps(["x" * 101] + [str(c) for c in range(1, 10)])),
        "newline_class_name": _metadata(cfg, class_names=json.dumps(["a\nb"] + [str(c) for c in range(1, 10)])),
        "eleven_class_names": _metadata(cfg, class_names=json.dumps([str(c) for c in range(11)])),
        "z_dim_2_62": {**_metadata(cfg), "model_config": json.dumps({**cfg.__dict__, "z_dim": 2 ** 62})},
        "model_config_list": {**_metadata(cfg), "model_config": "[]"},
    }
    for name, metadata in files.items():
        write_safetensors(tmp_path / f"{name}.safetensors", weights, metadata)
    # non-finite weights in a file without data_sha256 (allowed for files written by hand or long ago)
    save_file({k: torch.full_like(v, float("nan")) if v.is_floating_point() else v for k, v in weights.items()},
              str(tmp_path / "nan.safetensors"), metadata=_metadata(cfg))
    inf = {k: v.clone() for k, v in weights.items()}
    next(v for v in inf.values() if v.is_floating_point()).view(-1)[0] = float("inf")
    save_file(inf, str(tmp_path / "inf.safetensors"), metadata=_metadata(cfg))
    (tmp_path / "clf.pkl").write_bytes(__import__("pickle").dumps({"weights": [1.0]}, protocol=4))
    (tmp_path / "pickle.safetensors").write_bytes((tmp_path / "clf.pkl").read_bytes())
    (tmp_path / "text.txt").write_text("not a model\n" * 10)
    (tmp_path / "afile").write_text("a file where a folder is expected")

    train_cfg = TrainConfig(model=tiny_model_config, data_dir=str(idx), dataset="idx", batch_size=16, n_critic=2,
                            device="cpu", tensorboard=False)
    ok = _checkpoint_state(train_cfg)
    noise = ok["rng"]["noise"]
    nan_critic = {k: torch.full_like(v, float("nan")) if v.is_floating_point() else v for k, v in ok["critic"].items()}
    nested: list = []
    for _ in range(100):
        nested = [nested]
    checkpoints = {
        "ok": ok,
        "step_neg": {**ok, "step": -5},
        "step_abc": {**ok, "step": "abc"},
        "step_bool": {**ok, "step": True},
        "rng_3_bytes": {**ok, "rng": {"noise": noise[:3].clone()}},
        "rng_float": {**ok, "rng": {"noise": noise.float()}},
        "elapsed_nan": {**ok, "elapsed": float("nan")},
        "nan_critic": {**ok, "critic": nan_critic},
        "deep": {**ok, "extra": nested},
        "generator_list": {**ok, "generator": list(ok["generator"].values())},
        "newline_class_name": {**ok, "class_names": ["a\nb"] + ok["class_names"][1:]},
    }
    for name, state in checkpoints.items():
        save_checkpoint(tmp_path / f"{name}.pt", state)
    for name in ("step_abc", "step_neg", "rng_3_bytes"):
        run = tmp_path / f"resume_{name}"
        (run / "checkpoints").mkdir(parents=True)
        (run / "config.json").write_text(train_cfg.to_json() + "\n")
        (run / "checkpoints" / "last.pt").write_bytes((tmp_path / f"{name}.pt").read_bytes())
    return tmp_path


@pytest.mark.parametrize("args, code, word", CASES, ids=[" ".join(c[0][:2]) + f"-{i}" for i, c in enumerate(CASES)])
def test_hostile_file(workspace, monkeypatch, args, code, word):
    monkeypatch.setenv("AUGMENT_DATA", str(workspace / "missing"))
    assert_one_line_error(workspace, args, code, word)


# ------------------------------------------------------------------------------ the library's side


def test_the_readers_accept_what_the_library_writes(workspace, tiny_model_config):
    names = [f"class {c}" for c in range(10)]
    save_generator(workspace / "named.safetensors", Generator(tiny_model_config), {"class_names": names, "step": 7})
    assert checkpoint.generator_class_names(workspace / "named.safetensors") == names
    assert generator_step(workspace / "named.safetensors") == 7
    state = load_checkpoint(workspace / "ok.pt")
    assert state["step"] == 3 and state["class_names"] == [str(c) for c in range(10)]
    load_generator(workspace / "ok.pt")


def test_a_metadata_string_at_the_cap_is_read_and_one_over_is_refused(tmp_path, tiny_model_config):
    g = Generator(tiny_model_config)
    filler = "x" * (MAX_METADATA_CHARS - 2)
    write_safetensors(tmp_path / "at.safetensors", g.state_dict(), _metadata(tiny_model_config, note=f"[{filler}]"))
    load_generator(tmp_path / "at.safetensors")
    write_safetensors(tmp_path / "over.safetensors", g.state_dict(), _metadata(tiny_model_config, note=f"[{filler}x]"))
    with pytest.raises(CheckpointError, match="characters long"):
        load_generator(tmp_path / "over.safetensors")


def test_brackets_inside_json_strings_are_not_nesting(tmp_path, tiny_model_config):
    names = ["[" * 50, "{" * 50 + '"', *[str(c) for c in range(2, 10)]]
    save_generator(tmp_path / "g.safetensors", Generator(tiny_model_config), {"class_names": names})
    assert checkpoint.generator_class_names(tmp_path / "g.safetensors") == names


def test_generator_step_refuses_a_step_that_is_not_a_count(tmp_path, tiny_model_config):
    save_generator(tmp_path / "g.safetensors", Generator(tiny_model_config), {"step": "-5"})
    with pytest.raises(CheckpointError, match="bad step"):
        generator_step(tmp_path / "g.safetensors")


@pytest.mark.parametrize("names, problem", [
    (["a", "b"], None), (("a", "b"), None), ("ab", "a list"), (["a", 3], "class name 3"), (["a", ""], "class name"),
    (["a", "a"], "distinct"), (["a\tb", "c"], "class name"), (["a", "b", "c"], "3 class names for 2"),
])
def test_class_names_problem(names, problem):
    found = class_names_problem(names, 2)
    assert found is None if problem is None else problem in found


def test_a_checkpoint_write_that_torch_fails_is_one_line_and_leaves_nothing(tmp_path, tiny_train_config, monkeypatch):
    def full_disk(obj, f):  # what torch.save raises when its writer fails (a full disk through a path)
        f.write(b"PK half")
        raise RuntimeError("[enforce fail at inline_container.cc:672] . PytorchStreamWriter failed writing file "
                           "data/0: file write failed")

    out = tmp_path / "checkpoints"
    save_checkpoint(out / "last.pt", _checkpoint_state(tiny_train_config))
    before = (out / "last.pt").read_bytes()
    monkeypatch.setattr(checkpoint.torch, "save", full_disk)
    with pytest.raises(AugmentError, match=r"^writing .*last\.pt failed: \[enforce fail") as e:
        save_checkpoint(out / "last.pt", _checkpoint_state(tiny_train_config))
    assert "\n" not in str(e.value)
    assert (out / "last.pt").read_bytes() == before and os.listdir(out) == ["last.pt"]


def test_a_full_disk_under_the_atomic_writer_is_the_dump_message(tmp_path):
    with pytest.raises(AugmentError, match=r"^writing .*f\.bin failed: No space left on device$"):
        with atomic_path(tmp_path / "f.bin") as tmp:
            tmp.write_bytes(b"half")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    assert os.listdir(tmp_path) == []


def test_a_full_disk_during_train_is_one_line(tmp_path, idx_dir, monkeypatch):
    def full_disk(obj, f):
        raise RuntimeError("PytorchStreamWriter failed writing file data/0: file write failed")

    monkeypatch.setattr(checkpoint.torch, "save", full_disk)
    result = CliRunner().invoke(main, [
        "train", "--run-dir", str(tmp_path / "run"), "--data-dir", str(idx_dir), "--dataset", "idx",
        "--batch-size", "16", "--n-critic", "2", "--z-dim", "8", "--embed-dim", "4", "--g-width", "8",
        "--d-width", "8", "--device", "cpu", "--max-steps", "2", "--no-tensorboard", "--quiet"])
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.output.startswith("Error: writing ") and "last.pt failed: PytorchStreamWriter" in result.output
    assert len(result.output.strip().splitlines()) == 1, result.output
    assert not list((tmp_path / "run" / "checkpoints").glob("*"))


def test_new_files_and_folders_get_the_umask_of_the_moment_they_are_made(tmp_path):
    previous = os.umask(0o077)
    try:
        atomic_write_text(tmp_path / "private.txt", "x")
        with atomic_directory(tmp_path / "private_dir") as d:
            (d / "f").write_text("x")
        os.umask(0o022)
        atomic_write_text(tmp_path / "shared.txt", "x")
        with atomic_directory(tmp_path / "shared_dir") as d:
            (d / "f").write_text("x")
    finally:
        os.umask(previous)
    mode = {p.name: p.stat().st_mode & 0o777 for p in tmp_path.iterdir()}
    assert mode == {"private.txt": 0o600, "private_dir": 0o700, "shared.txt": 0o644, "shared_dir": 0o755}


def test_importing_fileio_leaves_the_umask_alone():
    import subprocess
    import sys
    code = ("import os, unittest.mock as m\n"
            "with m.patch.object(os, 'umask', side_effect=AssertionError('umask called')):\n"
            "    import augment.fileio, augment.checkpoint\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]


@pytest.mark.parametrize("content, word", [("[" * 100_000 + "]" * 100_000, "unreadable manifest"),
                                           (" " * ((1 << 20) + 1), "is no manifest")])
def test_a_hostile_manifest_is_one_line(tmp_path, content, word):
    from augment.manifests import verify_checksum

    (tmp_path / "w.safetensors").write_bytes(b"x")
    (tmp_path / "w.json").write_text(content)
    with pytest.raises(CheckpointError, match=word) as e:
        verify_checksum(tmp_path / "w.safetensors")
    assert len(str(e.value)) < 400
