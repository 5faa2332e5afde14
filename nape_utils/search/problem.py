r"""The search as a pymoo problem over any nape space, with operators built on the space's own moves.

A decision vector is one canonical spec string (``n_var = 1``, object dtype). Objectives, all minimised
and normalised to a fixed scale per space so that runs compare:

.. math::

    f_\text{acc}(a) = \frac{g(\hat y(a)) - g(b_\text{acc})}{g(w_\text{acc}) - g(b_\text{acc})}, \qquad
    f_\text{flops}(a) = \frac{\text{FLOPs}(a) - b_\text{flops}}{w_\text{flops} - b_\text{flops}}
    \quad(\text{and } f_\text{params} \text{ likewise}),

with :math:`\hat y` the estimator's score (higher = better; :math:`g` the identity, or for zero-cost
proxies, whose scores spread over decades, the signed log :math:`g(x) = \operatorname{sign}(x)\log_{10}(1+|x|)`), FLOPs and parameters from
``graph_of(space, spec, profile)``, and (best :math:`b`, worst :math:`w`) bounds from
:func:`objective_bounds`: the estimator's fixed range where it has one (accuracies in %: 100 and 0;
the oracle: its table's best and worst label), else the best and worst over a fixed calibration
sample of the space (:data:`CALIBRATION_SIZE` specs drawn at seed :data:`CALIBRATION_SEED`, whatever
the run's seed). So 0 is "as good as the bounds' best", 1 "as bad as their worst".

Hypervolume of a set :math:`S` of normalised objective vectors against the reference point
:math:`r = (1.1, \dots, 1.1)` (:data:`REF_POINT`):

.. math::

    \mathrm{HV}(S) = \lambda\Big(\bigcup_{s \in S} \{\, z : s \preceq z \preceq r \,\}\Big),

the Lebesgue measure of the region that :math:`S` dominates and :math:`r` bounds; points no better
than :math:`r` in some objective add nothing. It is computed by pymoo (``pymoo.indicators.hv.HV``).
"""
from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np
from pymoo.core.crossover import Crossover
from pymoo.core.duplicate import DuplicateElimination
from pymoo.core.mutation import Mutation
from pymoo.core.problem import Problem
from pymoo.core.sampling import Sampling

from ..graphs import graph_of
from ..spaces import Space, get_space
from .estimators import Estimator

OBJECTIVES = ("accuracy", "flops", "params")
#: every normalised objective of the hypervolume's reference point
REF_POINT = 1.1
CALIBRATION_SEED = 0
CALIBRATION_SIZE = 16
#: the normalised objective of a spec the estimator could not score (far beyond the reference point)
UNSCORED = 1e3


@lru_cache(maxsize=16384)
def cached_graph(space: Space, spec: str, profile):
    """``graph_of`` memoised (a HiAML graph takes a second to trace); a clear error when it fails."""
    try:
        return graph_of(space, spec, profile)
    except Exception as err:  # noqa: BLE001 - any tracing failure means the same thing to the search
        raise ValueError(f"cannot build the computation graph of {space.name} spec {spec} at profile {profile!r} "
                         f"({type(err).__name__}: {err}); the search needs it for FLOPs and parameters: use a "
                         "profile and space that `nape describe` can measure") from None


def costs(space: Space, specs: Sequence[str], profile) -> dict[str, np.ndarray]:
    """FLOPs and parameters of ``specs`` at ``profile``."""
    graphs = [cached_graph(space, s, profile) for s in specs]
    return {"flops": np.array([g.flops for g in graphs], dtype=float),
            "params": np.array([g.params for g in graphs], dtype=float)}


def draw_unique(space: Space, n: int, rng: np.random.Generator, exclude: set[str] | None = None) -> list[str]:
    """Up to ``n`` distinct canonical specs by ``space.sample`` (fewer when the space runs out)."""
    seen, out = set(exclude or ()), []
    for _ in range(50 * n + 100):  # a small space may hold fewer than n new specs
        if len(out) == n:
            break
        spec = space.canonical(space.sample(rng))
        if spec not in seen:
            seen.add(spec)
            out.append(spec)
    return out


def check_objectives(objectives: Sequence[str]) -> tuple[str, ...]:
    objectives = tuple(objectives)
    bad = [o for o in objectives if o not in OBJECTIVES]
    if bad or "accuracy" not in objectives or len(set(objectives)) != len(objectives) or len(objectives) < 2:
        raise ValueError(f"objectives must be 'accuracy' and one or both of 'flops', 'params', each once; got "
                         f"{list(objectives)} (e.g. ('accuracy', 'flops') or ('accuracy', 'flops', 'params'))")
    return objectives


def objective_bounds(space: Space, estimator: Estimator, objectives: Sequence[str], profile,
                     size: int = CALIBRATION_SIZE) -> dict[str, tuple[float, float]]:
    """(best, worst) raw value of each objective, fixed per (space, estimator, profile); see the module doc."""
    space = get_space(space)
    sample = draw_unique(space, size, np.random.default_rng(CALIBRATION_SEED))
    bounds: dict[str, tuple[float, float]] = {}
    for name in objectives:
        if name == "accuracy":
            if estimator.bounds is not None:
                bounds[name] = tuple(float(v) for v in estimator.bounds)
                continue
            values = estimator.score(sample)
            values = values[np.isfinite(values)]
            if not len(values):
                raise ValueError(f"estimator {estimator.name!r} scored none of {len(sample)} calibration specs of "
                                 f"{space.name!r}; it cannot guide a search of this space")
            best, worst = float(values.max()), float(values.min())
        else:
            values = costs(space, sample, profile)[name]
            if values.max() <= 0:
                raise ValueError(f"space {space.name!r} has no {name} at profile {profile!r} (every calibration "
                                 f"network counts 0); search it with objectives that exclude {name!r}")
            best, worst = float(values.min()), float(values.max())
        if best == worst:  # one value everywhere: any unit scale keeps dominance and HV well defined
            best, worst = (best + 1, best - 1) if name == "accuracy" else (best - 1, best + 1)
        bounds[name] = (best, worst)
    return bounds


def signed_log(x):
    """sign(x)·log10(1 + |x|): monotone, defined for every real, compresses decades."""
    x = np.asarray(x, dtype=float)
    return np.sign(x) * np.log10(1 + np.abs(x))


def normalise(raw: dict[str, np.ndarray], bounds: dict[str, tuple[float, float]], log: Sequence[str] = ()) -> np.ndarray:
    """[N, k] minimised, normalised objectives (the module doc's f), ``log`` naming the objectives on the
    signed-log scale; unscored specs get :data:`UNSCORED`."""
    columns = []
    for name, (best, worst) in bounds.items():
        g = signed_log if name in log else (lambda v: np.asarray(v, dtype=float))
        with np.errstate(invalid="ignore"):
            f = (g(raw[name]) - g(best)) / (g(worst) - g(best))
        columns.append(np.where(np.isfinite(f), f, UNSCORED) + 0.0)  # + 0.0: no -0.0 in tables
    return np.column_stack(columns)


def hypervolume(F: np.ndarray, ref: float = REF_POINT) -> float:
    """HV of normalised objective vectors ``F`` [N, k] against (ref, …, ref); 0 for an empty set."""
    from pymoo.indicators.hv import HV

    F = np.asarray(F, dtype=float)
    if F.size == 0:
        return 0.0
    return float(HV(ref_point=np.full(F.shape[1], ref))(F))


def non_dominated(F: np.ndarray) -> np.ndarray:
    """Indices of the non-dominated rows of ``F`` (pymoo's non-dominated sorting)."""
    from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting

    if len(F) == 0:
        return np.array([], dtype=int)
    return np.sort(NonDominatedSorting().do(np.asarray(F, dtype=float), only_non_dominated_front=True))


# -- operators ---------------------------------------------------------------------------------------------
class SpaceSampling(Sampling):
    """Distinct uniform specs from ``space.sample``."""

    def __init__(self, space: Space):
        super().__init__()
        self.space = space

    def _do(self, problem, n_samples, *args, random_state=None, **kwargs):
        return np.array([[s] for s in draw_unique(self.space, n_samples, random_state)], dtype=object)


class SpaceMutation(Mutation):
    """``space.mutate``: one local change, always valid; probability 1 by default because the crossover
    only copies a parent, so mutation is the sole source of new specs."""

    def __init__(self, space: Space, prob: float = 1.0):
        super().__init__(prob=prob)
        self.space = space

    def _do(self, problem, X, *args, random_state=None, **kwargs):
        out = np.empty_like(X)
        for i, (spec,) in enumerate(X):
            out[i, 0] = self.space.canonical(self.space.mutate(spec, random_state))
        return out


class ChooseParent(Crossover):
    """Each child is a copy of one of two parents, drawn uniformly: valid in every space, whatever its
    rules (a recombining crossover would need each space's own repair)."""

    def __init__(self):
        super().__init__(n_parents=2, n_offsprings=1, prob=1.0)

    def _do(self, problem, X, *args, random_state=None, **kwargs):
        _, n_matings, _ = X.shape
        pick = random_state.integers(self.n_parents, size=n_matings)
        return X[pick, np.arange(n_matings)][None]


class CanonicalDuplicates(DuplicateElimination):
    """Two individuals are duplicates when their canonical specs are equal (a set, so linear time)."""

    def __init__(self, space: Space):
        super().__init__(func=lambda pop: [space.canonical(x[0]) for x in pop.get("X")])

    def _do(self, pop, other, is_duplicate):
        seen = set() if other is None else set(self.func(other))
        for i, key in enumerate(self.func(pop)):
            if key in seen:
                is_duplicate[i] = True
            seen.add(key)
        return is_duplicate


# -- the problem -------------------------------------------------------------------------------------------
class ArchProblem(Problem):
    """Maximise the estimator's score and minimise FLOPs (and parameters, optionally) over ``space``.

    Every spec it evaluates is kept in :attr:`records` (spec → accuracy, flops, params, the generation
    that first evaluated it and its normalised objectives) so the search can report an archive."""

    def __init__(self, space: str | Space, estimator: Estimator, profile="zoo",
                 objectives: Sequence[str] = ("accuracy", "flops"), bounds: dict | None = None):
        self.space = get_space(space)
        self.space.profile(profile)  # an unknown profile fails here, naming the known ones
        self.estimator, self.profile = estimator, profile
        self.objectives = check_objectives(objectives)
        self.bounds = {o: tuple(map(float, bounds[o])) for o in self.objectives} if bounds else \
            objective_bounds(self.space, estimator, self.objectives, profile)
        self.log = ("accuracy",) if estimator.log_scale else ()
        self.records: dict[str, dict] = {}
        self.generation = 0
        super().__init__(n_var=1, n_obj=len(self.objectives), vtype=object)

    def measure(self, specs: Sequence[str]) -> np.ndarray:
        """Score, measure and record ``specs``; returns their normalised objectives [N, k]."""
        specs = [self.space.canonical(s) for s in specs]
        raw = {"accuracy": self.estimator.score(specs), **costs(self.space, specs, self.profile)}
        F = normalise({o: raw[o] for o in self.objectives}, self.bounds, self.log)
        for i, spec in enumerate(specs):
            if spec not in self.records:
                self.records[spec] = {"spec": spec, "generation": self.generation,
                                      **{k: float(v[i]) for k, v in raw.items()},
                                      **{f"f_{o}": float(F[i, j]) for j, o in enumerate(self.objectives)}}
        return F

    def _evaluate(self, X, out, *args, **kwargs):
        out["F"] = self.measure([x[0] for x in X])
