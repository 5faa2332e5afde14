"""Benchmarks: scripts that measure speed and write their figures to ``results/bench/``."""
from __future__ import annotations

import json
import os
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


def bench_predict(model: str | None = None, *, n: int | None = None, workers: int = 2, note: str | None = None,
                  out: str | Path = "results/bench/predict.json") -> dict:
    """Archs per second scoring NB-201 cells (default: all 15,625) end to end — spec → CG at the
    ``paper`` profile → features → prediction — in ``workers`` processes of one thread each (on a
    shared machine a second torch thread slows the encoder several-fold), with each stage's seconds
    summed over the workers. ``model``: a shipped model name or checkpoint (default: an untrained
    GENNAPE, which costs the same). The load average is recorded: timings on a busy machine inflate."""
    from ..predictors.gennape import GENNAPE
    from ..predictors.pretrained import is_hybrid, load_pretrained
    from ..zoo.executors import execute

    if model and is_hybrid(model):
        return bench_predict_hybrid(model, n=n, workers=workers, note=note, out=out)
    estimator = load_pretrained(model)[0] if model else GENNAPE()
    estimator.fitted = True  # timing only: an untrained model does the same work
    specs = get_space("nb201").enumerate()[:n]
    size = -(-len(specs) // (4 * max(workers, 1)))  # a few chunks per worker, so a slow core gets fewer
    chunks = [(i, specs[i:i + size]) for i in range(0, len(specs), size)]
    load_before = os.getloadavg()[0]
    start = time.perf_counter()
    parts = sorted(execute(_predict_chunk, chunks, workers=workers, estimator=estimator))
    seconds = time.perf_counter() - start
    graph_s, encoder_s = sum(p[2] for p in parts), sum(p[3] for p in parts)
    row = {"space": "nb201", "profile": "paper", "n": len(specs), "workers": workers, "threads_per_worker": 1,
           "end_to_end_seconds": round(seconds, 2), "end_to_end_archs_per_second": round(len(specs) / seconds, 1),
           "graphs_seconds": round(graph_s, 2), "graphs_per_second_per_worker": round(len(specs) / graph_s, 1),
           "encoder_seconds": round(encoder_s, 2), "encoder_archs_per_second_per_worker": round(len(specs) / encoder_s, 1)}
    report = {"benchmark": "predict", "machine": machine(), "model": model or "untrained GENNAPE (timing only)",
              "load_average": {"before": round(load_before, 2), "after": round(os.getloadavg()[0], 2),
                               "cores": os.cpu_count()},
              "note": note or _load_note(load_before), "results": [row]}
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    return report


def bench_predict_hybrid(model: str, *, n: int | None = None, workers: int = 2, note: str | None = None,
                         out: str | Path = "results/bench/predict_hybrid.json") -> dict:
    """Seconds to score NB-201 cells (default: all 15,625) with a hybrid model end to end: each cell's network
    built, its FLOPs, parameters and proxies computed (``workers`` processes, one torch thread each), then the
    pool ranked. Per-feature seconds are summed over the workers."""
    from ..predictors.hybrid import pool_features
    from ..predictors.pretrained import load_pretrained

    estimator = load_pretrained(model)[0]
    specs = get_space("nb201").enumerate()[:n]
    load_before = os.getloadavg()[0]
    start = time.perf_counter()
    pool = pool_features("nb201", specs, estimator.config.features, workers=workers)
    features_s = time.perf_counter() - start
    estimator.predict(pool, space="nb201")
    seconds = time.perf_counter() - start
    row = {"space": "nb201", "profile": "zoo", "n": len(specs), "workers": workers, "threads_per_worker": 1,
           "features": list(estimator.config.features), "end_to_end_seconds": round(seconds, 2),
           "end_to_end_archs_per_second": round(len(specs) / seconds, 1), "features_seconds": round(features_s, 2),
           "rank_seconds": round(seconds - features_s, 2)}
    report = {"benchmark": "predict", "machine": machine(), "model": model,
              "load_average": {"before": round(load_before, 2), "after": round(os.getloadavg()[0], 2),
                               "cores": os.cpu_count()},
              "note": note or _load_note(load_before), "results": [row]}
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    return report


def _load_note(load: float) -> str | None:
    """A warning for the report when other work competed for the cores."""
    cores = os.cpu_count() or 1
    if load <= 0.5 * cores:
        return None
    return f"shared machine: 1-minute load average {load:.1f} on {cores} cores when the run began; timings are inflated"


def _predict_chunk(chunk: tuple[int, list[str]], estimator) -> tuple:
    """(chunk index, predictions, seconds building CGs, seconds featurizing and predicting)."""
    torch.set_num_threads(1)
    index, specs = chunk
    start = time.perf_counter()
    graphs = [graph_of("nb201", s, "paper") for s in specs]
    built = time.perf_counter()
    predictions = estimator.predict(graphs)
    return index, predictions, built - start, time.perf_counter() - built


def _pilot_labels(store: str | Path):
    """(space, spec) → seed-mean test accuracy (``label``) and mean seconds of one training run
    (``train_seconds``) at the store's largest budget (archs with every seed of their family), and
    the store's task configuration. Read through an immutable connection: the store file is never touched."""
    import sqlite3

    import pandas as pd

    path = Path(store)
    if not path.is_file():
        raise FileNotFoundError(f"no zoo store at {path}; give a store built by `nape zoo build`")
    db = sqlite3.connect(f"file:{path.resolve()}?immutable=1", uri=True)
    try:
        runs = pd.read_sql_query("SELECT space, spec, seed, budget, test_accuracy, seconds FROM runs", db)
        config = json.loads(db.execute("SELECT value FROM config WHERE key = 'zoo'").fetchone()[0])
    finally:
        db.close()
    from ..zoo.export import complete_runs

    runs = runs[runs["budget"] == runs["budget"].max()]
    runs = complete_runs(runs)
    labels = runs.groupby(["space", "spec"]).agg(label=("test_accuracy", "mean"), train_seconds=("seconds", "mean"))
    return labels.reset_index(), config.get("task", {})


def bench_rwe(spaces: list[str] | None = None, *, n: int = 5, n_train: int = 1000, seed: int = 0,
              store: str | Path = "results/zoo/zoo.sqlite", rank_archs: int | None = 60,
              out: str | Path = "results/bench/rwe.json") -> dict:
    """RWE on one core: wall and CPU seconds per network (build, features, fit, validation) for ``n``
    sampled specs of every family (default: all of ``space_names()``; one more spec is scored first as a
    warm-up, so the task's rendering is not timed), and Spearman ρ of RWE against the trained labels
    (seed-mean test accuracy) of every family in the zoo ``store``, beside the mean seconds of one of its
    training runs; on the store's own task and, where it differs, on the current default task. The
    ranking uses at most ``rank_archs`` labelled archs per family (a subset drawn with ``seed``; None: all),
    so the benchmark's cost stays bounded as the zoo grows."""
    from dataclasses import asdict

    import numpy as np

    from ..data.task import TaskConfig
    from ..metrics import spearman
    from ..predictors.rwe import RWE
    from ..spaces import space_names

    if rank_archs is not None and rank_archs < 2:
        raise ValueError(f"rank_archs must be at least 2 (a rank correlation needs two archs) or None, got {rank_archs}")
    torch.set_num_threads(1)
    timing = []
    for name in spaces or space_names():
        est = RWE(n_train=n_train, seed=seed)
        specs = get_space(name).sample_many(n + 1, seed=seed)
        est.score(name, specs[0])  # warm-up: imports, task rendering
        wall, cpu, acc = [], [], []
        for spec in specs[1:]:  # wall time suffers from other processes on the machine; CPU time does not
            start, start_cpu = time.perf_counter(), time.process_time()
            acc.append(est.score(name, spec))
            wall.append(time.perf_counter() - start)
            cpu.append(time.process_time() - start_cpu)
        timing.append({"space": name, "n": len(wall), "seconds_mean": round(float(np.mean(wall)), 3),
                       "seconds_max": round(float(np.max(wall)), 3), "cpu_seconds_mean": round(float(np.mean(cpu)), 3),
                       "cpu_seconds_max": round(float(np.max(cpu)), 3), "rwe_accuracy_mean": round(float(np.mean(acc)), 2)})
    labels, store_task = _pilot_labels(store)
    if rank_archs is not None:
        keep = [g.sample(n=min(len(g), rank_archs), random_state=seed).index for _, g in labels.groupby("space")]
        labels = labels.loc[[i for index in keep for i in index]]
    ranking = []
    tasks = {"store": TaskConfig.from_dict(store_task), "default": TaskConfig()}
    if tasks["store"] == tasks["default"]:
        del tasks["default"]
    for task_name, task in tasks.items():
        est = RWE(n_train=min(n_train, task.n_train), seed=seed, task=task)
        for name, group in labels.groupby("space"):
            table = est.score_specs(name, group["spec"].tolist(), progress=False)
            scores = table["rwe_accuracy"].to_numpy()
            ok = np.isfinite(scores)
            ranking.append({"space": name, "task": task_name, "n": int(ok.sum()),
                            "spearman": round(spearman(group["label"].to_numpy()[ok], scores[ok]), 3),
                            "rwe_accuracy_mean": round(float(np.nanmean(scores)), 2),
                            "rwe_accuracy_std": round(float(np.nanstd(scores)), 2),
                            "train_seconds_mean": round(float(group["train_seconds"].mean()), 2)})
    report = {"benchmark": "rwe", "machine": machine(),
              "params": {"n_train": n_train, "seed": seed, "profile": "zoo", "store": str(store), "rank_archs": rank_archs,
                         "store_task": store_task, "default_task": asdict(TaskConfig())},
              "results": timing, "ranking": ranking}
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    return report
