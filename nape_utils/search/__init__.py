"""Multi-objective architecture search over any nape space, guided by any estimator (pymoo NSGA-II).

- :func:`search` runs NSGA-II (or random search at the same budget) and records every generation's
  Pareto front and hypervolume; :func:`verify` trains the finds with the zoo trainer;
- :func:`make_estimator` / :func:`estimator_names`: the estimators a search can be guided by;
- :class:`ArchProblem` and the operators live in :mod:`.problem`; reference networks in :mod:`.reference`.

Layer: imports spaces, graphs, predictors and zoo; never experiments or the CLI.
"""
from .estimators import Estimator, estimator_names, load_labels, make_estimator, register_estimator
from .problem import REF_POINT, ArchProblem, hypervolume, objective_bounds
from .reference import reference_spec
from .run import SearchResult, Verification, search, verify

__all__ = ["REF_POINT", "ArchProblem", "Estimator", "SearchResult", "Verification", "estimator_names", "hypervolume",
           "load_labels", "make_estimator", "objective_bounds", "reference_spec", "register_estimator", "search",
           "verify"]
