"""Estimators the search can be guided by, behind one small API and a registry of names.

An :class:`Estimator` scores canonical specs of one space, higher = better (an estimated accuracy in %,
or a zero-cost proxy's score). :func:`make_estimator` builds one from a name, ``"NAME"`` or
``"NAME:ARG"`` (the part after the colon is the estimator's one option, handy on the command line):

============  ===============================================================================================
``gennape``   a shipped pretrained GENNAPE model (``gennape:NAME``, default the first of
              :func:`~nape_utils.predictors.pretrained.available`); graphs at the space's default profile
``rwe``       random-weight evaluation (:mod:`nape_utils.predictors.rwe`, imported when first used)
proxy names   any zero-cost proxy of :data:`~nape_utils.predictors.proxies.PROXY_NAMES` (``synflow``,
              ``jacov``, …) on one fixed batch of the offline task
``graf_rf``   GRAF features + scikit-learn random forest fit on the space's labelled zoo rows
              (``graf_rf:PATH``, default ``results/zoo/zoo.nc``)
``oracle``    the true zoo labels (``oracle:PATH``); an unlabelled spec is an error, or is trained with
              the zoo trainer when ``on_missing="train"``
``random``    random search at the same evaluation budget, scoring its samples with ``random:NAME``
              (default ``synflow``: data-free, the strongest single proxy on NB-201 in METHODS.md)
============  ===============================================================================================

A Python callable ``f(specs) -> scores`` or an :class:`Estimator` instance is accepted as well, and
:func:`register_estimator` adds a name. ``bounds`` (best, worst) is the score's fixed range where one
exists (accuracies in %: (100, 0)); ``None`` lets the search calibrate it on a fixed sample (see
:func:`nape_utils.search.problem.objective_bounds`); ``log_scale`` normalises proxies' scores on a
signed-log scale.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..spaces import Space, get_space

#: where the shipped zoo labels live (``nape zoo export`` writes them)
DEFAULT_ZOO = Path("results/zoo/zoo.nc")
#: the scorer of ``random`` when none is named
DEFAULT_RANDOM_SCORER = "synflow"
PERCENT_BOUNDS = (100.0, 0.0)


class Estimator:
    """Scores specs of one space, higher = better. Subclasses implement :meth:`_score`.

    Scores are cached per canonical spec, so a spec the search meets twice costs one evaluation."""

    name: str = "estimator"
    #: (best, worst) score, fixed; None → calibrated by the search on a fixed sample of the space
    bounds: tuple[float, float] | None = None
    #: normalise the score on the signed-log scale sign(x)·log10(1 + |x|) (proxies span decades)
    log_scale: bool = False
    #: "nsga2" (guide the evolutionary search) or "random" (random search scored by ``inner``)
    algorithm: str = "nsga2"

    def __init__(self) -> None:
        self._cache: dict[str, float] = {}

    def score(self, specs: Sequence[str]) -> np.ndarray:
        """Scores of ``specs`` (canonical spec strings), float, NaN where the estimator has none."""
        todo = [s for s in dict.fromkeys(specs) if s not in self._cache]
        if todo:
            values = np.asarray(self._score(todo), dtype=float).ravel()
            if len(values) != len(todo):
                raise ValueError(f"estimator {self.name!r} returned {len(values)} scores for {len(todo)} specs")
            self._cache.update(zip(todo, values.tolist()))
        return np.array([self._cache[s] for s in specs], dtype=float)

    def _score(self, specs: list[str]) -> np.ndarray:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


class FunctionEstimator(Estimator):
    """Any callable ``f(specs) -> scores`` (list of canonical specs → array-like of floats)."""

    def __init__(self, func: Callable[[list[str]], Any], name: str | None = None,
                 bounds: tuple[float, float] | None = None):
        super().__init__()
        self.func = func
        self.name = name or getattr(func, "__name__", "function")
        self.bounds = bounds

    def _score(self, specs: list[str]) -> np.ndarray:
        return np.asarray(self.func(specs), dtype=float)


class ProxyEstimator(Estimator):
    """One zero-cost proxy on the offline task's fixed batch (``score_specs``, seed fixed so runs compare).

    Normalised on the signed-log scale: synflow, snip or fisher spread over many decades, and on a linear
    scale the largest score alone would span the objective (and NSGA-II's crowding distance)."""

    log_scale = True

    def __init__(self, space: Space, proxy: str, profile: str = "zoo", seed: int = 0, batch_size: int = 64):
        super().__init__()
        self.space, self.name, self.profile, self.seed, self.batch_size = space, proxy, profile, seed, batch_size

    def _score(self, specs: list[str]) -> np.ndarray:
        import warnings

        import torch

        from ..predictors.proxies import ProxyWarning, score_specs

        scores = []
        for spec in specs:  # one call per spec, torch seeded: the network's initial weights (which synflow
            # and others read) are then a function of (spec, seed), so a spec scores alike in every run
            with warnings.catch_warnings(), torch.random.fork_rng(devices=[]):
                warnings.simplefilter("ignore", ProxyWarning)  # NaN is handled by the search (worst objective)
                torch.manual_seed(self.seed)
                table = score_specs(self.space, [spec], self.name, batch_size=self.batch_size, profile=self.profile,
                                    seed=self.seed)
            scores.append(float(table[self.name].iloc[0]))
        return np.array(scores)


class GENNAPEEstimator(Estimator):
    """A pretrained GENNAPE model's predicted accuracy (%), from graphs at ``graph_profile``."""

    bounds = PERCENT_BOUNDS

    def __init__(self, space: Space, model: str | None = None, graph_profile: str | None = None):
        super().__init__()
        from ..predictors.pretrained import available, default_profile, load_pretrained

        if model is None:
            shipped = available()
            if not shipped:
                raise ValueError("estimator 'gennape' needs a pretrained model, and none is shipped in "
                                 "results/pretrained/; give gennape:PATH to a checkpoint")
            model = shipped[0]
        self.model, self.card = load_pretrained(model)
        self.name = f"gennape:{self.card.get('name', model)}"
        self.space = space
        self.graph_profile = graph_profile or default_profile(space.name)

    def _score(self, specs: list[str]) -> np.ndarray:
        from ..encoders import featurize
        from .problem import cached_graph

        return self.model.predict([featurize(cached_graph(self.space, s, self.graph_profile)) for s in specs])


def _mean_labels(frame, space: Space, metric: str) -> dict[str, float]:
    """spec → mean ``metric`` over the rows (seeds) of ``space`` in a tidy table."""
    if "spec" not in frame.columns or metric not in frame.columns:
        raise ValueError(f"a label table needs columns 'spec' and {metric!r}; found {list(frame.columns)}")
    if "space" in frame.columns:
        frame = frame[frame["space"] == space.name]
    frame = frame.assign(spec=[space.canonical(s) for s in frame["spec"]])
    return frame.groupby("spec")[metric].mean().astype(float).to_dict()


def load_labels(source: Any, space: str | Space, metric: str = "val_accuracy") -> dict[str, float]:
    """True labels of ``space``: canonical spec → seed-mean ``metric``.

    ``source``: a zoo Dataset (``load_zoo``), a pandas DataFrame with ``spec`` and ``metric`` columns
    (``space`` optional), a dict spec → label, or a path to a zoo ``.nc``, a zoo ``.sqlite`` store (its
    largest budget) or a ``.csv``. Raises ValueError when nothing of ``space`` is labelled."""
    import pandas as pd

    space = get_space(space)
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file():
            raise ValueError(f"no label file at {path}: build and export the zoo (`nape zoo build`, `nape zoo "
                             "export`), or give a zoo .nc, a zoo .sqlite store or a CSV with spec and accuracy")
        if path.suffix in (".sqlite", ".db"):
            from ..zoo import ZooStore

            with ZooStore(path, readonly=True) as store:
                runs = store.runs()
            source = runs[runs["budget"] == runs["budget"].max()] if len(runs) else runs
        elif path.suffix == ".csv":
            source = pd.read_csv(path)
        else:
            from ..zoo import load_zoo

            source = load_zoo(path)
    if isinstance(source, dict):
        labels = {space.canonical(k): float(v) for k, v in source.items()}
    elif isinstance(source, pd.DataFrame):
        labels = _mean_labels(source, space, metric)
    elif hasattr(source, "data_vars"):  # an xarray Dataset in the zoo's layout
        frame = source[[metric]].to_dataframe().reset_index()
        labels = _mean_labels(frame, space, metric)
    else:
        raise ValueError(f"labels must be a zoo Dataset, a DataFrame, a dict or a path; got {type(source).__name__}")
    labels = {k: v for k, v in labels.items() if np.isfinite(v)}
    if not labels:
        raise ValueError(f"the label source holds no {metric!r} labels of space {space.name!r}")
    return labels


class OracleEstimator(Estimator):
    """True labels from a zoo table; ``on_missing="train"`` trains unlabelled specs with the zoo trainer."""

    def __init__(self, space: Space, labels: Any = DEFAULT_ZOO, metric: str = "val_accuracy",
                 on_missing: str = "error", seeds: Sequence[int] = (0,), config=None):
        super().__init__()
        if on_missing not in ("error", "train"):
            raise ValueError(f"on_missing must be 'error' or 'train', got {on_missing!r}")
        self.space, self.metric, self.on_missing, self.seeds, self.config = space, metric, on_missing, tuple(seeds), config
        self.labels = load_labels(labels, space, metric)
        self.name = "oracle"
        values = list(self.labels.values())
        self.bounds = (max(values), min(values)) if max(values) > min(values) else PERCENT_BOUNDS

    def _train(self, spec: str) -> float:
        from ..zoo import TrainConfig, train_one

        records = [train_one(self.space, spec, seed, self.config or TrainConfig()) for seed in self.seeds]
        self.labels[spec] = float(np.mean([r[self.metric] for r in records]))
        return self.labels[spec]

    def _score(self, specs: list[str]) -> np.ndarray:
        missing = [s for s in specs if s not in self.labels]
        if missing and self.on_missing == "error":
            raise ValueError(f"the oracle has no {self.metric!r} label for {len(missing)} spec(s) of "
                             f"{self.space.name!r} (first: {missing[0]}); it knows {len(self.labels)} specs. "
                             "Search a space the table covers, or pass on_missing='train' to train them")
        return np.array([self.labels[s] if s in self.labels else self._train(s) for s in specs])


class GRAFForestEstimator(Estimator):
    """GRAF features + a random forest fit on the labelled zoo rows of the space (predicted accuracy %)."""

    bounds = PERCENT_BOUNDS
    name = "graf_rf"

    def __init__(self, space: Space, labels: Any = DEFAULT_ZOO, metric: str = "val_accuracy",
                 profile: str = "zoo", seed: int = 0):
        super().__init__()
        from ..predictors.graf import GRAFRegressor

        table = load_labels(labels, space, metric)
        if len(table) < 2:
            raise ValueError(f"graf_rf needs at least 2 labelled {space.name!r} architectures, got {len(table)}")
        self.regressor = GRAFRegressor(space, "rf", seed=seed, profile=profile).fit(list(table), list(table.values()))
        self.n_train = len(table)

    def _score(self, specs: list[str]) -> np.ndarray:
        return self.regressor.predict(specs)


class RWEEstimator(Estimator):
    """Random-weight evaluation (:mod:`nape_utils.predictors.rwe`, imported when first built).

    Uses the module's ``RWE`` class when it has one: built once as ``RWE(profile=..., seed=...,
    **options)`` (the keywords it accepts), so the task's images are rendered once, and called as
    ``RWE.score_specs(space, specs, progress=False)``. Otherwise a module-level
    ``score_specs(space, specs, profile=..., seed=..., **options)``. Either may return scores or a table;
    of a table, the first of the columns ``rwe``, ``rwe_accuracy``, ``score`` is used, else its one other
    numeric column that is not a timing (``seconds``)."""

    name = "rwe"
    SCORE_COLUMNS = ("rwe", "rwe_accuracy", "score")

    def __init__(self, space: Space, profile: str = "zoo", seed: int = 0, **options):
        super().__init__()
        try:
            from ..predictors import rwe
        except ImportError as err:
            raise ValueError("estimator 'rwe' needs nape_utils.predictors.rwe, which this checkout does not have "
                             f"yet ({err}); choose another estimator") from None
        self.space = space
        if isinstance(getattr(rwe, "RWE", None), type) and callable(getattr(rwe.RWE, "score_specs", None)):
            self.model = rwe.RWE(**{**self._accepted(rwe.RWE, profile=profile, seed=seed), **options})
            self.func, self.options = self._model_scores, {}
        elif callable(getattr(rwe, "score_specs", None)):
            self.model = None
            self.func = rwe.score_specs
            self.options = {**self._accepted(rwe.score_specs, profile=profile, seed=seed, progress=False), **options}
        else:
            raise ValueError("nape_utils.predictors.rwe has neither an RWE class with score_specs nor a "
                             "score_specs(space, specs, ...) function for the 'rwe' estimator to call")

    def _model_scores(self, space: Space, specs: list[str]):
        import inspect

        takes_progress = "progress" in inspect.signature(self.model.score_specs).parameters
        return self.model.score_specs(space, specs, **({"progress": False} if takes_progress else {}))

    @staticmethod
    def _accepted(func, **keywords) -> dict:
        import inspect

        params = inspect.signature(func).parameters
        if any(p.kind is p.VAR_KEYWORD for p in params.values()):
            return keywords
        return {k: v for k, v in keywords.items() if k in params}

    @classmethod
    def _score_column(cls, table) -> str:
        for column in cls.SCORE_COLUMNS:
            if column in table.columns:
                return column
        numeric = [c for c in table.select_dtypes("number").columns if "second" not in str(c).lower()]
        if len(numeric) != 1:
            raise ValueError(f"cannot tell the RWE score among the columns {list(table.columns)}; name it one of "
                             f"{', '.join(cls.SCORE_COLUMNS)}")
        return numeric[0]

    def _score(self, specs: list[str]) -> np.ndarray:
        out = self.func(self.space, specs, **self.options)
        if hasattr(out, "columns"):
            out = out[self._score_column(out)]
        return np.asarray(out, dtype=float)


class RandomSearch(Estimator):
    """Marks random search: the search samples instead of evolving, and scores samples with ``inner``."""

    algorithm = "random"

    def __init__(self, inner: Estimator):
        super().__init__()
        self.inner, self.name, self.bounds, self.log_scale = inner, f"random:{inner.name}", inner.bounds, inner.log_scale

    def score(self, specs: Sequence[str]) -> np.ndarray:
        return self.inner.score(specs)


# -- the registry -------------------------------------------------------------------------------------
Factory = Callable[..., Estimator]
_REGISTRY: dict[str, Factory] = {}


def register_estimator(name: str, factory: Factory | None = None):
    """Register ``factory(space, arg, *, profile, seed, **options) -> Estimator`` as ``name`` (a decorator
    when ``factory`` is omitted)."""
    def add(f: Factory) -> Factory:
        _REGISTRY[name] = f
        return f
    return add(factory) if factory is not None else add


register_estimator("gennape", lambda space, arg, *, profile, seed, **kw: GENNAPEEstimator(space, arg, **kw))
register_estimator("rwe", lambda space, arg, *, profile, seed, **kw: RWEEstimator(space, profile, seed, **kw))


def _labels(arg: str | None, options: dict) -> Any:
    """The label source: ``NAME:PATH``'s path, else the ``labels`` option, else the shipped zoo."""
    labels = options.pop("labels", DEFAULT_ZOO)
    return arg or labels


register_estimator("graf_rf", lambda space, arg, *, profile, seed, **kw:
                   GRAFForestEstimator(space, _labels(arg, kw), profile=profile, seed=seed, **kw))
register_estimator("oracle", lambda space, arg, *, profile, seed, **kw: OracleEstimator(space, _labels(arg, kw), **kw))


@register_estimator("random")
def _random(space, arg, *, profile, seed, **kw) -> Estimator:
    inner = make_estimator(arg or kw.pop("scorer", DEFAULT_RANDOM_SCORER), space, profile=profile, **kw)
    if inner.algorithm == "random":
        raise ValueError("random:NAME scores random samples with NAME; NAME cannot be random itself")
    return RandomSearch(inner)


def _proxy_names() -> tuple[str, ...]:
    from ..predictors.proxies import PROXY_NAMES

    return PROXY_NAMES


def estimator_names() -> list[str]:
    """Every registered estimator name, then the zero-cost proxies."""
    return [*_REGISTRY, *_proxy_names()]


def make_estimator(estimator: str | Estimator | Callable, space: str | Space, *, profile: str = "zoo",
                   seed: int = 0, **options) -> Estimator:
    """The estimator named ``estimator`` (``"NAME"`` or ``"NAME:ARG"``) for ``space``, or ``estimator``
    itself when it already is one (a callable is wrapped in :class:`FunctionEstimator`).

    ``seed`` seeds the estimator (proxy batch, forest), not the search, so runs of different search seeds
    score alike; ``options`` go to the estimator's constructor. Raises ValueError for an unknown name."""
    if isinstance(estimator, Estimator):
        return estimator
    if callable(estimator):
        return FunctionEstimator(estimator, **options)
    if not isinstance(estimator, str) or not estimator.strip():
        raise ValueError(f"estimator must be a name, an Estimator or a callable; got {estimator!r}")
    space = get_space(space)
    name, _, arg = estimator.strip().partition(":")
    if name in _REGISTRY:
        return _REGISTRY[name](space, arg or None, profile=profile, seed=seed, **options)
    if name in _proxy_names():
        if arg:
            raise ValueError(f"proxy estimator {name!r} takes no ':{arg}' option")
        return ProxyEstimator(space, name, profile=profile, seed=seed, **options)
    raise ValueError(f"unknown estimator {estimator!r}; known estimators: {', '.join(estimator_names())} "
                     "(gennape, graf_rf, oracle and random take an option after a colon, e.g. oracle:zoo.nc)")
