"""docs/cli.md holds every command's --help as the CLI prints it now."""

import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "docs" / "generate_cli_reference.py"


def test_the_command_reference_is_up_to_date():
    spec = importlib.util.spec_from_file_location("generate_cli_reference", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    text = module.reference()
    assert "## `augment train`" in text and "## `augment data verify`" in text and "--imbalance-ratio" in text
    assert module.OUT.read_text() == text, "docs/cli.md is stale: run python docs/generate_cli_reference.py"
