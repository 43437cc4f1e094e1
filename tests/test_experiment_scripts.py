"""The scripts in experiments/ call the library; their measurements are run by hand (see
experiments/README.md), so this checks only that each Python script still imports and parses its
options, that each shell script parses, and that the README lists exactly the scripts that are
there: a library refactor cannot break them unnoticed, and a removed one-off study leaves no row
pointing at nothing."""

import re
import subprocess
import sys
from pathlib import Path

from tests.conftest import script_env

ROOT = Path(__file__).resolve().parents[1]
EXPERIMENTS = ROOT / "experiments"
SCRIPTS = sorted(EXPERIMENTS.glob("*.py"))
SHELL_SCRIPTS = sorted(EXPERIMENTS.glob("*.sh"))

# one process for all of them: torch is imported once
HELP_EACH = """
import contextlib, io, runpy, sys
failed = []
for path in sys.argv[1:]:
    sys.argv, out = [path, "--help"], io.StringIO()
    try:
        with contextlib.redirect_stdout(out):
            runpy.run_path(path, run_name="__main__")
    except SystemExit as e:
        if e.code not in (0, None) or "usage" not in out.getvalue():
            failed.append(f"{path}: exit {e.code}, output {out.getvalue()[:200]!r}")
    except BaseException as e:
        failed.append(f"{path}: {type(e).__name__}: {e}")
    else:
        failed.append(f"{path}: did not stop at --help")
print("\\n".join(failed))
sys.exit(1 if failed else 0)
"""


def test_every_experiment_script_imports_and_shows_its_options():
    assert SCRIPTS
    r = subprocess.run([sys.executable, "-c", HELP_EACH, *map(str, SCRIPTS)], cwd=ROOT, env=script_env(),
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]


def test_every_shell_script_parses():
    for script in SHELL_SCRIPTS:
        r = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, f"{script.name}: {r.stderr}"


def test_the_readme_links_exactly_the_scripts_that_are_there():
    readme = (EXPERIMENTS / "README.md").read_text()
    linked = set(re.findall(r"\]\(([\w.-]+\.(?:py|sh))\)", readme))  # [name](name): a script in this folder
    present = {p.name for p in [*SCRIPTS, *SHELL_SCRIPTS]}
    assert linked == present, f"README rows without a script: {sorted(linked - present)}; " \
                              f"scripts without a README row: {sorted(present - linked)}"
