"""`nape sweep`: one notebook over a parameter grid, one results directory per point."""
from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

from ..zoo.executors import execute
from .runner import check_parameters, parse_value, run_notebook


def parse_grid(items: list[str]) -> dict[str, list[Any]]:
    """``["lr=0.1,0.01", "seed=0,1"]`` → ``{"lr": [0.1, 0.01], "seed": [0, 1]}``."""
    grid: dict[str, list[Any]] = {}
    for item in items:
        name, sep, values = item.partition("=")
        name = name.strip()
        if not sep or not name or not values:
            raise ValueError(f"--grid {item!r}: write NAME=v1,v2,…")
        if name in grid:
            raise ValueError(f"--grid names {name} twice: give all its values once, e.g. {name}=v1,v2")
        if any(not v.strip() for v in values.split(",")):
            raise ValueError(f"--grid {item!r}: a value of {name} is empty; write {name}=v1,v2 without a stray comma")
        grid[name] = [parse_value(v) for v in values.split(",")]
    return grid


def grid_points(grid: dict[str, list[Any]]) -> list[dict[str, Any]]:
    names = list(grid)
    return [dict(zip(names, values)) for values in itertools.product(*grid.values())]


def _run_point(params: dict[str, Any], notebook: str, results_root: str) -> str:
    name = "-".join(f"{k}={v}" for k, v in params.items()).replace("/", "_")
    return str(run_notebook(notebook, params, results_root=results_root, run_name=f"sweep-{name}"))


def sweep(notebook: str | Path, grid: dict[str, list[Any]], *, results_root: str | Path = "results",
          workers: int = 1, scheduler: str | None = None, progress: bool = True) -> list[str]:
    """Run every grid point (all checked before any runs); returns the run directories."""
    from tqdm.auto import tqdm

    points = grid_points(grid)
    for point in points:
        check_parameters(notebook, point)
    runs = execute(_run_point, points, workers=workers, scheduler=scheduler, notebook=str(Path(notebook).resolve()),
                   results_root=str(Path(results_root).resolve()))
    return sorted(tqdm(runs, total=len(points), desc="sweep", disable=not progress))
