"""The import rules of ../shared/DESIGN.md ("Never"), checked on the source with ast."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LIBRARY = sorted((ROOT / "augment").glob("*.py"))


def imported_modules(path: Path) -> set[str]:
    """Every module a file imports, anywhere in it (also inside functions), as absolute names;
    ``from . import x`` and ``from .x import y`` become ``augment.x``."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = "augment" + (f".{node.module}" if node.module else "")
                names.update([base] if node.module else [f"augment.{a.name}" for a in node.names])
            else:
                names.add(node.module)
    return names


def test_the_library_never_imports_the_cli_or_the_experiments():
    for path in LIBRARY:
        bad = {m for m in imported_modules(path) if m.split(".")[0] in ("cli", "experiments", "click")}
        assert not bad, f"{path.name} imports {sorted(bad)}"


@pytest.mark.parametrize("name, allowed", [
    ("models", {"augment.config", "augment.errors"}),
    ("losses", set()),
    ("metrics", set()),
    ("ema", set()),
])
def test_pure_modules_know_nothing_of_files_logging_or_training(name, allowed):
    """models and losses know nothing of files, logging or the CLI; metrics takes arrays and
    returns numbers (numpy / torch / scikit-learn and the standard library only)."""
    imports = imported_modules(ROOT / "augment" / f"{name}.py")
    ours = {m for m in imports if m.startswith("augment")}
    assert ours <= allowed, f"{name} imports {sorted(ours - allowed)}"
    forbidden = {"logging", "tqdm", "pandas", "matplotlib", "safetensors", "tensorboard", "PIL", "json",
                 "pathlib", "os", "shutil"}
    assert not {m.split(".")[0] for m in imports} & forbidden, f"{name} imports {sorted(imports)}"


def test_every_library_module_is_one_concept_under_400_lines():
    """DESIGN.md: one concept a module, each well under 400 lines."""
    long = {path.name: n for path in LIBRARY if (n := len(path.read_text().splitlines())) >= 400}
    assert not long, f"split these modules: {long}"


def test_the_checker_sees_relative_and_nested_imports(tmp_path):
    source = tmp_path / "m.py"
    source.write_text("from . import data\nfrom .models import G\ndef f():\n    import cli.dump\n")
    assert imported_modules(source) == {"augment.data", "augment.models", "cli.dump"}
