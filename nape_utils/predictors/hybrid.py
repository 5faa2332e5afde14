"""nape's hybrid estimator: pool-relative, label-free features and order-aware models fitted on several families.

A proxy's raw value lives on its family's scale (widths, depth, resolution, number of cells), so a model fitted
to NB-101's raw synflow or FLOPs ranks NB-201 poorly; where an architecture stands *within the pool being
scored* transfers. For a pool P and a feature f (log FLOPs, log parameters, a zero-cost proxy), the estimator
sees the centred percentile

    r_f(x) = (rank of f(x) in f(P) − ½) / |P| − ½        ∈ (−½, ½),

with average ranks for ties and a failed (NaN) value ranked below every other. Two models read r:

* a **linear ranker** s_lin(x) = w · r(x) fitted by pairwise logistic ranking inside each training family F
  (ranks of different pools are not comparable) and shrunk towards the label-free prior w₀, the equal-weight
  rank average:  L(w) = Σ_F mean_{(i,j) ∈ F, y_i > y_j} log(1 + exp(−(s_i − s_j)/τ)) + λ ‖w − w₀‖²;
* an **extra-trees forest** s_tree(x) = T([r(x), c(P)]) fitted to the label percentile within each family,
  where c(P) are the pairwise Spearman correlations of the features *over the pool*: a label-free description
  of the family (in some families big gradients go with good networks, in others with bad ones, and the
  features' mutual correlations tell the two apart).

Every training family weighs the same, however many labels it has. The zero-shot score is the sum of the two
models' percentiles in the pool, so a prediction depends on the pool given: the same architecture can score
differently in another pool. A family of the target's own space is left out of training (``predict(...,
space=...)``): an estimator never ranks a family it was fitted on.

k-shot (:meth:`HybridEstimator.calibrate`): with k labelled architectures of the pool, a ridge regression (and
optionally a random forest) maps [zero-shot score, r] to the labels' percentiles, and the pool is ranked by it.
The recipe was chosen by measurement (results/transfer/README.md).

Saved models are JSON (the training families' ranks and labels and the settings); the forest is refitted on
load, deterministically, so nothing read from disk can run code.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
from scipy.optimize import minimize
from scipy.stats import rankdata

FORMAT = "nape-hybrid/1"
#: proxies computed for every pool: the cheapest with rank correlation to spare (results/transfer/README.md)
DEFAULT_PROXIES = ("nwot", "jacov", "synflow", "l2_norm", "grad_norm")
DEFAULT_FEATURES = ("flops", "params", *DEFAULT_PROXIES)
#: what the linear ranker reads (the forest reads every feature)
LINEAR_FEATURES = ("flops", "params", "nwot", "jacov", "synflow")


def pool_ranks(values) -> np.ndarray:
    """Centred percentiles within the pool, column by column: (rank − ½)/n − ½; NaN ranks lowest."""
    values = np.asarray(values, dtype=float)
    if values.ndim == 1:
        values = values[:, None]
    if len(values) == 0:
        raise ValueError("an empty pool has no ranks")
    out = np.empty_like(values)
    for j in range(values.shape[1]):
        col = values[:, j]
        bad = ~np.isfinite(col)
        filled = np.where(bad, (np.nanmin(col[~bad]) - 1.0) if (~bad).any() else 0.0, col)
        out[:, j] = (rankdata(filled) - 0.5) / len(col) - 0.5
    return out


def pool_context(ranks: np.ndarray) -> np.ndarray:
    """[N, F(F−1)/2]: the features' pairwise Spearman correlations over the pool, repeated on every row."""
    n, f = ranks.shape
    if f < 2:
        return np.zeros((n, 0))
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = np.nan_to_num(np.corrcoef(ranks.T))  # a constant feature correlates with nothing
    return np.repeat(corr[np.triu_indices(f, 1)][None, :], n, axis=0)


def _pairs(y: np.ndarray, max_pairs: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Index pairs (better, worse): all of them when few, else ``max_pairs`` drawn at random; ties dropped."""
    n = len(y)
    if n * (n - 1) // 2 <= max_pairs:
        i, j = np.triu_indices(n, 1)
    else:
        i, j = rng.integers(0, n, (2, max_pairs))
    keep = y[i] != y[j]
    i, j = i[keep], j[keep]
    swap = y[i] < y[j]
    return np.where(swap, j, i), np.where(swap, i, j)


@dataclass
class HybridConfig:
    features: tuple = DEFAULT_FEATURES
    linear_features: tuple = LINEAR_FEATURES
    prior_strength: float = 1.0     # λ: shrinkage of the linear weights towards the equal-weight rank average
    temperature: float = 0.1        # τ of the pairwise logistic loss, in units of rank difference
    max_pairs: int = 20000          # ordered pairs drawn per family
    trees: int = 300
    min_samples_leaf: int = 20
    max_features: float = 0.5
    shots: str = "ridge"            # k-shot recipe: "ridge" or "ridge+forest"
    seed: int = 0
    extra: dict = field(default_factory=dict)


@dataclass
class _Family:
    space: str
    ranks: np.ndarray       # [n, F] pool ranks of config.features
    accuracy: np.ndarray    # [n]


class HybridEstimator:
    """``fit({name: table})`` on labelled families, ``predict(pool)``, ``calibrate(pool, labelled, y)``,
    ``save``/``load``.

    A *table* is a DataFrame with a ``space`` column, one column per feature of ``config.features`` (raw
    values: FLOPs, parameters, proxy scores; see :func:`pool_features`) and, to train, ``accuracy``."""

    def __init__(self, config: HybridConfig | None = None, **overrides):
        self.config = config or HybridConfig()
        for key, value in overrides.items():
            if not hasattr(self.config, key):
                raise ValueError(f"unknown hybrid setting {key!r}; settings: {', '.join(asdict(self.config))}")
            setattr(self.config, key, value)
        cfg = self.config
        cfg.features, cfg.linear_features = tuple(cfg.features), tuple(cfg.linear_features)
        if not cfg.features:
            raise ValueError("the hybrid estimator needs at least one feature")
        stray = [f for f in cfg.linear_features if f not in cfg.features]
        if stray:
            raise ValueError(f"linear_features {stray} are not among the features {list(cfg.features)}")
        if cfg.shots not in ("ridge", "ridge+forest"):
            raise ValueError(f"shots must be 'ridge' or 'ridge+forest', got {cfg.shots!r}")
        self.families: dict[str, _Family] = {}
        self._models: dict[frozenset, tuple] = {}  # left-out spaces → (linear weights, forest)

    # -- features ---------------------------------------------------------------------------------
    def ranks(self, pool: pd.DataFrame) -> np.ndarray:
        """[N, F] pool ranks of the pool's features (the pool is the whole table)."""
        if not isinstance(pool, pd.DataFrame):
            raise ValueError(f"a pool must be a pandas DataFrame with columns {', '.join(self.config.features)}")
        missing = [f for f in self.config.features if f not in pool.columns]
        if missing:
            raise ValueError(f"the pool lacks feature column(s) {', '.join(missing)}; compute them with "
                             "nape_utils.predictors.hybrid.pool_features")
        if len(pool) < 2:
            raise ValueError(f"a pool needs at least 2 architectures to rank, got {len(pool)}")
        return pool_ranks(pool[list(self.config.features)].to_numpy(dtype=float))

    def _linear_columns(self) -> np.ndarray:
        return np.array([self.config.features.index(f) for f in self.config.linear_features], dtype=int)

    @property
    def prior(self) -> np.ndarray:
        k = len(self.config.linear_features)
        return np.ones(k) / k

    # -- fitting ----------------------------------------------------------------------------------
    def fit(self, tables: dict[str, pd.DataFrame]) -> "HybridEstimator":
        """Keep the labelled families ``{name: table}`` (each its own pool) and fit on all of them."""
        if not tables:
            raise ValueError("fit needs at least one labelled family")
        self.families = {name: self._family(name, table) for name, table in tables.items()}
        self._models = {}
        self._model(frozenset())
        return self

    def _family(self, name: str, table: pd.DataFrame) -> _Family:
        for column in ("space", "accuracy"):
            if column not in table.columns:
                raise ValueError(f"training family {name!r} has no {column} column")
        spaces = table["space"].astype(str).unique()
        if len(spaces) != 1:
            raise ValueError(f"training family {name!r} mixes spaces {list(spaces)}; give each its own table")
        y = table["accuracy"].to_numpy(dtype=float)
        if len(y) < 2 or not np.isfinite(y).all() or np.ptp(y) == 0:
            raise ValueError(f"training family {name!r} needs at least two different, finite accuracies")
        return _Family(str(spaces[0]), self.ranks(table), y)

    def _model(self, left_out: frozenset) -> tuple:
        """(linear weights, forest) fitted on every family whose space is not in ``left_out``."""
        if left_out not in self._models:
            families = [f for f in self.families.values() if f.space not in left_out]
            if not families:
                raise ValueError(f"no training family is left once {sorted(left_out)} is left out")
            self._models[left_out] = (self._fit_linear(families, []), self._fit_forest(families))
        return self._models[left_out]

    def _loss(self, w: np.ndarray, groups: list, group_weights: np.ndarray) -> tuple[float, np.ndarray]:
        cfg = self.config
        total, grad = 0.0, np.zeros_like(w)
        for diff, gw in zip(groups, group_weights):
            margin = diff @ w / cfg.temperature
            total += gw * np.logaddexp(0.0, -margin).mean()
            sig = 0.5 * (1.0 - np.tanh(margin / 2))  # σ(−margin), stable
            grad -= gw * (sig[:, None] * diff).mean(0) / cfg.temperature
        shift = w - self.prior
        return total + cfg.prior_strength * shift @ shift, grad + 2 * cfg.prior_strength * shift

    def _fit_linear(self, families: list[_Family], extra: list[tuple[np.ndarray, np.ndarray, float]]) -> np.ndarray:
        rng = np.random.default_rng(self.config.seed)
        cols = self._linear_columns()
        groups, weights = [], []
        for ranks, y, weight in [(f.ranks, f.accuracy, 1.0 / len(families)) for f in families] + extra:
            i, j = _pairs(y, self.config.max_pairs, rng)
            groups.append(ranks[i][:, cols] - ranks[j][:, cols])
            weights.append(weight)
        result = minimize(self._loss, self.prior.copy(), args=(groups, np.asarray(weights)), jac=True,
                          method="L-BFGS-B")
        return result.x

    def _fit_forest(self, families: list[_Family]):
        from sklearn.ensemble import ExtraTreesRegressor

        cfg = self.config
        X = np.vstack([np.hstack([f.ranks, pool_context(f.ranks)]) for f in families])
        y = np.concatenate([pool_ranks(f.accuracy)[:, 0] for f in families])
        w = np.concatenate([np.full(len(f.accuracy), 1.0 / len(f.accuracy)) for f in families])
        forest = ExtraTreesRegressor(cfg.trees, min_samples_leaf=cfg.min_samples_leaf, max_features=cfg.max_features,
                                     random_state=cfg.seed, n_jobs=1)
        return forest.fit(X, y, sample_weight=w)

    # -- scoring ----------------------------------------------------------------------------------
    def _space_of(self, pool: pd.DataFrame, space: str | None) -> frozenset:
        if space is None and "space" in pool.columns:
            space = sorted(pool["space"].astype(str).unique())
        return frozenset([space] if isinstance(space, str) else (space or []))

    def parts(self, pool: pd.DataFrame, space: str | None = None) -> dict[str, np.ndarray]:
        """The zero-shot score and its parts (``linear``, ``forest``) for every architecture of the pool."""
        self._require_fitted()
        r = self.ranks(pool)
        w, forest = self._model(self._space_of(pool, space))
        linear = r[:, self._linear_columns()] @ w
        tree = forest.predict(np.hstack([r, pool_context(r)]))
        score = pool_ranks(linear)[:, 0] + pool_ranks(tree)[:, 0]
        return {"score": score, "linear": linear, "forest": tree}

    def predict(self, pool: pd.DataFrame, space: str | None = None) -> np.ndarray:
        """Zero-shot scores of the pool's architectures: higher ranks better (a rank score, not an accuracy).

        Families of ``space`` (default: the pool's ``space`` column) are left out of the models used."""
        return self.parts(pool, space)["score"]

    def calibrate(self, pool: pd.DataFrame, labelled, y, space: str | None = None) -> np.ndarray:
        """Scores of the whole pool after learning from the labels ``y`` of its rows ``labelled`` (positions).

        The fitted model is not changed: it serves other pools as before."""
        from sklearn.linear_model import RidgeCV

        labelled = np.asarray(labelled, dtype=int)
        y = np.asarray(y, dtype=float)
        if labelled.ndim != 1 or len(labelled) != len(y):
            raise ValueError(f"calibrate needs one label per labelled row: {len(labelled)} rows, {len(y)} labels")
        if len(y) < 5 or not np.isfinite(y).all() or np.ptp(y) == 0:
            raise ValueError("calibrate needs at least 5 finite labels that are not all equal")
        if labelled.min() < 0 or labelled.max() >= len(pool) or len(set(labelled)) != len(labelled):
            raise ValueError(f"labelled must be distinct row positions in 0..{len(pool) - 1}")
        X = np.column_stack([self.predict(pool, space), self.ranks(pool)])
        target = pool_ranks(y)[:, 0]
        ridge = RidgeCV(alphas=np.logspace(-3, 3, 13)).fit(X[labelled], target)
        score = pool_ranks(ridge.predict(X))[:, 0]
        if self.config.shots == "ridge+forest":
            from sklearn.ensemble import RandomForestRegressor

            forest = RandomForestRegressor(self.config.trees, min_samples_leaf=2, max_features=0.5,
                                           random_state=self.config.seed, n_jobs=1)
            score = score + pool_ranks(forest.fit(X[labelled], target).predict(X))[:, 0]
        return score

    def _require_fitted(self):
        if not self.families:
            raise ValueError("this hybrid estimator is not fitted yet: call fit(tables) or load a saved one")

    # -- persistence (JSON only: nothing loaded can run code) -------------------------------------
    def to_dict(self) -> dict:
        self._require_fitted()
        config = {**asdict(self.config), "features": list(self.config.features),
                  "linear_features": list(self.config.linear_features)}
        return {"format": FORMAT, "config": config,
                "families": {name: {"space": f.space, "ranks": np.round(f.ranks, 6).tolist(),
                                    "accuracy": f.accuracy.tolist()} for name, f in self.families.items()}}

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.part")
        tmp.write_text(json.dumps(self.to_dict()))
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> "HybridEstimator":
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"no hybrid model at {path}")
        try:
            blob = json.loads(path.read_text())
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise ValueError(f"{path} is not a hybrid model (not JSON: {err})") from None
        if not isinstance(blob, dict) or blob.get("format") != FORMAT:
            raise ValueError(f"{path} is not a {FORMAT} model file")
        try:
            model = cls(HybridConfig(**blob["config"]))
            n_features = len(model.config.features)
            model.families = {name: _Family(str(f["space"]), np.asarray(f["ranks"], dtype=float).reshape(-1, n_features),
                                            np.asarray(f["accuracy"], dtype=float))
                              for name, f in blob["families"].items()}
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(f"{path} is not a valid hybrid model ({err})") from None
        model._model(frozenset())
        return model


# ---------------------------------------------------------------------------------------------------
# features of a pool of specs
# ---------------------------------------------------------------------------------------------------
def pool_features(space: str, specs: Sequence[str], features: Sequence[str] = DEFAULT_FEATURES, *,
                  profile: str = "zoo", workers: int = 1, progress: bool = False) -> pd.DataFrame:
    """The raw features of every spec (``space``, ``spec`` and one column per feature): FLOPs and parameters
    of its network at ``profile`` and the zero-cost proxies on nape's offline task (one shared batch, seed 0,
    as the zoo's proxy cache); ``workers`` processes of one torch thread each."""
    from ..zoo.executors import execute

    specs = list(specs)
    if not specs:
        raise ValueError("no architectures given")
    size = -(-len(specs) // (4 * max(workers, 1)))
    chunks = [(i, specs[i:i + size]) for i in range(0, len(specs), size)]
    if workers == 1:
        parts = [_features_chunk(c, space=space, features=tuple(features), profile=profile, progress=progress)
                 for c in chunks]
    else:
        parts = execute(_features_chunk, chunks, workers=workers, space=space, features=tuple(features),
                        profile=profile, progress=False)
    table = pd.concat([p for _, p in sorted(parts, key=lambda p: p[0])], ignore_index=True)
    table.insert(0, "space", space)
    return table


def _features_chunk(chunk: tuple[int, list[str]], space: str, features: tuple, profile: str, progress: bool):
    import warnings

    import torch

    from .proxies import ProxyWarning, score_specs

    torch.set_num_threads(1)
    index, specs = chunk
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ProxyWarning)  # a failed proxy is NaN and ranks last
        table = score_specs(space, specs, list(features), profile=profile, progress=progress)
    return index, table[["spec", *features]]


def module_features(modules: dict, input_shape: Sequence[int], features: Sequence[str] = DEFAULT_FEATURES, *,
                    num_classes: int = 10, seed: int = 0) -> pd.DataFrame:
    """The raw features of arbitrary networks ``{name: nn.Module}`` taking inputs of ``input_shape`` (C, H, W):
    FLOPs and parameters from their computation graphs, the proxies on one shared batch of nape's offline task
    (resized to H × W). One row per network, indexed by name; score them as one pool."""
    import warnings

    from ..graphs import from_module
    from .proxies import ProxyWarning, compute_proxies, make_batch

    if not modules:
        raise ValueError("no networks given")
    shape = tuple(int(s) for s in input_shape)
    x, y = make_batch(shape, num_classes, seed=seed)
    rows = []
    for name, module in modules.items():
        graph = from_module(module, (1, *shape))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ProxyWarning)
            values = compute_proxies(module, x, y, list(features), seed, graph=graph, label=str(name))
        rows.append({"space": "custom", **{f: values[f] for f in features}})
    return pd.DataFrame(rows, index=list(modules))
