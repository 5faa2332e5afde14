"""The ``nape`` command: a thin skin over nape_utils (see DESIGN.md for the contract).

Errors go to standard error with exit status 2 (bad input) or 1 (anything else)."""
from __future__ import annotations

import argparse
import contextlib
import csv
import os
import sys
from pathlib import Path


def _read_archs(path: str) -> list[str]:
    """Specs from a file (one per line, or a CSV with a ``spec`` column); ``-`` reads standard input."""
    if path == "-":
        lines = sys.stdin.read().splitlines()
    else:
        file = Path(path)
        if not file.is_file():
            raise ValueError(f"--archs {path}: no such file (give one spec per line, or - for standard input)")
        if file.suffix == ".csv":
            with file.open(newline="") as handle:
                reader = csv.DictReader(handle)
                if "spec" not in (reader.fieldnames or []):
                    raise ValueError(f"--archs {path}: a CSV needs a 'spec' column, found {reader.fieldnames}")
                return [row["spec"] for row in reader]
        lines = file.read_text().splitlines()
    specs = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    if not specs:
        raise ValueError(f"--archs {path}: no specs found (one spec per line)")
    return specs


def _out(path: str | None):
    """A file to write, or standard output (left open) when no path or ``-`` is given."""
    return open(path, "w", newline="") if path and path != "-" else contextlib.nullcontext(sys.stdout)


def cmd_spaces(args) -> None:
    from .spaces import space_names

    print("\n".join(space_names()))


def cmd_sample(args) -> None:
    from .spaces import get_space

    if args.n < 0:
        raise ValueError("-n must be zero or more")
    print("\n".join(get_space(args.space).sample_many(args.n, seed=args.seed)))


def cmd_describe(args) -> None:
    from .graphs import graph_of
    from .spaces import get_space

    space = get_space(args.space)
    space.profile(args.profile)
    from tqdm.auto import tqdm

    specs = _read_archs(args.archs)
    with _out(args.out) as handle:
        writer = csv.writer(handle)
        writer.writerow(["spec", "params", "flops", "nodes", "edges"])
        for i, spec in enumerate(tqdm(specs, desc="describe", disable=len(specs) < 50), 1):
            try:
                graph = graph_of(space, spec, args.profile)
            except ValueError as err:
                raise ValueError(f"--archs line {i}: {err}") from None
            writer.writerow([graph.meta["spec"], graph.params, graph.flops, graph.n_nodes, graph.n_edges])


def cmd_proxies(args) -> None:
    from .predictors.proxies import score_specs

    specs = _read_archs(args.archs)
    frame = score_specs(args.space, specs, args.proxies, batch_size=args.batch_size, profile=args.profile,
                        seed=args.seed, data=args.data, progress=True)
    with _out(args.out) as handle:
        frame.to_csv(handle, index=False)


def cmd_graf(args) -> None:
    from .predictors.graf import graf_table

    table = graf_table(args.space, _read_archs(args.archs), profile=args.profile, generic=args.generic)
    with _out(args.out) as handle:
        table.to_csv(handle, index=False)


def cmd_rwe(args) -> None:
    from .predictors.rwe import rwe_scores

    frame = rwe_scores(args.space, _read_archs(args.archs), progress=not args.quiet, n_train=args.n_train,
                       seed=args.seed, size=args.size, profile=args.profile)
    with _out(args.out) as handle:
        frame.to_csv(handle, index=False)


def cmd_predict(args) -> None:
    import torch

    from .graphs import graph_of
    from .predictors.pretrained import default_profile, is_hybrid, load_pretrained
    from .spaces import get_space

    torch.set_num_threads(1)  # small sparse batches: one thread is several times faster on a busy machine
    space = get_space(args.space)
    model, _ = load_pretrained(args.model)
    specs = []
    for i, spec in enumerate(_read_archs(args.archs), 1):
        try:
            specs.append(space.canonical(spec))
        except ValueError as err:
            raise ValueError(f"--archs line {i}: {err}") from None
    if is_hybrid(args.model):
        predictions = _hybrid_predictions(model, space.name, specs, args)
    else:
        if args.labels:
            raise ValueError("--labels calibrates a hybrid model; GENNAPE models are fine-tuned in Python "
                             "(GENNAPE.fine_tune)")
        profile = args.profile or default_profile(space.name)
        predictions = model.predict([graph_of(space, s, profile) for s in specs])  # batches CGs directly
    with _out(args.out) as handle:
        writer = csv.writer(handle)
        writer.writerow(["spec", "prediction"])
        for spec, value in zip(specs, predictions):
            writer.writerow([spec, f"{value:.4f}"])


def _hybrid_predictions(model, space: str, specs: list[str], args):
    """Rank scores of a hybrid model for the pool ``specs`` (calibrated on ``--labels`` when given)."""
    import numpy as np

    from .predictors.hybrid import pool_features

    if len(set(specs)) != len(specs):
        raise ValueError("--archs lists an architecture twice; a hybrid model ranks a pool of distinct architectures")
    pool = pool_features(space, specs, model.config.features, profile=args.profile or "zoo", workers=args.workers,
                         progress=not args.quiet)
    if not args.labels:
        return model.predict(pool, space=space)
    labels = _read_labels(args.labels, space)
    where = {s: i for i, s in enumerate(specs)}
    absent = [s for s in labels if s not in where]
    if absent:
        raise ValueError(f"--labels: {len(absent)} labelled spec(s) are not in --archs (first: {absent[0][:60]}); "
                         "the labelled architectures must be part of the pool")
    return model.calibrate(pool, np.array([where[s] for s in labels]), np.array(list(labels.values())), space=space)


def _read_labels(path: str, space_name: str) -> dict[str, float]:
    """canonical spec → accuracy from a CSV with columns spec and accuracy."""
    from .spaces import get_space

    file = Path(path)
    if not file.is_file():
        raise ValueError(f"--labels {path}: no such file (a CSV with columns spec and accuracy)")
    with file.open(newline="") as handle:
        reader = csv.DictReader(handle)
        if not {"spec", "accuracy"} <= set(reader.fieldnames or []):
            raise ValueError(f"--labels {path}: needs columns spec and accuracy, found {reader.fieldnames}")
        space = get_space(space_name)
        labels = {}
        for i, row in enumerate(reader, 2):
            try:
                labels[space.canonical(row["spec"])] = float(row["accuracy"])
            except ValueError as err:
                raise ValueError(f"--labels {path} line {i}: {err}") from None
    return labels


def cmd_graph(args) -> None:
    from .graphs import graph_of

    graph = graph_of(args.space, args.spec, args.profile)
    path = graph.save(args.out)
    print(f"{path}: {graph}", file=sys.stderr)


def cmd_run(args) -> None:
    import yaml

    from .experiments.runner import parse_value, run_notebook

    params: dict = {}
    if args.file:
        loaded = yaml.safe_load(Path(args.file).read_text()) or {}
        if not isinstance(loaded, dict):
            raise ValueError(f"-f {args.file}: expected a YAML mapping of parameter names to values")
        params.update(loaded)
    params.update({name: parse_value(value) for name, value in args.parameter or []})
    run_dir = run_notebook(args.notebook, params, results_root=args.results)
    print(run_dir)


def cmd_bench(args) -> None:
    import json

    from .experiments.bench import bench_graf, bench_graphs, bench_predict, bench_rwe

    if args.what == "graphs":
        spaces = args.spaces or "nb101,nb201,nb301"
        report = bench_graphs(spaces.split(","), n_fast=args.n, out=args.out or "results/bench/graphs.json")
    elif args.what == "rwe":
        report = bench_rwe(args.spaces.split(",") if args.spaces else None, n=args.n if args.n != 1000 else 5,
                           rank_archs=args.rank_archs or None, out=args.out or "results/bench/rwe.json")
    elif args.what == "predict":
        from .predictors.pretrained import is_hybrid

        default = "results/bench/predict_hybrid.json" if args.model and is_hybrid(args.model) else "results/bench/predict.json"
        report = bench_predict(args.model, n=args.n if args.n != 1000 else None, workers=args.workers,
                               out=args.out or default)
    else:
        report = bench_graf(n_other=args.n, out=args.out or "results/bench/graf.json")
    for row in report["results"] + report.get("ranking", []):
        print(json.dumps(row))


def cmd_data(args) -> None:
    from .data import benchmarks, download

    if args.action == "list":
        print(f"{'name':<17} {'file':<24} {'size':>9}  status")
        for row in benchmarks.data_status(args.dir):
            size = "-" if row["size"] is None else f"{row['size'] / 1e6:.1f} MB"
            print(f"{row['name']:<17} {row['file']:<24} {size:>9}  {row['status']}")
        return
    if not args.name:
        raise ValueError(f"nape data fetch NAME: give one of {', '.join([*download.REGISTRY, *download.BUNDLES])}")
    try:  # a benchmark published in several files (download.BUNDLES) fetches them all
        paths = download.fetch_all(args.name, args.dir, log=lambda line: print(line, file=sys.stderr))
    except download.DownloadError as err:
        print(f"nape data: error: {err}", file=sys.stderr)
        raise SystemExit(1) from None
    print("\n".join(map(str, paths)))


def _counted(least: int):
    """An argparse type: an integer of at least ``least`` (argparse names the option in its error)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < least:
            raise argparse.ArgumentTypeError(f"expected an integer of at least {least}, got {value}")
        return value
    parse.__name__ = "positive integer" if least > 0 else "non-negative integer"
    return parse


POSITIVE, NON_NEGATIVE = _counted(1), _counted(0)


def _int_list(text: str, what: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ValueError(f"{what} takes comma-separated integers, got {text!r}") from None
    if any(v < 0 for v in values) or len(set(values)) < len(values):
        raise ValueError(f"{what} takes distinct non-negative integers, got {text!r}")
    return values


def _seeds_of(spaces: list[str], options: list[str]) -> dict[str, list[int]]:
    """--seeds values → seeds per family: ``0,1`` for every family, ``hiaml=0,1,2`` for one (later wins)."""
    seeds: dict[str, list[int]] = {}
    for option in options:
        family, sep, values = option.rpartition("=")
        if sep and not family.strip():
            raise ValueError(f"--seeds {option}: name the family before '=', e.g. --seeds ofa_mbv3=0,1,2")
        if not family:
            seeds.update({name: _int_list(values, "--seeds") for name in spaces})
        elif family not in spaces:
            raise ValueError(f"--seeds {option}: {family} is not among the families built ({', '.join(spaces)})")
        else:
            seeds[family] = _int_list(values, f"--seeds {family}=")
    missing = [name for name in spaces if not seeds.get(name)]
    if missing:
        raise ValueError(f"no seeds for {', '.join(missing)}: give --seeds 0,1 (every family) or --seeds FAMILY=0,1")
    return seeds


def cmd_zoo(args) -> None:
    from . import zoo

    if args.action == "build":
        spaces = [name.strip() for name in args.spaces.split(",") if name.strip()] if args.spaces else list(zoo.ZOO_SPACES)
        if not spaces:
            raise ValueError(f"--spaces {args.spaces!r} names no family; e.g. --spaces nb201,hiaml")
        jobs = zoo.plan(spaces, args.archs, _seeds_of(spaces, args.seeds or ["0,1"]), sample_seed=args.sample_seed)
        config = zoo.TrainConfig(epochs=args.epochs)
        ran = zoo.build_zoo(jobs, args.store, config, workers=args.workers, scheduler=args.scheduler)
        print(f"{ran} runs trained, {len(jobs) - ran} already in {args.store}", file=sys.stderr)
    elif args.action == "status":
        with zoo.ZooStore(args.store, readonly=True) as store:
            runs = store.runs()
        if runs.empty:
            print("no runs yet")
            return
        table = runs.pivot_table(index=["space", "budget"], columns="seed", values="spec", aggfunc="count", fill_value=0)
        print(table.astype(int).to_string())
        # what an export made now would hold: a build can watch its families' reliability as they grow
        budgets = sorted(int(b) for b in runs["budget"].unique())
        budget = budgets[-1] if args.budget is None else args.budget
        try:
            quality = zoo.label_quality(zoo.to_dataset(runs, budget))
        except zoo.NothingComplete as err:  # counts are worth printing even before any architecture is complete
            print(f"\nno label quality yet: {err}")
            return
        if len(budgets) > 1:
            print(f"\nthe store holds budgets of {', '.join(map(str, budgets))} epochs; --budget picks one")
        print(f"\nlabel quality of the complete architectures at {budget} epochs (reliability must reach 0.8):")
        print(quality[["archs", "seeds", "non_degenerate", "seed_spearman", "seed_mean_reliability", "acc_mean",
                       "acc_std"]].to_string())
    else:
        print(zoo.export(args.store, args.out, args.budget))


def cmd_search(args) -> None:
    from .search import search

    result = search(args.space, args.estimator, generations=args.generations, population=args.population,
                    seed=args.seed, profile=args.profile, objectives=args.objectives.split(","), out=args.out)
    result.front[["spec", "accuracy", "flops", "params"]].to_csv(sys.stdout, index=False)
    for row in result.history.itertuples():
        print(f"generation {row.generation}: {row.n_evals} evaluations, hypervolume {row.hv:.4f}, "
              f"front {row.front_size}", file=sys.stderr)
    print(f"written to {args.out}", file=sys.stderr)


def cmd_sweep(args) -> None:
    from .experiments.sweep import parse_grid, sweep

    for run_dir in sweep(args.notebook, parse_grid(args.grid), results_root=args.results, workers=args.workers,
                         scheduler=args.scheduler):
        print(run_dir)


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nape", description="Generalized neural architecture performance estimation.")
    sub = parser.add_subparsers(dest="command", required=True)

    sub.add_parser("spaces", help="list the architecture families").set_defaults(func=cmd_spaces)

    p = sub.add_parser("sample", help="sample canonical specs, one a line")
    p.add_argument("space")
    p.add_argument("-n", type=POSITIVE, default=10)
    p.add_argument("--seed", type=NON_NEGATIVE, default=0)
    p.set_defaults(func=cmd_sample)

    p = sub.add_parser("describe", help="CSV of params, FLOPs, nodes and edges of each spec")
    p.add_argument("space")
    p.add_argument("--archs", required=True, help="file with one spec per line, or - for standard input")
    p.add_argument("--profile", default="paper", help="paper (the benchmark's network) or zoo (small)")
    p.add_argument("--out", help="CSV file (default: standard output)")
    p.set_defaults(func=cmd_describe)

    p = sub.add_parser("proxies", help="CSV of zero-cost proxies (and seconds per proxy) of each spec")
    p.add_argument("space")
    p.add_argument("--archs", required=True, help="file with one spec per line, or - for standard input")
    p.add_argument("--proxies", help="comma-separated proxy names (default: all 13)")
    p.add_argument("--batch-size", type=POSITIVE, default=64)
    p.add_argument("--seed", type=NON_NEGATIVE, default=0)
    p.add_argument("--profile", default="zoo", help="zoo (small, default) or paper (the benchmark's network)")
    p.add_argument("--data", default="task", choices=["task", "gaussian"],
                   help="task images (resized to the profile's input) or Gaussian images")
    p.add_argument("--out", help="CSV file (default: standard output)")
    p.set_defaults(func=cmd_proxies)

    p = sub.add_parser("graf", help="CSV of GRAF graph features of each spec (spec, then one column a feature)")
    p.add_argument("space")
    p.add_argument("--archs", required=True, help="file with one spec per line, or - for standard input")
    p.add_argument("--profile", default="paper", help="profile of the computation graph (generic features only)")
    p.add_argument("--generic", action="store_true", help="the generic computation-graph features even for "
                   "nb101/nb201/nb301 (other spaces always get them)")
    p.add_argument("--out", help="CSV file (default: standard output)")
    p.set_defaults(func=cmd_graf)

    p = sub.add_parser("rwe", help="CSV of each spec's random-weight evaluation: validation accuracy (%%) of its "
                       "random network with only the last layer fitted, and seconds")
    p.add_argument("space")
    p.add_argument("--archs", required=True, help="file with one spec per line, or - for standard input")
    p.add_argument("--n-train", type=POSITIVE, default=1000, help="training images the last layer is fitted on")
    p.add_argument("--seed", type=NON_NEGATIVE, default=0, help="seed of the random weights")
    p.add_argument("--size", type=POSITIVE, help="input resolution, the task's canvas size (default: the profile's)")
    p.add_argument("--profile", default="zoo", help="zoo (small, default) or paper (the benchmark's network)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--out", help="CSV file (default: standard output)")
    p.set_defaults(func=cmd_rwe)

    p = sub.add_parser("predict", help="CSV of an estimator's prediction for each spec (GENNAPE: accuracy; "
                       "hybrid: a rank score within the given pool)",
                       description="GENNAPE models (nb101-cifar10, zoo-nb101) predict each architecture's accuracy "
                       "from its computation graph. Hybrid models (hybrid-nb101) score each architecture by where its "
                       "FLOPs, parameters and zero-cost proxies stand within the pool given in --archs, so a "
                       "prediction depends on the pool: rank one whole pool in one call, and compare scores only "
                       "within it.")
    p.add_argument("space")
    p.add_argument("--archs", required=True, help="file with one spec per line, or - for standard input")
    p.add_argument("--model", required=True, help="a shipped model (results/pretrained/NAME) or a checkpoint path")
    p.add_argument("--profile", help="graphs (GENNAPE; default: paper for benchmark spaces, zoo for the others) or "
                   "proxies (hybrid; default zoo)")
    p.add_argument("--labels", help="hybrid: CSV (spec, accuracy) of labelled architectures of the pool to "
                   "calibrate on (k-shot)")
    p.add_argument("--workers", type=POSITIVE, default=1, help="hybrid: processes computing the proxies")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--out", help="CSV file (default: standard output)")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("graph", help="write the computation graph of one spec")
    p.add_argument("space")
    p.add_argument("spec")
    p.add_argument("--out", required=True, help="FILE.json, FILE.dot or FILE.png")
    p.add_argument("--profile", default="paper")
    p.set_defaults(func=cmd_graph)

    p = sub.add_parser("run", help="execute a notebook with papermill into results/<notebook>/<run_id>/")
    p.add_argument("notebook")
    p.add_argument("-p", "--parameter", nargs=2, action="append", metavar=("NAME", "VALUE"))
    p.add_argument("-f", "--file", help="YAML file of parameters")
    p.add_argument("--results", default="results", help="results root (default: results)")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("bench", help="speed benchmarks, written to results/bench/")
    p.add_argument("what", choices=["graphs", "graf", "predict", "rwe"])
    p.add_argument("--model", help="predict: a shipped model name or checkpoint (default: untrained, timing only)")
    p.add_argument("--workers", type=POSITIVE, default=2, help="predict: processes building graphs")
    p.add_argument("--rank-archs", type=NON_NEGATIVE, default=60,
                   help="rwe: labelled zoo archs per family that RWE ranks (a seeded subset; 0: all)")
    p.add_argument("--spaces", help="comma-separated families (graphs: default nb101,nb201,nb301; rwe: all)")
    p.add_argument("-n", type=POSITIVE, default=1000, help="architectures per space on the fast path (graf: per "
                   "space other than nb201, which always times all 15,625 cells; rwe: specs timed per family, default 5)")
    p.add_argument("--out")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("data", help="list the benchmark files, or fetch one (SHA-256 checked) into the cache")
    p.add_argument("action", choices=["list", "fetch"])
    p.add_argument("name", nargs="?", help="benchmark name, as `nape data list` prints it")
    p.add_argument("--dir", help="folder of the files (default: $NAPE_CACHE, else ~/.cache/nape)")
    p.set_defaults(func=cmd_data)
    p = sub.add_parser("zoo", help="train the labelled zoo (resumable), show its status, export it to NetCDF")
    p.add_argument("action", choices=["build", "status", "export"])
    p.add_argument("--store", default="results/zoo/zoo.sqlite")
    p.add_argument("--spaces", help="comma-separated families (default: the zoo's thirteen, ZOO_SPACES)")
    p.add_argument("--archs", type=POSITIVE, default=200, help="architectures per family")
    p.add_argument("--seeds", action="append", help="training seeds, comma-separated (default 0,1); repeat as "
                   "FAMILY=SEEDS for a family that needs more, e.g. --seeds 0,1 --seeds ofa_mbv3=0,1,2,3")
    p.add_argument("--epochs", type=POSITIVE, default=5, help="training budget (epochs; the default is TrainConfig's)")
    p.add_argument("--sample-seed", type=NON_NEGATIVE, default=0, help="seed that picks the architectures")
    p.add_argument("--workers", type=POSITIVE, default=_cores(), help="local worker processes (default: the cores "
                   "this process may use; 1 runs in this process)")
    p.add_argument("--scheduler", help="dask scheduler address, e.g. tcp://10.0.0.5:8786")
    p.add_argument("--budget", type=POSITIVE, help="status, export: the budget (epochs) to read when a store "
                   "holds several (default: the largest)")
    p.add_argument("--out", default="results/zoo/zoo.nc", help="NetCDF file for export")
    p.set_defaults(func=cmd_zoo)

    p = sub.add_parser("search", help="NSGA-II over a space guided by an estimator: Pareto fronts and "
                       "hypervolume per generation (front CSV on standard output)")
    p.add_argument("space")
    p.add_argument("--estimator", required=True, help="gennape[:MODEL], rwe, a proxy (synflow, jacov, ...), "
                   "graf_rf[:LABELS], oracle[:LABELS] or random[:SCORER]")
    p.add_argument("--generations", type=POSITIVE, default=10)
    p.add_argument("--population", type=POSITIVE, default=16)
    p.add_argument("--out", required=True, help="folder for front/fronts/history/evaluations CSV, meta.json, search.nc")
    p.add_argument("--seed", type=NON_NEGATIVE, default=0)
    p.add_argument("--profile", default="zoo", help="profile of FLOPs and proxies (default zoo)")
    p.add_argument("--objectives", default="accuracy,flops", help="accuracy and flops and/or params")
    p.set_defaults(func=cmd_search)

    p = sub.add_parser("sweep", help="run a notebook over a parameter grid, one results directory per point")
    p.add_argument("notebook")
    p.add_argument("--grid", nargs="+", action="extend", required=True, metavar="NAME=v1,v2",
                   help="a parameter and its values; repeat for more parameters (every combination runs)")
    p.add_argument("--results", default="results")
    p.add_argument("--workers", type=POSITIVE, default=_cores(), help="local worker processes (default: the cores "
                   "this process may use; 1 runs in this process)")
    p.add_argument("--scheduler", help="dask scheduler address")
    p.set_defaults(func=cmd_sweep)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except (ValueError, FileNotFoundError, TypeError) as err:
        print(f"nape {args.command}: error: {err}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        return 0
    except OSError as err:  # a path that cannot be read or written (or a lost connection): no traceback
        where = f": {err.filename} (check that the path and its folder exist and may be read or written)" \
            if err.filename else ""
        print(f"nape {args.command}: error: {err.strerror or err}{where}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
