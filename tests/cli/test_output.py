"""One output style (``cli.output``): a sentence for people by default, ``--json`` (one JSON
object on stdout, the same facts) on every command; an existing output file refused unless
``--overwrite``."""

import functools
import json

import click
from click.testing import CliRunner

from augment.cli import main
from tests.conftest import write_idx_dir


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def _commands(group: click.Group, path: str = ""):
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            yield from _commands(command, f"{path}{name} ")
        else:
            yield f"{path}{name}", command


def test_every_command_has_json():
    names = {name for name, command in _commands(main) if any("--json" in p.opts for p in command.params)}
    assert names == {name for name, _ in _commands(main)}
    assert {"train", "sample", "export", "dump", "evaluate", "train-classifier", "experiment", "data fetch",
            "data verify"} <= names


def test_sample_replaces_an_existing_grid_only_with_overwrite(tmp_path, generator_file):
    out = tmp_path / "grid.png"
    out.write_bytes(b"mine")
    result = run("sample", generator_file, "-o", out, "--per-class", 1)
    assert result.exit_code == 1 and result.output == (f"Error: output {out} exists; pass --overwrite to replace "
                                                       f"it or choose another name\n")
    assert out.read_bytes() == b"mine"
    result = run("sample", generator_file, "-o", out, "--per-class", 1, "--overwrite")
    assert result.exit_code == 0 and result.output == f"wrote {out}\n" and out.read_bytes()[:4] == b"\x89PNG"


def test_verify_says_classes_and_size_for_idx_as_for_npz(tmp_path):
    root = write_idx_dir(tmp_path / "d")
    result = run("data", "verify", root, "--dataset", "idx")
    assert result.exit_code == 0, result.output
    assert result.output == (f"ok: {root} (idx): 80 train and 40 test images (its own test split), 28x28 pixels, "
                             f"10 classes: 0, 1, 2, 3, 4, 5, 6, 7, 8, 9\n")
    facts = json.loads(run("data", "verify", root, "--dataset", "idx", "--json").output)
    assert facts["dataset"] == "idx" and facts["classes"] == [str(c) for c in range(10)]
    assert facts["image_size"] == [28, 28]


def test_fetch_says_in_one_line_where_the_files_came_from(tmp_path, shared_mnist, monkeypatch):
    """The first mirror is down: no line about it (--verbose has them), one line of what worked."""
    import augment.data.fetch as fetch

    good = shared_mnist.resolve().as_uri() + "/"
    monkeypatch.setattr(fetch, "fetch_mnist", functools.partial(fetch.fetch_mnist,
                                                                mirrors=("http://127.0.0.1:9/", good)))
    result = CliRunner().invoke(main, ["data", "fetch", "--dest", str(tmp_path / "m"), "--timeout", "2"])
    assert result.exit_code == 0, result.output
    assert result.output == (f"MNIST is in {tmp_path / 'm'}, its 4 files SHA-256 checked: 4 from {good} "
                             f"(after 1 source failed; --verbose says why)\n")
    result = CliRunner().invoke(main, ["data", "fetch", "--dest", str(tmp_path / "m"), "--json"])
    assert json.loads(result.output) == {"dest": str(tmp_path / "m"), "failures": [], "replaced": [],
                                         "source": dict.fromkeys(fetch.MNIST_FILES, "present")}
