import pickle
import zipfile

import pytest
import torch

from augment.checkpoint import (
    export_generator,
    generator_step,
    generator_trained_on,
    load_checkpoint,
    load_generator,
    read_generator_file,
    save_checkpoint,
    save_generator,
)
from augment.config import TrainConfig
from augment.errors import CheckpointError
from augment.gan.models import Critic, Generator
from augment.provenance import DataSignature


def _state(cfg: TrainConfig) -> dict:
    torch.manual_seed(0)
    g, d = Generator(cfg.model), Critic(cfg.model)
    opt = torch.optim.Adam(g.parameters())
    return {"train_config": cfg.to_dict(), "generator": g.state_dict(), "critic": d.state_dict(),
            "opt_g": opt.state_dict(), "opt_d": opt.state_dict(), "step": 3,
            "rng": {"noise": torch.Generator().manual_seed(5).get_state()}}


def test_checkpoint_round_trip(tmp_path, tiny_train_config):
    state = _state(tiny_train_config)
    save_checkpoint(tmp_path / "c.pt", state)
    loaded = load_checkpoint(tmp_path / "c.pt")
    assert loaded["train_config"] == tiny_train_config
    assert loaded["step"] == 3
    for k, v in state["generator"].items():
        assert torch.equal(v, loaded["generator"][k])
    assert torch.equal(loaded["rng"]["noise"], state["rng"]["noise"])


def test_generator_file_alone_rebuilds_the_generator(tmp_path, tiny_model_config):
    g = Generator(tiny_model_config).eval()
    digest = save_generator(tmp_path / "g.safetensors", g, {"step": 7})
    assert len(digest) == 64
    cfg, _, meta = read_generator_file(tmp_path / "g.safetensors")
    assert cfg == tiny_model_config and meta["step"] == "7"
    assert generator_step(tmp_path / "g.safetensors") == 7
    save_generator(tmp_path / "bare.safetensors", g)
    assert generator_step(tmp_path / "bare.safetensors") is None  # a file that does not say
    g2 = load_generator(tmp_path / "g.safetensors")
    z, y = torch.randn(4, tiny_model_config.z_dim), torch.arange(4)
    torch.testing.assert_close(g(z, y), g2(z, y), rtol=0, atol=0)


def test_export_from_checkpoint(tmp_path, tiny_train_config):
    save_checkpoint(tmp_path / "c.pt", _state(tiny_train_config))
    export_generator(tmp_path / "c.pt", tmp_path / "g.safetensors")
    a, b = load_generator(tmp_path / "c.pt"), load_generator(tmp_path / "g.safetensors")
    for (k, v), (_, w) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.equal(v, w), k


def test_the_training_datas_kind_size_and_channels_travel_to_the_file(tmp_path, tiny_train_config,
                                                                      tiny_model_config):
    names = tuple("abcdefghij")
    data = DataSignature("npz", names, (8, 12), 1)
    save_checkpoint(tmp_path / "c.pt", {**_state(tiny_train_config), "class_names": list(names), **data.metadata()})
    assert generator_trained_on(tmp_path / "c.pt") == data
    export_generator(tmp_path / "c.pt", tmp_path / "g.safetensors")
    assert generator_trained_on(tmp_path / "g.safetensors") == data
    save_checkpoint(tmp_path / "old.pt", _state(tiny_train_config))  # written before the keys travelled
    assert generator_trained_on(tmp_path / "old.pt") == DataSignature(None, tuple(str(c) for c in range(10)), (28, 28))
    save_generator(tmp_path / "old.safetensors", Generator(tiny_model_config))
    assert generator_trained_on(tmp_path / "old.safetensors").size == (28, 28)


@pytest.mark.parametrize("key, value, message", [("source_size", [8], "bad source_size"),
                                                 ("source_size", [8, 10_000], "bad source_size"),
                                                 ("source_kind", "jpeg", "bad source_kind 'jpeg'"),
                                                 ("source_channels", 0, "bad source_channels 0")])
def test_bad_training_data_keys_are_refused_in_one_line(tmp_path, tiny_train_config, tiny_model_config, key, value,
                                                        message):
    save_generator(tmp_path / "g.safetensors", Generator(tiny_model_config), {key: value})
    with pytest.raises(CheckpointError, match=message) as info:
        generator_trained_on(tmp_path / "g.safetensors")
    assert "\n" not in str(info.value)
    save_checkpoint(tmp_path / "c.pt", {**_state(tiny_train_config), key: value})
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(tmp_path / "c.pt")


class Payload:
    def __reduce__(self):
        import pathlib
        return (pathlib.Path.touch, (pathlib.Path(self.target),))


def test_pickle_with_code_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "pwned"
    payload = Payload()
    payload.target = str(marker)
    torch.save({"format": "augment.checkpoint", "x": payload}, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError, match="refused"):
        load_checkpoint(tmp_path / "evil.pt")
    assert not marker.exists()
    (tmp_path / "raw.pkl").write_bytes(pickle.dumps(payload))
    with pytest.raises(CheckpointError, match="not an augment checkpoint"):
        load_checkpoint(tmp_path / "raw.pkl")
    assert not marker.exists()


@pytest.mark.parametrize("make, message", [
    (lambda p: p.write_text("{}"), "not an augment checkpoint"),
    (lambda p: torch.save({"format": "other"}, p), "not an augment checkpoint"),
    (lambda p: torch.save({"format": "augment.checkpoint", "format_version": 99}, p), "newer"),
    (lambda p: torch.save({"format": "augment.checkpoint", "format_version": 1}, p), "lacks"),
])
def test_wrong_files_give_one_line_errors(tmp_path, make, message):
    path = tmp_path / "bad.pt"
    make(path)
    with pytest.raises(CheckpointError, match=message) as info:
        load_checkpoint(path)
    assert "\n" not in str(info.value)


def test_truncated_checkpoint_and_generator(tmp_path, tiny_train_config, tiny_model_config):
    save_checkpoint(tmp_path / "c.pt", _state(tiny_train_config))
    blob = (tmp_path / "c.pt").read_bytes()
    (tmp_path / "t.pt").write_bytes(blob[: len(blob) // 2])
    with pytest.raises(CheckpointError):
        load_checkpoint(tmp_path / "t.pt")
    save_generator(tmp_path / "g.safetensors", Generator(tiny_model_config))
    blob = (tmp_path / "g.safetensors").read_bytes()
    (tmp_path / "g2.safetensors").write_bytes(blob[: len(blob) - 100])
    with pytest.raises(CheckpointError, match="safetensors"):
        load_generator(tmp_path / "g2.safetensors")
    with pytest.raises(CheckpointError, match="not found"):
        load_generator(tmp_path / "missing.safetensors")


def _hand_written_generator_file(path, generator: Generator, model_config, format_version: str = "1"):
    """A generator file written with the plain safetensors library: ``generator``'s weights under
    the (possibly wrong) ``model_config`` and ``format_version``."""
    import dataclasses
    import json

    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in generator.state_dict().items()}, str(path),
              metadata={"format": "augment.generator", "format_version": format_version,
                        "model_config": json.dumps(model_config if isinstance(model_config, dict)
                                                   else dataclasses.asdict(model_config))})


def test_generator_weights_must_fit_config(tmp_path, tiny_model_config):
    import dataclasses

    g = Generator(tiny_model_config)
    _hand_written_generator_file(tmp_path / "g.safetensors", g, dataclasses.replace(tiny_model_config, z_dim=9))
    with pytest.raises(CheckpointError, match="do not fit"):
        load_generator(tmp_path / "g.safetensors")
    _hand_written_generator_file(tmp_path / "v.safetensors", g, tiny_model_config, format_version="one")
    with pytest.raises(CheckpointError, match="bad generator format version 'one'"):
        load_generator(tmp_path / "v.safetensors")


def test_export_refuses_weights_that_do_not_fit(tmp_path, tiny_train_config):
    state = _state(tiny_train_config)
    state["generator"].popitem()
    save_checkpoint(tmp_path / "c.pt", state)
    with pytest.raises(CheckpointError, match="do not fit"):
        export_generator(tmp_path / "c.pt", tmp_path / "g.safetensors")
    assert not (tmp_path / "g.safetensors").exists()


def test_checkpoint_is_a_zip_written_atomically(tmp_path, tiny_train_config):
    out = tmp_path / "ckpts"
    save_checkpoint(out / "c.pt", _state(tiny_train_config))
    assert zipfile.is_zipfile(out / "c.pt")
    assert [p.name for p in out.iterdir()] == ["c.pt"]


def test_generator_files_are_byte_identical_whatever_the_process(tmp_path, tiny_model_config):
    """safetensors writes its metadata map in a per-process random order; the header is
    rewritten sorted, so the same generator gives the same bytes (and SHA-256) in any process."""
    import json
    import subprocess
    import sys

    g = Generator(tiny_model_config)
    save_generator(tmp_path / "g.safetensors", g, {"step": 5, "weights": "live"})
    raw = (tmp_path / "g.safetensors").read_bytes()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + n])
    assert list(header["__metadata__"]) == sorted(header["__metadata__"]) and (8 + n) % 8 == 0
    again = load_generator(tmp_path / "g.safetensors")
    assert all(torch.equal(a, b) for a, b in zip(g.state_dict().values(), again.state_dict().values()))
    code = ("import sys; from augment.checkpoint import load_generator, save_generator; "
            "save_generator(sys.argv[2], load_generator(sys.argv[1]), {'step': 5, 'weights': 'live'})")
    for i in range(2):  # fresh processes: fresh hash seeds
        subprocess.run([sys.executable, "-c", code, str(tmp_path / "g.safetensors"), str(tmp_path / f"{i}.st")],
                       check=True)
        assert (tmp_path / f"{i}.st").read_bytes() == raw


@pytest.mark.parametrize("content", [b"", b"\x00" * 7, bytes(range(256)) * 16])
def test_a_damaged_safetensors_file_is_named_as_one(tmp_path, content):
    (tmp_path / "g.safetensors").write_bytes(content)
    with pytest.raises(CheckpointError, match="not a readable safetensors file"):
        load_generator(tmp_path / "g.safetensors")


def test_a_flipped_bit_in_a_checkpoint_is_caught(tmp_path, tiny_train_config):
    """torch.load does not check the archive's CRCs; load_checkpoint does."""
    save_checkpoint(tmp_path / "c.pt", _state(tiny_train_config))
    raw = bytearray((tmp_path / "c.pt").read_bytes())
    with zipfile.ZipFile(tmp_path / "c.pt") as archive:
        info = max(archive.infolist(), key=lambda i: i.file_size)  # a tensor's bytes
    local = info.header_offset  # the local header's name and extra lengths give where the data starts
    start = local + 30 + int.from_bytes(raw[local + 26:local + 28], "little") + \
        int.from_bytes(raw[local + 28:local + 30], "little")
    raw[start + info.file_size // 2] ^= 0x01
    (tmp_path / "c.pt").write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match="CRC mismatch"):
        load_checkpoint(tmp_path / "c.pt")


def test_a_flipped_bit_in_a_generator_file_is_caught(tmp_path, tiny_model_config):
    """safetensors has no checksum; write_safetensors records the data's SHA-256 in the metadata."""
    save_generator(tmp_path / "g.safetensors", Generator(tiny_model_config))
    raw = bytearray((tmp_path / "g.safetensors").read_bytes())
    raw[-5] ^= 0x01  # a bit of the last tensor's data
    (tmp_path / "g.safetensors").write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match="corrupt generator file"):
        load_generator(tmp_path / "g.safetensors")


def test_a_generator_file_of_a_newer_format_is_refused(tmp_path, tiny_model_config):
    from augment.checkpoint import read_generator_file, write_safetensors

    save_generator(tmp_path / "g.safetensors", Generator(tiny_model_config))
    _, state, metadata = read_generator_file(tmp_path / "g.safetensors")
    write_safetensors(tmp_path / "new.safetensors", state, {**metadata, "format_version": "999"})
    with pytest.raises(CheckpointError, match="newer"):
        load_generator(tmp_path / "new.safetensors")


def test_a_config_edited_to_absurd_sizes_is_refused_before_allocating(tmp_path, tiny_model_config):
    import dataclasses

    # the largest config the bounds allow: 4096 x 1024*8*16 floats (2 GiB) in the first layer alone
    huge = dataclasses.replace(tiny_model_config, z_dim=4096, embed_dim=4096, g_width=1024)
    _hand_written_generator_file(tmp_path / "g.safetensors", Generator(tiny_model_config), huge)
    with pytest.raises(CheckpointError, match="do not fit the model config"):
        load_generator(tmp_path / "g.safetensors")
    beyond = {**dataclasses.asdict(tiny_model_config), "z_dim": 10 ** 10}  # past the bounds: refused by the config
    _hand_written_generator_file(tmp_path / "g.safetensors", Generator(tiny_model_config), beyond)
    with pytest.raises(CheckpointError, match=r"bad model config in metadata \(z_dim=10000000000 is outside"):
        load_generator(tmp_path / "g.safetensors")


def test_generators_are_saved_to_files_only(tmp_path, tiny_model_config):
    from augment.errors import AugmentError, ConfigError

    with pytest.raises(AugmentError, match="is a directory"):
        save_generator(tmp_path, Generator(tiny_model_config))
    with pytest.raises(ConfigError, match="takes an augment Generator"):
        save_generator(tmp_path / "g.safetensors", torch.nn.Linear(2, 2))
    assert list(tmp_path.iterdir()) == []
