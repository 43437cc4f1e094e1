"""The shipped weights: checksum and config checks against their manifests."""

import dataclasses
import json

import pytest

from augment.checkpoint import read_generator_file
from augment.errors import CheckpointError
from augment.manifests import write_manifest
from augment.synthetic import shipped as shipped_module
from augment.synthetic.shipped import verified_default_generator_path


def test_the_shipped_generator_matches_its_manifest():
    path = verified_default_generator_path()
    info = json.loads(path.with_suffix(".json").read_text())
    assert info["train_config"]["model"] == dataclasses.asdict(read_generator_file(path)[0])


@pytest.fixture
def shipped(generator_file, monkeypatch):
    """The tiny generator file installed as the shipped default, with a manifest that records
    its model config."""
    model = dataclasses.asdict(read_generator_file(generator_file)[0])
    write_manifest(generator_file, {"train_config": {"model": model}})
    monkeypatch.setattr(shipped_module, "GENERATOR_PATH", generator_file)
    return generator_file


def test_a_manifest_with_another_model_config_is_refused(shipped):
    assert verified_default_generator_path() == shipped
    manifest = shipped.with_suffix(".json")
    body = json.loads(manifest.read_text())
    body["train_config"]["model"]["z_dim"] += 1
    manifest.write_text(json.dumps(body))
    with pytest.raises(CheckpointError, match=r"model config differs from its manifest \(z_dim\)"):
        verified_default_generator_path()


def test_a_damaged_file_is_refused(shipped):
    data = bytearray(shipped.read_bytes())
    data[-1] ^= 1
    shipped.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="SHA-256 does not match its manifest"):
        verified_default_generator_path()


def test_a_missing_manifest_is_refused(shipped):
    shipped.with_suffix(".json").unlink()
    with pytest.raises(CheckpointError, match="manifest not found"):
        verified_default_generator_path()
