"""Every notebook in notebooks/ runs top to bottom in a fresh kernel and draws at least one figure.

The kernel is this interpreter (`sys.executable`), found through a kernelspec written to a temporary
folder, so the notebooks see the same packages as the tests, whatever kernels are installed elsewhere;
it imports gradtx from this checkout. Each notebook is its own test; each cell has a time limit.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import nbformat
import pytest
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
CELL_TIMEOUT_S = 300


@pytest.fixture(scope="session")
def kernel_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A folder holding one kernelspec, "python3", that starts ipykernel in this interpreter."""
    spec = tmp_path_factory.mktemp("kernels") / "python3"
    spec.mkdir()
    pythonpath = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    kernel = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (the test suite's interpreter)",
        "language": "python",
        # Inline figures whatever MPLBACKEND the caller set (Agg would draw nothing into the notebook).
        "env": {"PYTHONPATH": pythonpath, "MPLBACKEND": "module://matplotlib_inline.backend_inline"},
    }
    (spec / "kernel.json").write_text(json.dumps(kernel))
    return str(spec.parent)


def test_notebooks_found() -> None:
    assert NOTEBOOKS, "no notebooks in notebooks/"


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_runs(path: Path, kernel_dir: str) -> None:
    nb = nbformat.read(path, as_version=4)
    assert all(c.get("outputs", []) == [] for c in nb.cells), f"{path.name}: commit it with outputs stripped"

    km = KernelManager(kernel_name="python3", kernel_spec_manager=KernelSpecManager(kernel_dirs=[kernel_dir]))
    client = NotebookClient(
        nb,
        km=km,
        timeout=CELL_TIMEOUT_S,
        startup_timeout=120,
        resources={"metadata": {"path": str(path.parent)}},  # the kernel's working folder
    )
    # Raises CellExecutionError, naming the cell and its traceback, on any error. The kernel manager
    # is ours, so ask for the kernel to be shut down and its sockets closed afterwards.
    client.execute(cleanup_kc=True)

    figures = [
        out
        for cell in nb.cells
        if cell.cell_type == "code"
        for out in cell.outputs
        if "image/png" in out.get("data", {})
    ]
    assert figures, f"{path.name} drew no figure"
