"""Execute the tutorial notebooks and store their outputs (what the docs site shows).

    python docs/notebooks/execute.py                 # every notebook here
    python docs/notebooks/execute.py 01_first_circuit.ipynb

Each notebook runs in a fresh kernel in a temporary folder (its ``runs/`` and spec files go there,
not into ``docs/``), with this checkout's biofa first on ``PYTHONPATH``; its outputs are then
written back with no per-cell metadata (timings, ids of the run), so a re-execution changes the
file only where an output changed. The site never executes them (``mkdocs.yml``: mkdocs-jupyter
with ``execute: false``); ``tests/test_notebooks.py`` executes them with :func:`execute` and checks
what their text claims. Needs the ``dev`` extra (nbclient, ipykernel); the spiking notebook needs
``spiking``.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]


def notebooks() -> list[Path]:
    return sorted(HERE.glob("[0-9][0-9]_*.ipynb"))


def execute(path: Path, cwd: Path, extra_cells: Iterable[str] = (), timeout: int = 600):
    """``path`` executed in a fresh kernel in ``cwd``, with ``extra_cells`` (code) run after its
    own cells; returns the executed notebook (nbformat)."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    for source in extra_cells:
        nb.cells.append(nbformat.v4.new_code_cell(source))
    path_var = os.environ.get("PYTHONPATH", "")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), path_var) if p)}
    saved = os.environ.copy()
    os.environ.clear()
    os.environ.update(env)  # the kernel inherits this process's environment
    try:
        client = NotebookClient(
            nb,
            timeout=timeout,
            kernel_name="python3",
            record_timing=False,
            resources={"metadata": {"path": str(cwd)}},
        )
        client.execute()
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return nb


def store(nb, path: Path) -> None:
    """Write ``nb`` to ``path`` without per-cell metadata (validated first)."""
    import nbformat

    for cell in nb.cells:
        cell.metadata = {}
    nbformat.validate(nb)
    nbformat.write(nb, path)


def main(argv: list[str]) -> int:
    chosen = [HERE / name for name in argv] or notebooks()
    for path in chosen:
        with tempfile.TemporaryDirectory() as tmp:
            nb = execute(path, Path(tmp))
        store(nb, path)
        print(f"{path.name}: {path.stat().st_size // 1024} KiB")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
