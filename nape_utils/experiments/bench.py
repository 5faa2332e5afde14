"""Benchmarks: scripts that measure speed and write their figures to ``results/bench/``."""
from __future__ import annotations

import json
import platform
import time
from pathlib import Path

import torch

from ..graphs import graph_of, has_fast_path
from ..spaces import get_space


def machine() -> dict:
    return {"python": platform.python_version(), "torch": torch.__version__, "cpu": platform.processor() or platform.machine(),
            "threads": torch.get_num_threads()}


def _rate(space, specs: list[str], profile: str, fast: bool) -> dict:
    graph_of(space, specs[0], profile, fast=fast)  # warm-up: imports and template caches
    start = time.perf_counter()
    for spec in specs:
        graph_of(space, spec, profile, fast=fast)
    seconds = time.perf_counter() - start
    return {"space": space.name, "profile": profile, "path": "fast" if fast else "trace", "n": len(specs),
            "seconds": round(seconds, 4), "graphs_per_second": round(len(specs) / seconds, 1)}


def bench_graphs(spaces: list[str], *, n_fast: int = 1000, n_trace: int = 20, profile: str = "paper", seed: int = 0,
                 out: str | Path = "results/bench/graphs.json") -> dict:
    """CGs per second on one core, per space and per path (fast templates vs build-and-trace)."""
    torch.set_num_threads(1)
    rows = []
    for name in spaces:
        space = get_space(name)
        specs = space.sample_many(max(n_fast, n_trace) + 1, seed=seed)
        if has_fast_path(space):
            rows.append(_rate(space, specs[1:n_fast + 1], profile, fast=True))
        rows.append(_rate(space, specs[1:n_trace + 1], profile, fast=False))
    report = {"benchmark": "graphs", "machine": machine(), "results": rows}
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    return report


def bench_graf(*, n_other: int = 1000, seed: int = 0, out: str | Path = "results/bench/graf.json") -> dict:
    """Seconds to compute GRAF features: all 15,625 NB-201 cells from their spec strings (vectorised),
    and ``n_other`` sampled NB-101 and NB-301 cells (per cell), on one core."""
    from ..predictors.graf import graf_features

    torch.set_num_threads(1)
    rows = []
    nb201 = get_space("nb201")
    cells = {"nb201": nb201.enumerate()}
    for name in ("nb101", "nb301"):
        cells[name] = get_space(name).sample_many(n_other, seed=seed)
    for name, specs in cells.items():
        if not specs:
            continue
        graf_features(name, specs[:2])  # warm-up: imports
        start = time.perf_counter()
        table = graf_features(name, specs)
        seconds = time.perf_counter() - start
        rows.append({"space": name, "n": len(specs), "features": table.shape[1], "seconds": round(seconds, 4),
                     "cells_per_second": round(len(specs) / seconds, 1)})
    report = {"benchmark": "graf", "machine": machine(), "results": rows}
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    return report
