"""Rank quality against cost: every estimator of nape on the same zoo architectures, one number each.

Quality is the **Spearman** (and Kendall τ) of an estimator's score with the zoo's trained label (test
accuracy on the offline task, mean over the training seeds), within one family; cost is the **wall-clock
seconds per architecture** the estimator spends to score one network. The estimators:

* each zero-cost proxy (FLOPs and parameters among them): its own computation time, from the proxy
  cache of :mod:`nape_utils.experiments.comparison` where it has the network;
* RWE (:mod:`nape_utils.predictors.rwe`) at one or more training-subset sizes, on the task the zoo was
  trained on: build, features, fit and validation of each network (the task's rendering excluded);
* GRAF + random forest, out of fold: the family's architectures are cut into ``folds`` seeded folds,
  each fold is predicted by a forest fitted on the others, so every architecture gets one prediction
  from a forest that never saw its label. Cost = its features + the fits and predictions amortised over
  the family's architectures. **The labels the forests learn from are not counted** (they are the zoo's
  training runs); :func:`graf_rf_estimates` puts their total in ``attrs["label_seconds"]``;
* GENNAPE zero-shot (a shipped pretrained model, ``nb101-cifar10`` by default): computation graph,
  featurisation and one batched prediction amortised;
* full zoo training itself (:func:`training_agreement`): the cost of one training run, and the Spearman
  of one seed's labels with another seed's (averaged over seed pairs): what an estimator that *is* a
  training run reaches, the natural upper anchor.

Estimates travel in one long table (:data:`ESTIMATE_COLUMNS`: family, spec, estimator, score, seconds
and an optional kind); :func:`cost_quality` turns it into one row per (family, estimator)
(:data:`RESULT_COLUMNS`), :func:`pooled` averages the rows over families and :func:`plot_cost_quality`
draws seconds (log scale) against Spearman. A NaN score (a proxy or RWE that failed on a network) ranks
that network last, as NASLib scores a failure, and is counted in ``n_failed``.

Label noise bounds every estimator: with seed-to-seed Spearman r between k training seeds, the seed mean
has Spearman–Brown reliability R = k r / (1 + (k − 1) r), and no score can correlate with the noisy labels
much above √R (``ceiling`` in :func:`training_agreement`'s rows; the classical attenuation bound, exact
for Pearson and approximate for Spearman).
"""
from __future__ import annotations

import json
import time
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from ..checks import is_whole
from ..metrics import kendall_tau, spearman
from ..predictors.proxies import PROXY_NAMES
from ..spaces import get_space

__all__ = ["ESTIMATE_COLUMNS", "RESULT_COLUMNS", "DEFAULT_SOURCES", "KIND_PROXY", "KIND_RWE", "KIND_GRAF",
           "KIND_GENNAPE", "KIND_TRAINING", "zoo_summary", "pick_zoo", "zoo_task", "cap_archs", "proxy_estimates",
           "rwe_estimates", "gennape_estimates", "graf_rf_estimates", "training_agreement", "cost_quality", "pooled",
           "plot_cost_quality"]

#: the long table of estimates: one row per (family, spec, estimator); ``kind`` is optional
ESTIMATE_COLUMNS = ("family", "spec", "estimator", "score", "seconds")
#: one row per (family, estimator); ``seconds_per_arch`` in seconds (wall clock), correlations in [-1, 1]
RESULT_COLUMNS = ("family", "estimator", "kind", "n_archs", "n_failed", "spearman", "kendall", "seconds_per_arch",
                  "ceiling")
#: where :func:`pick_zoo` looks, in order of preference (relative to the repository root)
DEFAULT_SOURCES = ("results/zoo/zoo.nc", "results/zoo/zoo.sqlite", "results/zoo/pilot-4ep.sqlite")

KIND_PROXY = "zero-cost proxy"
KIND_RWE = "RWE"
KIND_GRAF = "GRAF + RF"
KIND_GENNAPE = "GENNAPE zero-shot"
KIND_TRAINING = "zoo training"


# ---------------------------------------------------------------------------------------------------
# the zoo
# ---------------------------------------------------------------------------------------------------
def _open_zoo(path: Path):
    """The zoo Dataset of a NetCDF export or a store; None for a store without runs yet."""
    from ..zoo.export import load_zoo, to_dataset
    from ..zoo.store import ZooStore

    if path.suffix == ".sqlite":
        with ZooStore(path, readonly=True) as store:
            runs, config = store.runs(), store.config
        return None if runs.empty else to_dataset(runs, None, config)
    return load_zoo(path)


def zoo_summary(ds) -> pd.DataFrame:
    """Per family of a zoo Dataset: complete architectures (trained at every seed of the family), the
    family's seeds, budget (epochs) and the mean seconds of one training run. Families may have different
    numbers of seeds; the Dataset's seed axis is their union, NaN where a family has no run."""
    space = ds["space"].values.astype(str)
    accuracy = ds["test_accuracy"].values
    rows = []
    for family in sorted(set(space)):
        keep = space == family
        trained = ~np.isnan(accuracy[keep]).all(axis=0)
        seconds = ds["seconds"].values[keep][:, trained] if "seconds" in ds else np.array([np.nan])
        rows.append({"family": family, "archs": int(keep.sum()), "seeds": int(trained.sum()),
                     "budget_epochs": int(ds.attrs.get("budget_epochs", -1)), "run_seconds": float(np.mean(seconds))})
    return pd.DataFrame(rows, columns=["family", "archs", "seeds", "budget_epochs", "run_seconds"])


def pick_zoo(sources: Sequence[str | Path] = DEFAULT_SOURCES, min_archs: int = 8):
    """The first of ``sources`` (zoo exports ``.nc`` or stores ``.sqlite``) that has at least one family
    with ``min_archs`` complete architectures.

    Returns ``(path, dataset, overview)``: ``overview`` lists every source looked at (``source``,
    ``family``, ``archs``, ``seeds``, ``status``), so a notebook can say what each held. Raises ValueError
    when none qualifies."""
    if not is_whole(min_archs) or min_archs < 3:
        raise ValueError(f"min_archs must be an integer >= 3, got {min_archs!r}")
    sources = [Path(s) for s in ([sources] if isinstance(sources, (str, Path)) else sources)]
    if not sources:
        raise ValueError("no zoo sources given")
    rows, chosen = [], None
    for path in sources:
        if not path.is_file():
            rows.append({"source": str(path), "family": "", "archs": 0, "seeds": 0, "status": "absent"})
            continue
        ds = _open_zoo(path)
        if ds is None:
            rows.append({"source": str(path), "family": "", "archs": 0, "seeds": 0, "status": "no runs yet"})
            continue
        summary = zoo_summary(ds)
        usable = bool((summary["archs"] >= min_archs).any())
        status = ("used" if chosen is None else "not needed") if usable else f"no family with {min_archs}+ archs"
        for _, r in summary.iterrows():
            rows.append({"source": str(path), "family": r["family"], "archs": int(r["archs"]), "seeds": int(r["seeds"]),
                         "status": status})
        if usable and chosen is None:
            chosen = (path, ds)
    overview = pd.DataFrame(rows, columns=["source", "family", "archs", "seeds", "status"])
    if chosen is None:
        raise ValueError(f"no zoo source has a family with at least {min_archs} complete architectures:\n"
                         + overview.to_string(index=False))
    return chosen[0], chosen[1], overview


def zoo_task(ds):
    """The offline task (``TaskConfig``) a zoo Dataset's networks were trained on (from its ``config``
    attribute; the default task when the Dataset does not record one)."""
    from ..data.task import TaskConfig

    config = ds.attrs.get("config", "{}")
    config = json.loads(config) if isinstance(config, str) else dict(config)
    return TaskConfig.from_dict(config["task"]) if "task" in config else TaskConfig()


def cap_archs(labels: pd.DataFrame, max_per_family: int | None, seed: int = 0) -> pd.DataFrame:
    """At most ``max_per_family`` architectures of each family, a seeded random subset (order kept);
    ``None`` keeps all."""
    labels = _check_labels(labels)
    if max_per_family is None:
        return labels
    if not is_whole(max_per_family) or max_per_family < 2:
        raise ValueError(f"max_per_family must be an integer >= 2 or None, got {max_per_family!r}")
    keep = np.zeros(len(labels), dtype=bool)
    rng = np.random.default_rng(seed)
    for family in dict.fromkeys(labels["family"]):
        rows = np.flatnonzero(labels["family"].to_numpy() == family)
        pick = rows if len(rows) <= max_per_family else np.sort(rng.choice(rows, max_per_family, replace=False))
        keep[pick] = True
    return labels[keep].reset_index(drop=True)


# ---------------------------------------------------------------------------------------------------
# estimates, one long table per estimator
# ---------------------------------------------------------------------------------------------------
def _check_labels(labels) -> pd.DataFrame:
    """``labels`` checked by the comparison's rules (family, space, spec, finite accuracy, no repeats)."""
    from .comparison import check_table

    return check_table(labels)


def _long(labels: pd.DataFrame, estimator: str, kind: str, score, seconds) -> pd.DataFrame:
    return pd.DataFrame({"family": labels["family"].to_numpy(), "spec": labels["spec"].to_numpy(),
                         "estimator": estimator, "kind": kind, "score": np.asarray(score, dtype=float),
                         "seconds": np.asarray(seconds, dtype=float)})


def proxy_estimates(labels: pd.DataFrame, proxy_values: pd.DataFrame, proxies: Iterable[str] = PROXY_NAMES
                    ) -> pd.DataFrame:
    """Long estimates of each proxy from a table of proxy values (``space``, ``spec``, ``<proxy>`` and
    ``<proxy>_seconds`` columns, as :func:`nape_utils.experiments.comparison.proxy_table` returns).
    Raises ValueError for a proxy the table lacks or a labelled architecture it does not cover."""
    labels = _check_labels(labels)
    proxies = list(proxies)
    missing = [c for p in proxies for c in (p, f"{p}_seconds") if c not in proxy_values.columns]
    if missing:
        raise ValueError(f"the proxy table lacks column(s) {', '.join(missing)}")
    merged = labels[["family", "space", "spec"]].merge(
        proxy_values.drop_duplicates(["space", "spec"]), how="left", on=["space", "spec"], indicator=True)
    absent = merged["_merge"] != "both"
    if absent.any():
        row = merged[absent].iloc[0]
        raise ValueError(f"the proxy table has no values for {int(absent.sum())} labelled architectures "
                         f"(first: {row['space']} {row['spec'][:60]})")
    return pd.concat([_long(labels, p, KIND_PROXY, merged[p], np.nan_to_num(merged[f"{p}_seconds"].to_numpy(float)))
                      for p in proxies], ignore_index=True)


def rwe_estimates(labels: pd.DataFrame, n_train: int = 1000, *, task=None, seed: int = 0, name: str | None = None,
                  progress: bool = False, **rwe_params) -> pd.DataFrame:
    """Long estimates of RWE (validation accuracy of the random network with its last layer fitted on
    ``n_train`` images of ``task``; see :class:`nape_utils.predictors.rwe.RWE`), one family at a time.
    ``name`` defaults to ``"RWE (n=<n_train>)"``."""
    from ..predictors.rwe import RWE, RWEWarning

    labels = _check_labels(labels)
    est = RWE(n_train=n_train, seed=seed, task=task, **rwe_params)
    parts = []
    for (family, space), rows in labels.groupby(["family", "space"], sort=False):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RWEWarning)  # a NaN score is kept, ranked last and counted
            table = est.score_specs(space, rows["spec"].tolist(), progress=progress)
        parts.append(_long(rows, name or f"RWE (n={n_train})", KIND_RWE, table["rwe_accuracy"], table["seconds"]))
    return pd.concat(parts, ignore_index=True)


def gennape_estimates(labels: pd.DataFrame, model: str = "nb101-cifar10", *, profile: str = "zoo",
                      name: str | None = None) -> pd.DataFrame:
    """Long estimates of a shipped (or saved) GENNAPE model's zero-shot predicted accuracy, from the
    computation graph of each network at ``profile`` (``"zoo"``: the networks the zoo trained). Seconds
    per network: graph + featurisation, plus the family's batched prediction divided among its networks.
    Families whose zoo labels the model was fitted on (its card's ``zoo_families_trained_on``) are left
    out: scoring them would not be zero-shot."""
    from ..encoders import featurize
    from ..graphs import graph_of
    from ..predictors.pretrained import load_pretrained

    labels = _check_labels(labels)
    gennape, card = load_pretrained(model)
    name = name or f"GENNAPE zero-shot ({card.get('name', model)})"
    parts = []
    seen = set(card.get("zoo_families_trained_on", []))
    for (family, space), rows in labels.groupby(["family", "space"], sort=False):
        if space in seen:
            continue
        data, seconds = [], []
        for spec in rows["spec"]:
            start = time.perf_counter()
            data.append(featurize(graph_of(space, spec, profile)))
            seconds.append(time.perf_counter() - start)
        start = time.perf_counter()
        predicted = gennape.predict(data)
        per_net = (time.perf_counter() - start) / len(data)
        parts.append(_long(rows, name, KIND_GENNAPE, predicted, np.asarray(seconds) + per_net))
    if not parts:
        raise ValueError(f"every family of the labels is one {model} was fitted on ({', '.join(sorted(seen))}); "
                         "nothing is left to score zero-shot")
    return pd.concat(parts, ignore_index=True)


def graf_rf_estimates(labels: pd.DataFrame, *, folds: int = 5, seed: int = 0, profile: str = "zoo",
                      model: str = "rf", name: str | None = None) -> pd.DataFrame:
    """Long out-of-fold estimates of GRAF + random forest: each family's architectures in ``folds``
    seeded folds, each fold predicted by a forest fitted on the others' labels (``seed`` seeds the folds
    and the forests). Seconds per network: its GRAF features (at ``profile`` for families whose features
    come from the computation graph) plus all fits and predictions divided among the family's networks.
    ``attrs["label_seconds"]``: per family, the training seconds of the labels one forest learns from
    (mean fold), when ``labels`` has ``label_seconds``; they are *not* in ``seconds``."""
    from ..predictors.graf import GRAFRegressor, graf_features

    labels = _check_labels(labels)
    if not is_whole(folds) or folds < 2:
        raise ValueError(f"folds must be an integer >= 2, got {folds!r}")
    parts, label_seconds = [], {}
    for (family, space), rows in labels.groupby(["family", "space"], sort=False):
        n = len(rows)
        if n < 2 * folds:
            raise ValueError(f"family {family} has {n} architectures; {folds}-fold GRAF + RF needs at least "
                             f"{2 * folds} (two per fold)")
        start = time.perf_counter()
        X = graf_features(space, rows["spec"].tolist(), profile=profile).to_numpy(float)
        feature_seconds = (time.perf_counter() - start) / n
        y = rows["accuracy"].to_numpy(float)
        fold_of = np.random.default_rng(seed).permutation(n) % folds
        predicted, model_seconds = np.full(n, np.nan), 0.0
        for k in range(folds):
            test = fold_of == k
            start = time.perf_counter()
            forest = GRAFRegressor(model=model, seed=seed).fit(X[~test], y[~test])
            predicted[test] = forest.predict(X[test])
            model_seconds += time.perf_counter() - start
        parts.append(_long(rows, name or f"GRAF + RF ({folds}-fold)", KIND_GRAF, predicted,
                           np.full(n, feature_seconds + model_seconds / n)))
        if "label_seconds" in rows:
            label_seconds[family] = float(rows["label_seconds"].sum() * (folds - 1) / folds)
    out = pd.concat(parts, ignore_index=True)
    out.attrs["label_seconds"] = label_seconds
    return out


# ---------------------------------------------------------------------------------------------------
# quality against cost
# ---------------------------------------------------------------------------------------------------
def _ranked_last_for_nan(score: np.ndarray) -> np.ndarray:
    from .comparison import _lowest_for_nan

    return _lowest_for_nan(score)


def _correlations(y: np.ndarray, score: np.ndarray) -> tuple[float, float]:
    """(Spearman, Kendall τ); NaN when the score (or the label) is constant: it ranks nothing."""
    if np.ptp(score) == 0 or np.ptp(y) == 0:
        return float("nan"), float("nan")
    return spearman(y, score), kendall_tau(y, score)


def _check_estimates(estimates) -> pd.DataFrame:
    if not isinstance(estimates, pd.DataFrame):
        raise ValueError(f"estimates must be a pandas DataFrame, got {type(estimates).__name__}")
    missing = [c for c in ESTIMATE_COLUMNS if c not in estimates.columns]
    if missing:
        raise ValueError(f"estimates lack column(s) {', '.join(missing)}; they need {', '.join(ESTIMATE_COLUMNS)} "
                         f"(got {', '.join(map(str, estimates.columns))})")
    if estimates.empty:
        raise ValueError("estimates are empty")
    est = estimates.copy()
    est["family"], est["estimator"] = est["family"].astype(str), est["estimator"].astype(str)
    if "kind" not in est.columns:
        est["kind"] = ""
    try:
        est["score"], est["seconds"] = est["score"].astype(float), est["seconds"].astype(float)
    except (TypeError, ValueError):
        raise ValueError("the score and seconds columns must be numeric") from None
    bad = ~np.isfinite(est["seconds"].to_numpy()) | (est["seconds"].to_numpy() < 0)
    if bad.any():
        row = est[bad].iloc[0]
        raise ValueError(f"{int(bad.sum())} estimates have a negative or non-finite seconds value (first: "
                         f"{row['estimator']} on {row['family']} {str(row['spec'])[:60]}: {row['seconds']}); "
                         "seconds are wall-clock seconds per architecture, >= 0")
    if np.isinf(est["score"].to_numpy()).any():
        raise ValueError("scores must not be inf (NaN marks a failed estimate and ranks its architecture last)")
    twice = est.duplicated(["family", "spec", "estimator"])
    if twice.any():
        row = est[twice].iloc[0]
        raise ValueError(f"{int(twice.sum())} estimates are repeated (first: {row['estimator']} on {row['family']} "
                         f"{str(row['spec'])[:60]})")
    kinds = est.groupby("estimator")["kind"].nunique()
    if (kinds > 1).any():
        raise ValueError(f"estimator {kinds[kinds > 1].index[0]!r} has more than one kind")
    return est


def cost_quality(labels: pd.DataFrame, estimates: pd.DataFrame, *, min_archs: int = 8) -> pd.DataFrame:
    """One row per (family, estimator): ``n_archs``, ``n_failed`` (NaN scores, ranked last), ``spearman``
    and ``kendall`` with the label, ``seconds_per_arch`` (mean over the family's networks; wall-clock
    seconds) and ``kind``; columns :data:`RESULT_COLUMNS` (``ceiling`` is NaN here).

    Every estimator present in a family must score every labelled architecture of that family and nothing
    else (ValueError otherwise, naming the first offender). A family with fewer than ``min_archs``
    labelled architectures is skipped, with a note in ``attrs["skipped"]``."""
    labels = _check_labels(labels)
    est = _check_estimates(estimates)
    if not is_whole(min_archs) or min_archs < 3:
        raise ValueError(f"min_archs must be an integer >= 3 (a rank correlation on fewer says little), "
                         f"got {min_archs!r}")
    unknown = sorted(set(est["family"]) - set(labels["family"]))
    if unknown:
        raise ValueError(f"estimates name families without labels: {', '.join(unknown)}")
    rows, skipped = [], []
    for family in dict.fromkeys(labels["family"]):
        fam = labels[labels["family"] == family]
        if len(fam) < min_archs:
            skipped.append(f"{family}: {len(fam)} labelled architectures, fewer than {min_archs}: skipped")
            continue
        y = fam["accuracy"].to_numpy(float)
        specs = fam["spec"].to_numpy()
        for estimator, part in est[est["family"] == family].groupby("estimator", sort=False):
            part = part.set_index("spec")
            extra = part.index.difference(specs)
            if len(extra):
                raise ValueError(f"{estimator} scores {len(extra)} architecture(s) of {family} that have no label "
                                 f"(first: {str(extra[0])[:60]})")
            lacking = [s for s in specs if s not in part.index]
            if lacking:
                raise ValueError(f"{estimator} lacks {len(lacking)} of the {len(specs)} labelled architectures of "
                                 f"{family} (first: {lacking[0][:60]}); score every one, NaN where it failed")
            part = part.loc[specs]
            score = part["score"].to_numpy(float)
            rho, tau = _correlations(y, _ranked_last_for_nan(score))
            rows.append({"family": family, "estimator": estimator, "kind": part["kind"].iloc[0], "n_archs": len(specs),
                         "n_failed": int(np.isnan(score).sum()), "spearman": rho, "kendall": tau,
                         "seconds_per_arch": float(part["seconds"].mean()), "ceiling": float("nan")})
    table = pd.DataFrame(rows, columns=list(RESULT_COLUMNS))
    table.attrs["skipped"] = "\n".join(skipped)
    return table


def training_agreement(ds, labels: pd.DataFrame | None = None, *, target: str = "test_accuracy",
                       name: str = "zoo training (1 seed)") -> pd.DataFrame:
    """Full training as an estimator, one row per family (:data:`RESULT_COLUMNS`): the Spearman and
    Kendall τ of one seed's ``target`` with another seed's (mean over seed pairs), the mean seconds of one
    training run, and the ``ceiling`` √R that label noise puts on any estimator's Spearman with the seed
    mean (R: Spearman–Brown reliability of the mean of the zoo's seeds). ``labels`` keeps only its
    (space, spec) architectures (e.g. after :func:`cap_archs`) and names the families; without it the
    family is the space. A family trained at fewer than 2 seeds gets NaN."""
    from ..zoo.export import spearman_brown

    if target not in ds:
        raise ValueError(f"the zoo has no variable {target!r}; it has {', '.join(map(str, ds.data_vars))}")
    if "seconds" not in ds:
        raise ValueError("the zoo has no 'seconds' variable: the cost of a training run is unknown")
    frame = pd.DataFrame({"space": ds["space"].values.astype(str), "spec": ds["spec"].values.astype(str)})
    if labels is None:
        frame["family"] = frame["space"]
    else:
        labels = _check_labels(labels)
        frame = frame.reset_index().merge(labels[["family", "space", "spec"]], on=["space", "spec"])
        frame = frame.set_index("index")
        if len(frame) < len(labels):
            raise ValueError(f"{len(labels) - len(frame)} labelled architectures are not in the zoo Dataset")
    values, seconds = ds[target].values, ds["seconds"].values
    rows = []
    for family, part in frame.groupby("family", sort=False):
        acc, secs = values[part.index.to_numpy()], seconds[part.index.to_numpy()]
        trained = ~np.isnan(acc).all(axis=0)  # families may be trained at different numbers of seeds
        acc, secs, k = acc[:, trained], secs[:, trained], int(trained.sum())
        pairs = [(i, j) for i in range(k) for j in range(i + 1, k)]
        rhos = [_correlations(acc[:, i], acc[:, j]) for i, j in pairs]
        rho = float(np.nanmean([r[0] for r in rhos])) if rhos else float("nan")
        tau = float(np.nanmean([r[1] for r in rhos])) if rhos else float("nan")
        reliability = spearman_brown(rho, k) if np.isfinite(rho) else float("nan")
        rows.append({"family": family, "estimator": name, "kind": KIND_TRAINING, "n_archs": len(part), "n_failed": 0,
                     "spearman": rho, "kendall": tau, "seconds_per_arch": float(np.mean(secs)),
                     "ceiling": float(np.sqrt(reliability)) if np.isfinite(reliability) and reliability > 0 else float("nan")})
    return pd.DataFrame(rows, columns=list(RESULT_COLUMNS))


def pooled(table: pd.DataFrame) -> pd.DataFrame:
    """Per estimator, over the families of ``table`` (rows of :func:`cost_quality` and/or
    :func:`training_agreement`): ``spearman``/``kendall`` = the mean of the within-family correlations
    (rankings are only meaningful inside a family), with ``spearman_min``/``spearman_max`` over families;
    ``seconds_per_arch`` = the mean over all architectures (families weighted by their size);
    ``n_families`` and ``n_archs``; ``family`` = "pooled"."""
    missing = [c for c in ("family", "estimator", "kind", "n_archs", "spearman", "kendall", "seconds_per_arch")
               if c not in table.columns]
    if missing:
        raise ValueError(f"the table lacks column(s) {', '.join(missing)}: give rows of cost_quality()")
    if table.empty:
        raise ValueError("the table is empty: nothing to pool")
    rows = []
    for estimator, part in table.groupby("estimator", sort=False):
        weights = part["n_archs"].to_numpy(float)
        rows.append({"family": "pooled", "estimator": estimator, "kind": part["kind"].iloc[0],
                     "n_families": int(part["family"].nunique()), "n_archs": int(weights.sum()),
                     "n_failed": int(part["n_failed"].sum()) if "n_failed" in part else 0,
                     "spearman": _nanmean(part["spearman"]), "spearman_min": _nanmin(part["spearman"]),
                     "spearman_max": _nanmax(part["spearman"]), "kendall": _nanmean(part["kendall"]),
                     "seconds_per_arch": float(np.average(part["seconds_per_arch"], weights=weights)),
                     "ceiling": _nanmean(part["ceiling"]) if "ceiling" in part else float("nan")})
    return pd.DataFrame(rows)


def _finite(values) -> np.ndarray:
    values = np.asarray(values, dtype=float)
    return values[np.isfinite(values)]


def _nanmean(values) -> float:
    v = _finite(values)
    return float(v.mean()) if len(v) else float("nan")


def _nanmin(values) -> float:
    v = _finite(values)
    return float(v.min()) if len(v) else float("nan")


def _nanmax(values) -> float:
    v = _finite(values)
    return float(v.max()) if len(v) else float("nan")


# ---------------------------------------------------------------------------------------------------
# the figure
# ---------------------------------------------------------------------------------------------------
#: marker and colour per kind
STYLE = {KIND_PROXY: ("o", "#8c8c8c"), KIND_RWE: ("*", "#d62728"), KIND_GRAF: ("s", "#2ca02c"),
         KIND_GENNAPE: ("D", "#9467bd"), KIND_TRAINING: ("P", "#1f77b4")}


def _spread_labels(ys: np.ndarray, gap: float) -> np.ndarray:
    """Label heights close to ``ys`` with at least ``gap`` between neighbours (in the order of ``ys``)."""
    order = np.argsort(ys, kind="stable")
    placed = ys[order].astype(float).copy()
    for _ in range(200):
        moved = False
        for i in range(1, len(placed)):
            overlap = gap - (placed[i] - placed[i - 1])
            if overlap > 1e-9:
                placed[i - 1] -= overlap / 2
                placed[i] += overlap / 2
                moved = True
        if not moved:
            break
    out = np.empty_like(placed)
    out[order] = placed
    return out


def _label_columns(xs: np.ndarray, split_decades: float = 0.6) -> np.ndarray:
    """A cluster id per point: points whose sorted log10 x lie within ``split_decades`` of the next share
    a cluster (and a column of labels)."""
    order = np.argsort(xs, kind="stable")
    logs = np.log10(xs[order])
    ids = np.concatenate([[0], np.cumsum(np.diff(logs) > split_decades)])
    out = np.empty(len(xs), dtype=int)
    out[order] = ids
    return out


def plot_cost_quality(table: pd.DataFrame, *, ax=None, title: str | None = None, ranges: bool = True,
                      label_points: bool = True, ceiling: float | None = None,
                      ceiling_label: str = "label-noise ceiling"):
    """Seconds per architecture (log x) against Spearman (y) for the rows of ``table`` (one family, or
    :func:`pooled` rows: with ``ranges``, a vertical bar spans ``spearman_min``…``spearman_max``).
    Markers and colours by kind; each point named. ``ceiling`` draws the label-noise bound as a dashed
    line, named ``ceiling_label``. Returns the figure."""
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    rows = table[np.isfinite(table["spearman"].to_numpy(float)) & (table["seconds_per_arch"] > 0)]
    if rows.empty:
        raise ValueError("no row has a finite Spearman and positive seconds: nothing to draw")
    if ax is None:
        _, ax = plt.subplots(figsize=(10, 6.5))
    for _, r in rows.iterrows():
        marker, colour = STYLE.get(r["kind"], ("o", "k"))
        if ranges and {"spearman_min", "spearman_max"} <= set(rows.columns) and np.isfinite(r["spearman_min"]):
            ax.vlines(r["seconds_per_arch"], r["spearman_min"], r["spearman_max"], color=colour, alpha=0.25, lw=1.2)
        ax.scatter(r["seconds_per_arch"], r["spearman"], marker=marker, color=colour, edgecolor="k", linewidth=0.5,
                   s=150 if marker == "*" else 60, zorder=3)
    ax.set_xscale("log")
    lo, hi = rows["seconds_per_arch"].min(), rows["seconds_per_arch"].max()
    ax.set_xlim(lo / 3, hi * 30)
    ax.axhline(0, color="0.3", lw=0.8)
    if ceiling is not None and np.isfinite(ceiling):
        ax.axhline(ceiling, color="0.4", lw=1, ls="--")
        ax.text(lo / 2.5, ceiling, f" {ceiling_label}", va="bottom", fontsize=8, color="0.3")
    if label_points:  # one column of names to the right of each cluster of points, spread vertically
        y0, y1 = ax.get_ylim()
        xs, ys = rows["seconds_per_arch"].to_numpy(float), rows["spearman"].to_numpy(float)
        cluster = _label_columns(xs)
        for c in np.unique(cluster):
            members = np.flatnonzero(cluster == c)
            heights = _spread_labels(ys[members], gap=(y1 - y0) * 0.03)
            column = xs[members].max() * 1.6
            for i, h in zip(members, heights):
                ax.annotate(rows["estimator"].iloc[i], (xs[i], ys[i]), xytext=(column, h), textcoords="data",
                            fontsize=7.5, va="center", arrowprops={"arrowstyle": "-", "color": "0.65", "lw": 0.5})
    kinds = [k for k in STYLE if k in set(rows["kind"])]
    ax.legend([Line2D([], [], marker=STYLE[k][0], color=STYLE[k][1], ls="", markeredgecolor="k",
                      markersize=12 if STYLE[k][0] == "*" else 7) for k in kinds], kinds, fontsize=8, loc="lower right")
    ax.set(xlabel="seconds per architecture (wall clock, log scale)", ylabel="Spearman with trained accuracy",
           title=title or "")
    ax.grid(True, which="major", alpha=0.3)
    return ax.figure
