"""Run a search (NSGA-II, or random search at the same budget) and verify its finds by training them.

:func:`search` records, per generation, the Pareto front of every architecture evaluated so far (an
archive: NSGA-II's crowding truncation may drop a front point from the population, the archive keeps
it) and its hypervolume, plus the hypervolume of the population's own first front; objectives and the
hypervolume's fixed reference point are defined in :mod:`nape_utils.search.problem`.
:func:`verify` trains the final front with the zoo trainer and compares it with the family's reference
network (:mod:`nape_utils.search.reference`) and with random search's front at the same budget.
"""
from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..checks import whole_number
from ..spaces import Space, get_space
from .estimators import PERCENT_BOUNDS, Estimator, make_estimator
from .problem import (CALIBRATION_SEED, CALIBRATION_SIZE, REF_POINT, ArchProblem, CanonicalDuplicates, ChooseParent,
                      SpaceMutation, SpaceSampling, costs, draw_unique, hypervolume, non_dominated, normalise)
from .reference import reference_spec

ALGORITHMS = ("nsga2", "random")
_FILES = {"front": "front.csv", "fronts": "fronts.csv", "history": "history.csv", "evaluations": "evaluations.csv"}


@dataclass
class SearchResult:
    """A search's record, tidy: ``evaluations`` (one row per spec evaluated: spec, first generation,
    estimated accuracy, flops, params, normalised objectives ``f_*``), ``fronts`` (the archive's
    Pareto front at every generation, same columns), ``history`` (per generation: n_evals, hv,
    hv_population, front_size) and ``meta`` (settings, objective bounds, reference point)."""

    evaluations: pd.DataFrame
    fronts: pd.DataFrame
    history: pd.DataFrame
    meta: dict
    space: Space | None = field(default=None, repr=False)
    estimator: Estimator | None = field(default=None, repr=False)

    @property
    def front(self) -> pd.DataFrame:
        """The final Pareto front, by increasing FLOPs."""
        last = self.fronts[self.fronts["generation"] == self.fronts["generation"].max()]
        return last.sort_values(["flops", "accuracy"], ascending=[True, False]).reset_index(drop=True)

    @property
    def n_evals(self) -> int:
        return int(self.history["n_evals"].iloc[-1])

    def to_xarray(self):
        """An xarray Dataset: per-generation history, per-evaluation values and ``on_front``
        [generation, evaluation] (1 where the spec is on that generation's front); meta as JSON attrs."""
        import xarray as xr

        ev = self.evaluations.reset_index(drop=True)
        gens = self.history["generation"].to_numpy()
        member = np.zeros((len(gens), len(ev)), dtype=np.int8)  # NetCDF3 has no booleans
        where = {s: i for i, s in enumerate(ev["spec"])}
        for g, spec in zip(self.fronts["generation"], self.fronts["spec"]):
            member[int(np.searchsorted(gens, g)), where[spec]] = 1
        data = {c: ("generation", self.history[c].to_numpy()) for c in self.history.columns if c != "generation"}
        data.update({c: ("evaluation", ev[c].to_numpy()) for c in ev.columns if c not in ("spec", "generation")})
        data["first_generation"] = ("evaluation", ev["generation"].to_numpy())
        data["on_front"] = (("generation", "evaluation"), member)
        return xr.Dataset(data, coords={"generation": gens, "evaluation": np.arange(len(ev)),
                                        "spec": ("evaluation", ev["spec"].to_numpy(dtype=str))},
                          attrs={"meta": json.dumps(self.meta, sort_keys=True)})

    def save(self, out: str | Path) -> Path:
        """Write front/fronts/history/evaluations CSVs, ``meta.json`` and ``search.nc`` into ``out``."""
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        self.front.to_csv(out / _FILES["front"], index=False)
        for name in ("fronts", "history", "evaluations"):
            getattr(self, name).to_csv(out / _FILES[name], index=False)
        (out / "meta.json").write_text(json.dumps(self.meta, indent=2, sort_keys=True) + "\n")
        self.to_xarray().to_netcdf(out / "search.nc", engine="scipy")
        return out

    @classmethod
    def load(cls, out: str | Path) -> "SearchResult":
        out = Path(out)
        if not (out / "meta.json").is_file():
            raise ValueError(f"{out} holds no search result (meta.json missing); write one with search(..., out=)")
        tables = {name: pd.read_csv(out / _FILES[name]) for name in ("evaluations", "fronts", "history")}
        return cls(**tables, meta=json.loads((out / "meta.json").read_text()))


# -- the two loops ------------------------------------------------------------------------------------------
def _snapshot(problem: ArchProblem, generation: int, n_evals: int, population_F: np.ndarray) -> tuple[dict, pd.DataFrame]:
    """History row and archive front after ``generation``."""
    table = pd.DataFrame(problem.records.values())
    F = table[[f"f_{o}" for o in problem.objectives]].to_numpy()
    idx = non_dominated(F)
    front = table.iloc[idx].assign(generation=generation)
    row = {"generation": generation, "n_evals": int(n_evals), "hv": hypervolume(F[idx]),
           "hv_population": hypervolume(population_F[non_dominated(population_F)]), "front_size": len(idx)}
    return row, front


def _run_nsga2(problem: ArchProblem, generations: int, population: int, seed: int):
    from pymoo.algorithms.moo.nsga2 import NSGA2

    space = problem.space
    algorithm = NSGA2(pop_size=population, sampling=SpaceSampling(space), crossover=ChooseParent(),
                      mutation=SpaceMutation(space), eliminate_duplicates=CanonicalDuplicates(space))
    algorithm.setup(problem, termination=("n_gen", generations), seed=seed, verbose=False)
    for generation in range(1, generations + 1):
        problem.generation = generation
        algorithm.next()
        yield _snapshot(problem, generation, algorithm.evaluator.n_eval, algorithm.opt.get("F"))


def _run_random(problem: ArchProblem, generations: int, budget: int, seed: int):
    """Random search: ``budget`` distinct uniform specs, revealed in ``generations`` equal slices so its
    history lines up with NSGA-II's; its 'population' is everything drawn so far."""
    specs = draw_unique(problem.space, budget, np.random.default_rng(seed))
    cuts = [round(len(specs) * g / generations) for g in range(generations + 1)]
    for generation in range(1, generations + 1):
        problem.generation = generation
        if cuts[generation] > cuts[generation - 1]:
            problem.measure(specs[cuts[generation - 1]:cuts[generation]])
        F = np.array([[r[f"f_{o}"] for o in problem.objectives] for r in problem.records.values()])
        yield _snapshot(problem, generation, cuts[generation], F.reshape(-1, len(problem.objectives)))


def search(space: str | Space, estimator: str | Estimator | Callable, generations: int = 10, population: int = 16,
           seed: int = 0, profile: str = "zoo", *, objectives: Sequence[str] = ("accuracy", "flops"),
           algorithm: str | None = None, budget: int | None = None, bounds: dict | None = None,
           out: str | Path | None = None, estimator_options: dict | None = None) -> SearchResult:
    """Multi-objective search of ``space`` guided by ``estimator`` (a name, see
    :func:`~nape_utils.search.estimators.make_estimator`, an Estimator or a callable).

    ``algorithm``: ``"nsga2"`` (default; pymoo's NSGA-II with the space's sampling and mutation, a
    choose-parent crossover and duplicates removed by canonical spec) or ``"random"`` (the default for
    estimator ``random:NAME``): ``budget`` distinct uniform specs (default ``population × generations``,
    NSGA-II's budget when every generation fills). ``objectives``: ``accuracy`` and ``flops`` and/or
    ``params``. ``bounds``: {objective: (best, worst)} to skip calibration (see
    :func:`~nape_utils.search.problem.objective_bounds`). ``out``: a folder to write the result to.
    Returns a :class:`SearchResult`."""
    start = time.perf_counter()
    generations = whole_number(generations, "generations", 1, "a search runs one generation or more")
    population = whole_number(population, "population", 2, "NSGA-II ranks and recombines a population: use 2 "
                              "or more (8 or more in practice)")
    seed = whole_number(seed, "seed", 0, "give a non-negative integer")
    space = get_space(space)
    space.profile(profile)
    est = make_estimator(estimator, space, profile=profile, **(estimator_options or {}))
    algorithm = algorithm or est.algorithm
    if algorithm not in ALGORITHMS:
        raise ValueError(f"unknown algorithm {algorithm!r}; choose one of {', '.join(ALGORITHMS)}")
    budget = whole_number(budget if budget is not None else population * generations, "budget", 1,
                          "random search needs at least one evaluation")
    problem = ArchProblem(space, est, profile, objectives, bounds)
    loop = _run_nsga2(problem, generations, population, seed) if algorithm == "nsga2" else \
        _run_random(problem, generations, budget, seed)
    rows, fronts = zip(*loop)
    meta = {"space": space.name, "estimator": est.name, "algorithm": algorithm, "generations": generations,
            "population": population, "seed": seed, "profile": str(profile), "objectives": list(problem.objectives),
            "bounds": {o: list(b) for o, b in problem.bounds.items()}, "ref_point": [REF_POINT] * problem.n_obj,
            "bounds_source": "given" if bounds else f"estimator range, else a calibration sample of "
                             f"{CALIBRATION_SIZE} specs at seed {CALIBRATION_SEED}",
            "accuracy_scale": "signed log10" if problem.log else "linear",
            "normalised": "f = (g(value) - g(best)) / (g(worst) - g(best)), g the accuracy_scale (identity for "
                          "flops and params); 0 = the best bound, 1 = the worst",
            "hypervolume": "pymoo.indicators.hv.HV of the normalised front against ref_point",
            "n_evals": rows[-1]["n_evals"], "seconds": round(time.perf_counter() - start, 2)}
    columns = ["spec", "generation", "accuracy", "flops", "params", *(f"f_{o}" for o in problem.objectives)]
    result = SearchResult(pd.DataFrame(problem.records.values())[columns],
                          pd.concat(fronts, ignore_index=True)[columns], pd.DataFrame(rows), meta, space, est)
    if out is not None:
        result.save(out)
    return result


# -- verification ----------------------------------------------------------------------------------------------
@dataclass
class Verification:
    """``table``: one row per (source, spec) trained (source ∈ search, random, reference) with estimated
    and true accuracy (seed mean, %), FLOPs, params and whether it dominates the reference;
    ``summary``: one row per source (archs, best and mean test accuracy, true hypervolume, archs that
    dominate the reference); ``baseline``: the random search that was compared, if any.

    The true hypervolume ``hv_true`` is that of (test accuracy, FLOPs), normalised with accuracy bounds
    (100, 0) and the search's FLOPs bounds widened to cover every verified arch (``summary.attrs
    ["flops_bounds"]``), against the reference point (1.1, 1.1): every trained arch can count."""

    table: pd.DataFrame
    summary: pd.DataFrame
    baseline: SearchResult | None = None

    def save(self, out: str | Path) -> Path:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        self.table.to_csv(out / "verify.csv", index=False)
        self.summary.to_csv(out / "verify_summary.csv", index=False)
        return out


def _thin(front: pd.DataFrame, max_archs: int | None) -> pd.DataFrame:
    """At most ``max_archs`` front points, evenly spaced along FLOPs (the extremes kept)."""
    if max_archs is None or len(front) <= max_archs:
        return front
    order = front.sort_values("flops").reset_index(drop=True)
    return order.iloc[np.unique(np.round(np.linspace(0, len(order) - 1, max_archs)).astype(int))]


def _true_hv(rows: pd.DataFrame, flops_bounds) -> float:
    F = normalise({"accuracy": rows["test_accuracy"].to_numpy(), "flops": rows["flops"].to_numpy()},
                  {"accuracy": PERCENT_BOUNDS, "flops": tuple(flops_bounds)})
    return hypervolume(F[non_dominated(F)])


def verify(result: SearchResult, *, seeds: Sequence[int] = (0,), config=None, baseline: bool | SearchResult = True,
           reference: bool | str = True, trainer: Callable | None = None, max_archs: int | None = None,
           out: str | Path | None = None) -> Verification:
    """Train ``result``'s final front for real and compare it with the reference network and with random
    search at the same budget.

    ``trainer(space, spec, seed, config) -> record`` defaults to the zoo trainer
    (:func:`nape_utils.zoo.train_one`, ``config`` a TrainConfig, default its defaults); accuracies are
    its ``test_accuracy`` and ``val_accuracy`` averaged over ``seeds``. ``baseline``: True runs random
    search with the same estimator, budget, seed and bounds; a SearchResult is used as it is; False
    skips it. ``reference``: True takes :func:`reference_spec`, a string is a spec, False skips it.
    ``max_archs`` caps the archs trained per front (evenly along FLOPs)."""
    from ..zoo import TrainConfig, train_one

    if not isinstance(result, SearchResult):
        raise ValueError(f"verify takes the SearchResult of search(), got {type(result).__name__}")
    if max_archs is not None:
        max_archs = whole_number(max_archs, "max_archs", 1, "or None to train the whole front")
    seeds = [whole_number(s, "each seed", 0, "give non-negative integers") for s in seeds]
    if not seeds:
        raise ValueError("seeds is empty: give at least one training seed")
    space = result.space or get_space(result.meta["space"])
    meta, trainer, config = result.meta, trainer or train_one, config or TrainConfig()
    sources = {"search": _thin(result.front, max_archs)}
    if baseline is True and meta["algorithm"] != "random":
        estimator = result.estimator or meta["estimator"]
        baseline = search(space, estimator, meta["generations"], meta["population"], meta["seed"], meta["profile"],
                          objectives=meta["objectives"], algorithm="random", budget=result.n_evals,
                          bounds=meta["bounds"])
    if isinstance(baseline, SearchResult):
        sources["random"] = _thin(baseline.front, max_archs)
    ref_note = None
    if reference is not False:
        spec, ref_note = (space.canonical(reference), "given") if isinstance(reference, str) else reference_spec(space)
        estimated = np.nan
        if result.estimator is not None:
            try:  # the oracle may not know it: the reference is still trained
                estimated = float(result.estimator.score([spec])[0])
            except ValueError:
                pass
        cost = costs(space, [spec], meta["profile"])
        sources["reference"] = pd.DataFrame([{"spec": spec, "accuracy": estimated, "flops": cost["flops"][0],
                                              "params": cost["params"][0]}])
    trained: dict[str, dict] = {}
    for frame in sources.values():
        for spec in frame["spec"]:
            if spec not in trained:
                records = [trainer(space, spec, s, config) for s in seeds]
                trained[spec] = {k: float(np.mean([r[k] for r in records])) for k in ("test_accuracy", "val_accuracy")}
    table = pd.concat([f[["spec", "accuracy", "flops", "params"]].assign(source=name) for name, f in sources.items()],
                      ignore_index=True).rename(columns={"accuracy": "estimated"})
    table = table.assign(test_accuracy=[trained[s]["test_accuracy"] for s in table["spec"]],
                         val_accuracy=[trained[s]["val_accuracy"] for s in table["spec"]], seeds=len(seeds))
    if "reference" in sources:
        ref = table[table["source"] == "reference"].iloc[0]
        better = (table["test_accuracy"] >= ref["test_accuracy"]) & (table["flops"] <= ref["flops"])
        strictly = (table["test_accuracy"] > ref["test_accuracy"]) | (table["flops"] < ref["flops"])
        table["dominates_reference"] = better & strictly
    table = table[["source", "spec", "estimated", "test_accuracy", "val_accuracy", "flops", "params", "seeds",
                   *(["dominates_reference"] if "reference" in sources else [])]]
    # the search's FLOPs scale, widened to cover every verified arch: a trained arch costlier than the search's
    # worst bound would lie beyond the reference point and silently add nothing to its source's true HV (a
    # search without a FLOPs objective takes the verified archs' range alone)
    best, worst = meta["bounds"].get("flops") or (table["flops"].min(), table["flops"].max() + 1)
    flops_bounds = (min(best, table["flops"].min()), max(worst, table["flops"].max()))
    summary = pd.DataFrame([{
        "source": name, "archs": len(rows), "best_test_accuracy": rows["test_accuracy"].max(),
        "mean_test_accuracy": rows["test_accuracy"].mean(), "min_flops": rows["flops"].min(),
        "hv_true": _true_hv(rows, flops_bounds),
        "dominate_reference": int(rows.get("dominates_reference", pd.Series(dtype=bool)).sum()),
    } for name, rows in table.groupby("source", sort=False)])
    summary.attrs["reference"] = ref_note
    summary.attrs["flops_bounds"] = tuple(float(b) for b in flops_bounds)
    verification = Verification(table, summary, baseline if isinstance(baseline, SearchResult) else None)
    if out is not None:
        verification.save(out)
    return verification
