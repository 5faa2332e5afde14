"""`make reproduce`: execute every notebook at its default parameters, in place, in numeric order.

Each notebook writes its own results/ and figures/; the stored notebook is replaced by its executed
copy so that readers see this run's outputs. Usage: ``python -m nape_utils.experiments.reproduce DIR``.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path


def run_notebooks(notebooks: list[Path]) -> None:
    """Execute each notebook at its default parameters, in place (its folder is the working directory)."""
    import papermill

    for notebook in notebooks:
        start = time.perf_counter()
        print(f"running {notebook.name} …", flush=True)
        papermill.execute_notebook(str(notebook), str(notebook), cwd=str(notebook.parent), progress_bar=False,
                                   kernel_name="python3")
        print(f"  done in {time.perf_counter() - start:.0f} s", flush=True)


def reproduce(folder: str | Path = "notebooks") -> None:
    notebooks = sorted(Path(folder).glob("[0-9][0-9]_*.ipynb"))
    if not notebooks:
        raise SystemExit(f"no numbered notebooks in {folder}")
    run_notebooks(notebooks)


if __name__ == "__main__":
    reproduce(sys.argv[1] if len(sys.argv) > 1 else "notebooks")
