"""The import rules of ../shared/DESIGN.md ("Never"), per subpackage, checked on the source with ast."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "augment"
LIBRARY = sorted(PACKAGE.rglob("*.py"))
SUBPACKAGES = ("data", "gan", "training", "synthetic", "evaluation", "downstream")

# what each part of the library may import of the library (besides itself); "root" = the
# top-level modules of augment (config, errors, checks, fileio, device, torchrun, images, ...)
ALLOWED = {
    "root": {"root"},
    "data": {"root"},
    "gan": {"augment.config", "augment.errors"},
    "training": {"root", "data", "gan"},
    "synthetic": {"root", "gan"},
    "evaluation": {"root", "data", "synthetic"},
    "downstream": {"root", "data", "gan", "training", "synthetic", "evaluation"},
}
# the one root module that builds a model: a generator file alone rebuilds its Generator
ROOT_EXCEPTIONS = {"checkpoint.py": {"gan"}, "__main__.py": {"cli"}}


def imported_modules(path: Path) -> set[str]:
    """Every module a file imports, anywhere in it (also inside functions), as absolute names;
    ``from augment.x import y`` gives ``augment.x.y`` when ``augment.x`` is a package (``y`` may
    be a module), and relative imports are resolved against the file's package."""
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1])
                module = base + (f".{node.module}" if node.module else "")
            else:
                module = node.module
            names.add(module)
            if module == "augment" or module.removeprefix("augment.") in SUBPACKAGES:
                names.update(f"{module}.{a.name}" for a in node.names)
    return names


def part_of(module: str) -> str:
    """'root', a subpackage's name, or 'cli', for a module name inside augment."""
    parts = module.split(".")
    if len(parts) == 1:
        return "root"
    if parts[1] in SUBPACKAGES or parts[1] == "cli":
        return parts[1]
    return "root"


def ours(path: Path) -> set[str]:
    return {m for m in imported_modules(path) if m == "augment" or m.startswith("augment.")}


@pytest.mark.parametrize("path", LIBRARY, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_each_module_imports_only_what_its_subpackage_may(path):
    where = "root" if path.parent == PACKAGE else path.parent.name
    allowed = ALLOWED[where] | {where} | (ROOT_EXCEPTIONS.get(path.name, set()) if where == "root" else set())
    inside_gan = where == "gan"  # gan/ may import only config and errors, and itself
    bad = sorted(m for m in ours(path) - {"augment"}
                 if part_of(m) not in allowed and m not in allowed and not (inside_gan and m.startswith("augment.gan")))
    assert not bad, f"{path.relative_to(ROOT)} ({where}) imports {bad}; it may import {sorted(allowed)}"


def test_the_library_never_imports_the_cli_or_the_experiments_and_only_the_cli_imports_click():
    for path in LIBRARY:
        if path.name == "__main__.py":
            continue
        bad = {m for m in imported_modules(path)
               if m.split(".")[0] in ("cli", "experiments", "click") or m.startswith("augment.cli")}
        assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}"


@pytest.mark.parametrize("path", sorted((PACKAGE / "gan").glob("*.py")) + [PACKAGE / "evaluation" / "metrics.py"],
                         ids=lambda p: str(p.relative_to(PACKAGE)))
def test_pure_modules_know_nothing_of_files_logging_or_training(path):
    """gan/ knows nothing of files, logging or the CLI; evaluation/metrics takes arrays and
    returns numbers (numpy / torch and the standard library only, and augment.checks)."""
    imports = imported_modules(path)
    if path.name == "metrics.py":
        assert ours(path) <= {"augment.checks"}, f"metrics imports {sorted(ours(path))}"
    forbidden = {"logging", "tqdm", "pandas", "matplotlib", "safetensors", "tensorboard", "PIL", "json",
                 "pathlib", "os", "shutil"}
    assert not {m.split(".")[0] for m in imports} & forbidden, f"{path.name} imports {sorted(imports)}"


def test_every_library_module_is_one_concept_under_400_lines():
    """DESIGN.md: one concept a module, each well under 400 lines."""
    long = {str(path.relative_to(PACKAGE)): n for path in LIBRARY if (n := len(path.read_text().splitlines())) >= 400}
    assert not long, f"split these modules: {long}"


@pytest.mark.parametrize("name", SUBPACKAGES)
def test_each_subpackage_says_what_it_owns_and_what_it_may_import(name):
    doc = ast.get_docstring(ast.parse((PACKAGE / name / "__init__.py").read_text()))
    assert doc and "May import" in doc, f"augment/{name}/__init__.py needs a docstring saying what it owns and imports"


def test_no_two_modules_share_a_name():
    """Names a reader could confuse: a module name appears once in the package."""
    stems = [p.stem for p in LIBRARY if p.stem not in ("__init__", "__main__")]
    assert len(stems) == len(set(stems)), sorted(s for s in stems if stems.count(s) > 1)


def test_no_subpackage_shadows_an_exported_name():
    """``augment.train`` is a function: a subpackage ``augment/train/`` would shadow it."""
    import augment

    assert not set(SUBPACKAGES) & set(augment.__all__)


def test_the_checker_sees_relative_and_nested_imports(tmp_path):
    package = tmp_path / "augment" / "synthetic"
    package.mkdir(parents=True)
    source = package / "m.py"
    source.write_text("from . import latents\nfrom ..gan.models import G\nfrom augment.data import real\n"
                      "def f():\n    import cli.dump\n")
    global ROOT
    saved, ROOT = ROOT, tmp_path
    try:
        assert imported_modules(source) == {"augment.synthetic", "augment.synthetic.latents", "augment.gan.models",
                                            "augment.data", "augment.data.real", "cli.dump"}
    finally:
        ROOT = saved
