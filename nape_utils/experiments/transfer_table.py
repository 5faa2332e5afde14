"""The transfer table: estimators ranking families they were never fitted on, beside every baseline.

Protocol, per family and draw d (``numpy.random.default_rng(d)`` permutes the family's cells): the first k
cells are the labelled shots, **all the others** are the test cells. Every estimator is scored on the same test
cells of the same draw:

* zero-shot (k = 0): ``hybrid`` (nape's hybrid estimator, the family's own space left out of its training
  families), ``GENNAPE`` (a pretrained model, when given), ``FLOPs``, ``params``, each zero-shot proxy, the
  ``a-priori proxy`` (the single proxy that ranks the *source* family best, chosen without the target's
  labels), the label-free ``rank average`` (equal weights over the hybrid's linear features) and the
  ``oracle proxy`` (the proxy that ranks the target's own cells best: it uses the target's labels, so it is an
  upper reference for choosing one proxy, not a baseline an estimator could reach blind); which proxy the
  a-priori and oracle rows chose is the Dataset's ``proxy_choice``;
* k-shot: ``hybrid`` calibrated on the k shots, and ``GRAF + RF`` (GRAF features with a random forest fitted to
  the shots, the GRAF paper's estimator).

Zero-shot scores use the whole family as the pool (they read no label). Metrics: Spearman, Kendall τ and NDCG@10
on the test cells; mean ± sd over draws, and a bootstrap 95 % interval (test cells resampled with replacement in
every draw; percentiles of the mean over draws).
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from ..metrics import kendall_tau, ndcg, spearman
from ..predictors.hybrid import HybridEstimator, pool_ranks
from ..predictors.proxies import PROXY_NAMES

METRICS = ("spearman", "kendall", "ndcg10")
ORACLE = "oracle proxy"
APRIORI = "a-priori proxy"
RANK_AVERAGE = "rank average"


def _metric(name: str, y: np.ndarray, score: np.ndarray) -> float:
    if np.ptp(score) == 0 or np.ptp(y) == 0:
        return float("nan")
    return {"spearman": spearman, "kendall": kendall_tau, "ndcg10": lambda a, b: ndcg(a, b, 10)}[name](y, score)


def _filled(score) -> np.ndarray:
    """A score with NaN (a failed proxy) ranked below every other cell."""
    return pool_ranks(np.asarray(score, dtype=float))[:, 0]


def best_proxy(*tables: pd.DataFrame, proxies: Sequence[str] = PROXY_NAMES) -> str:
    """The proxy (FLOPs and params included) whose score ranks the tables' accuracies best (mean Spearman);
    only proxies every table has are candidates."""
    proxies = [p for p in proxies if all(p in t.columns for t in tables)]

    def quality(proxy: str) -> float:
        return float(np.mean([_metric("spearman", t["accuracy"].to_numpy(float), _filled(t[proxy])) for t in tables]))

    return max(proxies, key=quality)


def zero_shot_scores(table: pd.DataFrame, model: HybridEstimator, apriori: str, gennape=None) -> dict[str, np.ndarray]:
    """Every label-free score of the family's cells (the pool is the whole family); ``gennape``: a callable
    (table → predicted accuracy) or None."""
    scores = {"hybrid": model.predict(table), "FLOPs": _filled(table["flops"]), "params": _filled(table["params"])}
    if gennape is not None:
        scores["GENNAPE"] = np.asarray(gennape(table), dtype=float)
    for proxy in PROXY_NAMES:
        if proxy not in ("flops", "params") and proxy in table.columns:
            scores[proxy] = _filled(table[proxy])
    scores[APRIORI] = _filled(table[apriori])
    scores[RANK_AVERAGE] = pool_ranks(table[list(model.config.linear_features)].to_numpy(float)).sum(1)
    scores[ORACLE] = _filled(table[best_proxy(table)])
    return scores


def _graf_design(table: pd.DataFrame, graf_cache: str | Path | None) -> np.ndarray:
    from .comparison import cached_graf_features

    features, _ = cached_graf_features(table["space"].iloc[0], table["spec"].tolist(), graf_cache)
    return features.to_numpy(float)


def evaluate_family(table: pd.DataFrame, model: HybridEstimator, *, apriori: str, k: int = 50, draws: int = 5,
                    gennape=None, graf_cache: str | Path | None = None, bootstrap: int = 100) -> pd.DataFrame:
    """Long table: one row per (estimator, shots, draw, metric) with the value and the draw's bootstrap means."""
    from ..predictors.graf import GRAFRegressor

    y = table["accuracy"].to_numpy(float)
    if len(y) < k + 10:
        raise ValueError(f"{len(y)} cells leave fewer than 10 test cells after {k} shots")
    zero = zero_shot_scores(table, model, apriori, gennape)
    choices = {APRIORI: apriori, ORACLE: best_proxy(table)}
    graf = _graf_design(table, graf_cache)
    rows = []
    for draw in range(draws):
        order = np.random.default_rng(draw).permutation(len(y))
        shots, test = order[:k], order[k:]
        scored = [(name, 0, score) for name, score in zero.items()]
        scored.append(("hybrid", k, model.calibrate(table, shots, y[shots])))
        forest = GRAFRegressor(model="rf", seed=draw).fit(graf[shots], y[shots])
        scored.append(("GRAF + RF", k, forest.predict(graf)))
        boot = np.random.default_rng(1000 + draw).integers(0, len(test), (bootstrap, len(test)))
        for name, n_shots, score in scored:
            for metric in METRICS:
                value = _metric(metric, y[test], score[test])
                spread = [_metric(metric, y[test][b], score[test][b]) for b in boot]
                rows.append({"estimator": name, "shots": n_shots, "draw": draw, "metric": metric, "value": value,
                             "boot": np.asarray(spread), "choice": choices.get(name, "")})
    return pd.DataFrame(rows)


def to_dataset(results: dict[str, pd.DataFrame], attrs: dict | None = None):
    """An xarray Dataset over (family, estimator, draw): ``<metric>`` per draw, ``<metric>_mean``/``_sd`` and
    the bootstrap interval ``<metric>_low``/``_high``; ``shots`` labels each estimator row."""
    import xarray as xr

    frames = []
    for family, long in results.items():
        long = long.assign(family=family, estimator=[f"{e} (k={s})" if e in ("hybrid", "GRAF + RF") else e
                                                      for e, s in zip(long["estimator"], long["shots"])])
        frames.append(long)
    long = pd.concat(frames, ignore_index=True)
    families = list(results)
    estimators = list(dict.fromkeys(long["estimator"]))
    draws = sorted(long["draw"].unique())
    data = {}
    for metric in METRICS:
        part = long[long["metric"] == metric]
        cube = np.full((len(families), len(estimators), len(draws)), np.nan)
        low = np.full((len(families), len(estimators)), np.nan)
        high = np.full_like(low, np.nan)
        for (family, estimator), group in part.groupby(["family", "estimator"], sort=False):
            fi, ei = families.index(family), estimators.index(estimator)
            cube[fi, ei, group["draw"].to_numpy()] = group["value"].to_numpy()
            boots = np.nanmean(np.vstack(group["boot"].to_numpy()), axis=0)  # mean over draws, per resample
            low[fi, ei], high[fi, ei] = np.nanpercentile(boots, [2.5, 97.5])
        dims = ("family", "estimator")
        data[metric] = (("family", "estimator", "draw"), cube)
        data[f"{metric}_mean"] = (dims, np.nanmean(cube, axis=2))
        data[f"{metric}_sd"] = (dims, np.nanstd(cube, axis=2, ddof=1) if len(draws) > 1 else np.zeros_like(low))
        data[f"{metric}_low"], data[f"{metric}_high"] = (dims, low), (dims, high)
    shots = long.drop_duplicates("estimator").set_index("estimator")["shots"].reindex(estimators).to_numpy()
    choice = long.drop_duplicates(["family", "estimator"]).pivot(index="family", columns="estimator", values="choice")
    data["proxy_choice"] = (("family", "estimator"), choice.reindex(index=families, columns=estimators).fillna("")
                            .to_numpy().astype(str))
    ds = xr.Dataset(data, coords={"family": families, "estimator": estimators, "draw": draws,
                                  "shots": ("estimator", shots.astype(int))})
    ds.attrs.update(attrs or {})
    return ds


def summary(ds, metric: str = "spearman") -> pd.DataFrame:
    """family × estimator table of 'mean ± sd' strings."""
    mean, sd = ds[f"{metric}_mean"].to_pandas(), ds[f"{metric}_sd"].to_pandas()
    return mean.round(3).astype(str) + " ± " + sd.round(3).astype(str)


def plot(ds, metric: str = "spearman", ax=None, estimators: Sequence[str] | None = None):
    """Mean and bootstrap interval per family for the chosen estimators, with the FLOPs baseline drawn."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(9, 4))
    names = list(estimators or [e for e in ds.estimator.values if e.startswith(("hybrid", "GENNAPE", "GRAF"))])
    families = list(ds.family.values)
    x = np.arange(len(families))
    width = 0.8 / max(len(names), 1)
    for i, name in enumerate(names):
        one = ds.sel(estimator=name)
        mean = one[f"{metric}_mean"].values
        err = np.vstack([mean - one[f"{metric}_low"].values, one[f"{metric}_high"].values - mean])
        ax.bar(x + (i - (len(names) - 1) / 2) * width, mean, width, yerr=np.clip(err, 0, None), capsize=2, label=name)
    flops = ds.sel(estimator="FLOPs")[f"{metric}_mean"].values
    ax.scatter(x, flops, marker="_", s=900, color="black", zorder=3, label="FLOPs")
    ax.set_xticks(x, families, rotation=20)
    ax.set_ylabel(f"{metric} on the test cells")
    ax.axhline(0, color="grey", lw=0.5)
    ax.legend(fontsize=8, ncol=2)
    return ax


# ---------------------------------------------------------------------------------------------------
# the real families and the run
# ---------------------------------------------------------------------------------------------------
#: real target family → (benchmark loader, development copy under ../shared/data)
REAL_FAMILIES = {
    "NB-201": ("nb201-zc", None),
    "NB-301": ("nb301-zc", None),
    "NAS-Bench-Macro": ("nasbench-macro", "macro/nas-bench-macro_cifar10_dev.json"),
    "OFA-MBv3 w1.0": ("ofa-mbv3-dynast", "ofa_mbv3/mbnv3w10_linasga_acc.csv"),
    "MnasNet": ("accel-nasbench", "anb_dataset_jsons_dev.tar.gz"),
}


def real_family(name: str, data_dir: str | Path | None = None) -> pd.DataFrame:
    """One real target family as (space, spec, accuracy): the benchmark's headline label, one row per distinct
    network (labels of specs that build the same network averaged). NB-201 is the 500-cell development slice
    (CIFAR-10 validation accuracy); the others read the development copy under ``data_dir`` when it is there,
    else the full downloaded file."""
    from ..data import load_benchmark

    if name not in REAL_FAMILIES:
        raise ValueError(f"unknown real family {name!r}; choose from {', '.join(REAL_FAMILIES)}")
    if name == "NB-201":
        from .comparison import nb201_dev_table

        return nb201_dev_table(data_dir, ("all",))[["space", "spec", "accuracy"]]
    bench, dev = REAL_FAMILIES[name]
    source = data_dir
    if data_dir is not None and dev is not None:
        hits = sorted(Path(data_dir).rglob(Path(dev).name))
        source = hits[0] if hits else data_dir
    table = load_benchmark(bench, source)
    if "dataset" in table.columns and table["dataset"].nunique() > 1:
        table = table[table["dataset"] == "cifar10"]
    key = "trained_key" if "trained_key" in table.columns else "spec"
    columns = dict(space=("space", "first"), spec=("spec", "first"), accuracy=("val_accuracy", "mean"))
    if "profile" in table.columns:  # the profile the benchmark's networks are built at (OFA-MBv3: paper_w1.0)
        columns["profile"] = ("profile", "first")
    return table.groupby(key, sort=False).agg(**columns).reset_index(drop=True)


#: families whose networks are too slow for all 13 proxies on 2 cores (ImageNet MobileNets, ~5 s a cell): the
#: table has the hybrid's own features there, and the other proxies' rows are absent
HYBRID_FEATURES_ONLY = ("OFA-MBv3 w1.0", "MnasNet")
FEATURE_CACHE = Path(__file__).resolve().parents[2] / "results" / "transfer" / "hybrid_features.csv"


def _with_hybrid_features(cells: pd.DataFrame, features: Sequence[str], cache: Path = FEATURE_CACHE,
                          chunk: int = 20) -> pd.DataFrame:
    """``cells`` with the given features (zoo profile, the offline task's batch), kept in a CSV cache keyed by
    (space, spec) and the profile's fingerprint (as the proxy cache), rewritten atomically every ``chunk`` cells,
    so an interrupted run resumes."""
    from ..predictors.hybrid import pool_features

    from .comparison import proxy_fingerprint

    features = list(dict.fromkeys(features))
    known = pd.read_csv(cache, dtype={"fingerprint": str}) if cache.is_file() else pd.DataFrame(columns=["space", "spec"])
    known = known.drop_duplicates(["space", "spec"], keep="last").reindex(
        columns=list(dict.fromkeys(["space", "spec", "fingerprint", *known.columns, *features])))
    prints = {space: proxy_fingerprint(space, "zoo", "task") for space in cells["space"].unique()}
    stale = known["space"].isin(list(prints)) & (known["fingerprint"] != known["space"].map(prints))
    known = known[~stale]  # values of an older zoo profile or task are never reused
    have = known.dropna(subset=features)[["space", "spec"]]
    todo = cells.merge(have, how="left", on=["space", "spec"], indicator=True)
    todo = todo[todo["_merge"] == "left_only"]
    for space, part in todo.groupby("space"):
        specs = part["spec"].tolist()
        for start in range(0, len(specs), chunk):
            rows = pool_features(space, specs[start:start + chunk], features).assign(fingerprint=prints[space])
            known = known.set_index(["space", "spec"])
            rows = rows.set_index(["space", "spec"])
            known = known.combine_first(rows)
            known.update(rows)
            known = known.reset_index()
            cache.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache.with_name(f".{cache.name}.part")
            known.to_csv(tmp, index=False)
            tmp.replace(cache)
    return cells.merge(known[["space", "spec", *features]], how="left", on=["space", "spec"])


def run_real(data_dir: str | Path, out: str | Path = "results/transfer", *, families: Sequence[str] | None = None,
             k: int = 50, draws: int = 5, gennape_model: str | None = "nb101-cifar10", progress: bool = True):
    """The transfer table on real labels, written to ``out/real.nc``: ``hybrid-nb101``'s recipe (fitted here on
    the same families) and the baselines on every real family whose file is at hand."""
    from ..predictors.hybrid import HybridConfig
    from .hybrid import REAL_PROXIES, training_families, with_features

    train = training_families(data_dir)
    model = HybridEstimator(HybridConfig()).fit(train)
    apriori = best_proxy(train["nb101-real"])
    gennape = _gennape_scorer(gennape_model)
    real = {}
    for name in families or REAL_FAMILIES:
        try:
            cells = real_family(name, data_dir)
            if name in HYBRID_FEATURES_ONLY:
                table = _with_hybrid_features(cells, [*model.config.features, apriori])
            else:
                table = with_features(cells, REAL_PROXIES)
        except FileNotFoundError as err:  # e.g. NB-301's labels are not among the development copies
            print(f"{name}: skipped ({err})", flush=True)
            continue
        real[name] = evaluate_family(table, model, apriori=apriori, k=k, draws=draws, gennape=gennape,
                                     graf_cache=FEATURE_CACHE.parent / "graf_cache")
        if progress:
            print(f"{name}: {len(table)} cells done", flush=True)
    ds = to_dataset(real, {"source": "real NB-101 (1,000 cells) + the zoo families", "gennape_model": str(gennape_model),
                           "apriori_proxy": apriori, "k": k, "draws": draws})
    return _save(ds, Path(out) / "real.nc")


def run_zoo_loo(data_dir: str | Path, out: str | Path = "results/transfer", *, k: int = 50, draws: int = 5,
                progress: bool = True):
    """Leave one zoo family out, written to ``out/zoo_loo.nc``: the hybrid fitted on the other families (the
    held-out family's space left out, so the zoo's NB-101 also leaves out the real NB-101 cells), the a-priori
    proxy chosen on the other families."""
    from ..predictors.hybrid import HybridConfig
    from .hybrid import ZOO_PROXIES, training_families

    train = training_families(data_dir)
    model = HybridEstimator(HybridConfig()).fit(train)
    loo = {}
    for name, table in train.items():
        if not name.startswith("zoo-"):
            continue
        others = [t for n, t in train.items() if t["space"].iloc[0] != table["space"].iloc[0]]
        loo[name] = evaluate_family(table, model, apriori=best_proxy(*others), k=k, draws=draws,
                                    graf_cache=ZOO_PROXIES.parent / "graf_cache")
        if progress:
            print(f"{name}: done", flush=True)
    ds = to_dataset(loo, {"protocol": "leave one zoo family out (its space left out of the hybrid's training)",
                          "k": k, "draws": draws})
    return _save(ds, Path(out) / "zoo_loo.nc")


def _save(ds, path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.part")
    ds.to_netcdf(tmp)
    tmp.replace(path)
    return ds


def _gennape_scorer(name: str | None):
    """table → GENNAPE's predicted accuracy (graphs at the space's default profile), or None."""
    if not name:
        return None
    from ..graphs import graph_of
    from ..predictors.pretrained import available, default_profile, load_pretrained

    if name not in available():
        return None
    model, _ = load_pretrained(name)

    def score(table: pd.DataFrame) -> np.ndarray:
        space = table["space"].iloc[0]
        profile = table["profile"].iloc[0] if "profile" in table.columns else default_profile(space)
        return model.predict([graph_of(space, s, profile) for s in table["spec"]])

    return score


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="nape's transfer table and zoo leave-one-out table")
    parser.add_argument("--data", required=True, help="folder of the real benchmark files (e.g. ../shared/data)")
    parser.add_argument("--out", default="results/transfer")
    parser.add_argument("--families", help="comma-separated real families (default: all)")
    parser.add_argument("--draws", type=int, default=5)
    parser.add_argument("--tables", default="real,zoo", help="real, zoo or both (default)")
    args = parser.parse_args()
    if "real" in args.tables:
        run_real(args.data, args.out, families=args.families.split(",") if args.families else None, draws=args.draws)
    if "zoo" in args.tables:
        run_zoo_loo(args.data, args.out, draws=args.draws)
