"""Every tutorial notebook runs top to bottom, as a reader would run it.

Each ``tutorials/*.ipynb`` (the glob picks up new notebooks automatically) is executed with
nbclient in a fresh kernel whose environment has ``CONCRETE_TUTORIAL_BUDGET=small``, the
budget under which a notebook shrinks its sample sizes and step counts to run in seconds,
unless the variable is already set (``make tutorials`` sets it to ``full``).  A test fails if
any cell raises; the last cell of each notebook checks the numbers its text states against
what its cells computed (``tutorials/claims.py``), skipping by name, at the small budget, the
claims that hold only at the full one.  The kernel is this interpreter (``sys.executable``), so
the notebooks see the packages under test whatever kernelspecs the machine has installed.
Tutorials that need binarized MNIST find it through ``CONCRETE_MNIST``, passed through
from the environment (the Makefile sets it when ``../shared/data/`` beside the clone holds the
file); a notebook that mentions ``CONCRETE_MNIST`` is skipped, with the reason shown, when that
variable does not name a file: the test suite never downloads the data set.

A second, fast test checks that each notebook is stored the way it is committed: no
outputs or execution counts, a markdown cell first, and a budget switch.
"""

import json
import os
import sys
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

TUTORIALS = Path(__file__).resolve().parents[2] / "tutorials"
NOTEBOOKS = sorted(TUTORIALS.glob("*.ipynb"))
CELL_TIMEOUT_S = 1800  # generous: a cell takes seconds on the small budget, minutes on the full
KERNEL_NAME = "concrete-tutorials-test"


@pytest.fixture(scope="module")
def kernel_env(tmp_path_factory):
    """Environment for the kernel: small budget, and a kernelspec that runs this interpreter."""
    jupyter_path = tmp_path_factory.mktemp("jupyter")
    spec_dir = jupyter_path / "kernels" / KERNEL_NAME
    spec_dir.mkdir(parents=True)
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "concrete-ppl tutorials (test)",
        "language": "python",
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec))
    env = dict(os.environ)
    env["CONCRETE_TUTORIAL_BUDGET"] = os.environ.get("CONCRETE_TUTORIAL_BUDGET", "small")
    search_path = [str(jupyter_path), env.get("JUPYTER_PATH")]
    env["JUPYTER_PATH"] = os.pathsep.join(p for p in search_path if p)
    return env


def test_tutorials_exist():
    assert NOTEBOOKS, f"no notebooks found in {TUTORIALS}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_is_stored_clean(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    assert nb.cells and nb.cells[0].cell_type == "markdown", "first cell must say what it shows"
    for index, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            assert not cell.outputs, f"cell {index} has stored outputs: strip them"
            assert cell.execution_count is None, f"cell {index} has an execution count"
    sources = "\n".join(cell.source for cell in nb.cells)
    assert "CONCRETE_TUTORIAL_BUDGET" in sources, "a tutorial must read CONCRETE_TUTORIAL_BUDGET"


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_runs_top_to_bottom(path, kernel_env, monkeypatch):
    nb = nbformat.read(path, as_version=4)
    mnist = os.environ.get("CONCRETE_MNIST", "")
    if any("CONCRETE_MNIST" in cell.source for cell in nb.cells) and not Path(mnist).is_file():
        pytest.skip(f"{path.name} needs binarized MNIST: set CONCRETE_MNIST")
    # The kernelspec manager reads JUPYTER_PATH from this process; the kernel gets `env`.
    monkeypatch.setenv("JUPYTER_PATH", kernel_env["JUPYTER_PATH"])
    client = nbclient.NotebookClient(
        nb,
        timeout=CELL_TIMEOUT_S,
        kernel_name=KERNEL_NAME,
        resources={"metadata": {"path": str(TUTORIALS)}},
    )
    client.execute(env=kernel_env)  # raises CellExecutionError, naming the cell, if one fails
