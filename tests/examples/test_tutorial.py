"""examples/tutorial.ipynb: it runs top to bottom on tiny budgets (its ``parameters`` cell
overridden, as papermill would), and the committed copy reads on a web page: executed in order,
with its pictures, no errors and no paths of the machine that ran it."""

from __future__ import annotations

import ast
import base64
import re
from pathlib import Path

import nbformat
import pandas as pd
from ipykernel.kernelspec import write_kernel_spec
from nbclient import NotebookClient

from tests.conftest import script_env

NOTEBOOK = Path(__file__).resolve().parents[2] / "examples" / "tutorial.ipynb"
# every budget at its smallest: about a minute on 2 idle cores, most of it fixed costs (the
# evaluator embedding MNIST's 10,000 test digits; each experiment cell testing on them)
TINY = {"TRAIN_STEPS": 2, "EVAL_EVERY": 2, "EVAL_PER_CLASS": 10, "SAMPLE_EVERY": 1, "MIX_REAL_PER_CLASS": 2,
        "EVALUATE_PER_CLASS": 10, "AUDIT": False, "EXPERIMENT_METHODS": ("synthetic",), "EXPERIMENT_STEPS": 1,
        "EXPERIMENT_DIVERSITY_PER_CLASS": 10}
FIGURES = 5  # real digits, losses, the GIF, the two generators' rows, a mixed batch


def parameters(nb: nbformat.NotebookNode) -> dict:
    """The names and default values of the notebook's ``parameters`` cell, its first code cell."""
    code = [c for c in nb.cells if c.cell_type == "code"]
    tagged = [c for c in code if "parameters" in c.metadata.get("tags", [])]
    assert tagged == code[:1], "the first code cell, and it alone, is tagged 'parameters'"
    tree = ast.parse(code[0].source)
    assert all(isinstance(s, ast.Assign) for s in tree.body), "the parameters cell only assigns values"
    return {s.targets[0].id: ast.literal_eval(s.value) for s in tree.body}


def with_parameters(nb: nbformat.NotebookNode, values: dict) -> nbformat.NotebookNode:
    """``nb`` with a cell setting ``values`` right after its parameters cell."""
    unknown = set(values) - set(parameters(nb))
    assert not unknown, f"not parameters of the notebook: {unknown}"
    at = next(i for i, c in enumerate(nb.cells) if c.cell_type == "code") + 1
    cell = nbformat.v4.new_code_cell("\n".join(f"{k} = {v!r}" for k, v in values.items()))
    cell.metadata["tags"] = ["injected-parameters"]
    nb.cells.insert(at, cell)
    return nb


def outputs(nb: nbformat.NotebookNode) -> list:
    return [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]


def images(nb: nbformat.NotebookNode) -> list[bytes]:
    return [base64.b64decode(o.data["image/png"]) for o in outputs(nb) if "image/png" in o.get("data", {})]


def test_the_tutorial_runs_on_tiny_budgets(tmp_path, shared_mnist, monkeypatch):
    nb = with_parameters(nbformat.read(NOTEBOOK, as_version=4),
                         {**TINY, "DATA_DIR": str(shared_mnist), "OUT_DIR": str(tmp_path / "out")})
    # a kernel of this interpreter, whatever kernel named python3 a Jupyter install may hold
    write_kernel_spec(tmp_path / "jupyter" / "kernels" / "augment-test")
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    # a cell's error fails the test with its traceback (CellExecutionError)
    NotebookClient(nb, timeout=600, kernel_name="augment-test", resources={"metadata": {"path": str(tmp_path)}}
                   ).execute(env=script_env())
    run = tmp_path / "out" / "run"
    for name in ("generator.safetensors", "samples.gif", "losses.png", "metrics.jsonl", "checkpoints/last.pt"):
        assert (run / name).is_file(), name
    assert any((run / "tensorboard").iterdir())
    experiment = pd.read_csv(tmp_path / "out" / "experiment" / "results.csv")
    assert list(experiment["method"]) == ["synthetic"]
    assert len(images(nb)) >= FIGURES
    assert not [o for o in outputs(nb) if o.output_type == "error"]


def test_the_committed_notebook_reads_on_a_web_page():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    parameters(nb)
    assert not [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])], "run with its defaults"
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert [c.execution_count for c in code] == list(range(1, len(code) + 1)), "executed top to bottom, once"
    assert not [o for o in outputs(nb) if o.output_type == "error"]
    text = "".join(o.get("text", "") + str(o.get("data", {}).get("text/plain", "")) for o in outputs(nb))
    assert "Traceback" not in text and "Warning" not in text
    assert not re.search(r"(/work/|/home/|/root/|/tmp/|[A-Z]:\\)", text), "no paths of the machine that ran it"
    pictures = images(nb)
    assert len(pictures) >= FIGURES
    assert any(p.startswith(b"GIF89a") for p in pictures), "the GIF of the sample grids, shown inline"
