"""The predictor comparison: zero-cost proxies alone, GRAF + random forest, proxies + random forest and
GRAF + proxies + random forest, on the same labelled cells of each family.

Protocol (GRAF's and NASLib's): for each family, training size N and seed, a random permutation of the
family's cells (``numpy.random.default_rng(seed)``) puts N cells in the training set and **all the
others** in the test set; every learned estimator is fitted on the training cells and ranks the test
cells; Spearman and Kendall τ against the labels. A proxy needs no training: it is scored on every
cell of the family (``spearman_all``, ``kendall_all``) and, for a like-for-like view, on each split's
test cells too. A training size that leaves fewer than ``min_test`` test cells is skipped with a note
(``ds.attrs["skipped"]``).

A proxy that failed on a cell (NaN) ranks that cell last, as NASLib does (it scores a failure −10⁸);
the random forests take NaN features as missing.

Cost, in NASLib's vocabulary (White et al. 2021): **initialization time** is everything spent before
the first query, i.e. training the networks that label the training cells (``label_seconds``, when the
table knows it: the zoo records each run's time) plus nape's own set-up (``init_seconds``: features and
proxies of the training cells, and the fit); **query time** (``query_seconds``) is the time to score
one new architecture: its features and proxies, and one prediction. A proxy has no set-up: its query
time is its own computation time per network.

Proxies are expensive next to everything else (≈0.4 s per NB-201 cell at the ``zoo`` profile, about
3 minutes for 500 cells on one core), so :func:`proxy_table` keeps them in a CSV cache keyed by
(space, spec, profile, batch size, seed, data): a run computes only the cells the cache lacks and
appends them in chunks, so an interrupted run resumes where it stopped. The key holds no code version:
after changing a proxy's definition, delete the cache (or that proxy's rows) so it is recomputed.

The generic GRAF features of a family without an authors' feature set come from its computation
graphs, traced at ``graf_profile`` (≈0.1 s per zoo network, ≈1 s per NAGO network):
:func:`cached_graf_features` keeps them, with each network's seconds, in one gzipped CSV per (space,
profile) under ``graf_cache``, rewritten atomically every few dozen networks. NB-201, NB-101 and NB-301
are never cached: their features come from the spec string in milliseconds.
"""
from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from ..checks import is_whole
from ..metrics import kendall_tau, spearman
from ..predictors.graf import SPACES as GRAF_SPACES
from ..predictors.graf import GRAFRegressor, feature_names, graf_features
from ..predictors.proxies import PROXY_NAMES, ProxyWarning, score_specs
from ..spaces import get_space

__all__ = ["GRAF_RF", "PROXIES_RF", "GRAF_PROXIES_RF", "LEARNED", "TRAIN_SIZES", "PUBLISHED_KENDALL",
           "PUBLISHED_SPEARMAN", "check_table", "nb201_dev_table", "zoo_table", "proxy_table",
           "cached_graf_features", "split_indices", "compare", "summarize", "save_comparison", "load_comparison",
           "plot_comparison"]

GRAF_RF = "GRAF + RF"
PROXIES_RF = "proxies + RF"
GRAF_PROXIES_RF = "GRAF + proxies + RF"
#: the learned estimators, in the order they are reported
LEARNED = (GRAF_RF, PROXIES_RF, GRAF_PROXIES_RF)
#: the paper's training sizes
TRAIN_SIZES = (32, 128, 1024)

#: published Kendall τ on NB-201 CIFAR-10 (GRAF paper's independent re-run, test = the rest of the space).
#: The GRAF row is GRAF + FLOPs + parameters; ``proxies + RF`` uses the 13 proxies.
PUBLISHED_KENDALL = {GRAF_RF: {32: 0.644, 128: 0.741, 1024: 0.824},
                     GRAF_PROXIES_RF: {32: 0.694, 128: 0.777, 1024: 0.844},
                     PROXIES_RF: {32: 0.685, 128: 0.757, 1024: 0.811}}
#: published single-proxy Spearman on NB-201 CIFAR-10 (Abdelfattah et al. 2021, all 15,625 cells)
PUBLISHED_SPEARMAN = {"synflow": 0.74, "jacov": 0.73, "snip": 0.60, "grad_norm": 0.59, "grasp": 0.51, "fisher": 0.36}

#: the columns that key a cached proxy value; ``fingerprint`` changes with the profile's sizes and the
#: task's tensors, so values computed under an older zoo profile or task are never reused
CACHE_KEYS = ("space", "spec", "profile", "batch_size", "seed", "data", "fingerprint")
_SECONDS = tuple(f"{p}_seconds" for p in PROXY_NAMES)


# ---------------------------------------------------------------------------------------------------
# labelled tables
# ---------------------------------------------------------------------------------------------------
def check_table(table) -> pd.DataFrame:
    """A copy of ``table`` checked and completed: columns ``family`` (defaults to ``space``), ``space``,
    ``spec``, ``accuracy`` (float) and optional ``label_seconds``. Raises ValueError for a missing
    column, an unknown space, a non-finite accuracy or a cell listed twice in one family."""
    if not isinstance(table, pd.DataFrame):
        raise ValueError(f"the labelled table must be a pandas DataFrame, got {type(table).__name__}")
    missing = [c for c in ("space", "spec", "accuracy") if c not in table.columns]
    if missing:
        raise ValueError(f"the labelled table lacks column(s) {', '.join(missing)}; it needs space, spec, accuracy "
                         f"(got {', '.join(map(str, table.columns))})")
    if table.empty:
        raise ValueError("the labelled table is empty")
    table = table.copy().reset_index(drop=True)
    if "family" not in table.columns:
        table["family"] = table["space"]
    table["family"] = table["family"].astype(str)
    for space in table["space"].unique():
        get_space(space)  # an unknown space fails here with the list of known ones
    try:
        table["accuracy"] = table["accuracy"].astype(float)
    except (TypeError, ValueError):
        raise ValueError("the accuracy column must be numeric") from None
    bad = ~np.isfinite(table["accuracy"].to_numpy())
    if bad.any():
        raise ValueError(f"{int(bad.sum())} accuracies are NaN or inf (first: row {int(np.argmax(bad))}); "
                         "drop those cells first")
    twice = table.duplicated(["family", "spec"])
    if twice.any():
        row = table[twice].iloc[0]
        raise ValueError(f"{int(twice.sum())} cells appear twice in their family (first: {row['family']} "
                         f"{row['spec'][:60]}); average their labels first")
    return table


def nb201_dev_table(data_dir: str | Path, subsets: Sequence[str] = ("all", "valid")) -> pd.DataFrame:
    """The 500-cell NB-201 development slice as a labelled table (CIFAR-10 validation accuracy, %).

    One family per entry of ``subsets``: ``"all"`` → family ``nb201-dev`` (every cell), ``"valid"`` →
    ``nb201-dev-valid`` (GRAF's valid cells: no dead op, as the papers evaluate)."""
    from .transfer import nb201_dev

    unknown = [s for s in subsets if s not in ("all", "valid")]
    if unknown or not subsets:
        raise ValueError(f"subsets must be a non-empty list of 'all' and 'valid', got {list(subsets)}")
    cells = nb201_dev(data_dir)
    space = get_space("nb201")
    valid = np.array([not space.flags(s)["dead_ops"] for s in cells["spec"]])
    parts = []
    for subset in subsets:
        keep = valid if subset == "valid" else np.ones(len(cells), dtype=bool)
        parts.append(pd.DataFrame({"family": "nb201-dev" + ("-valid" if subset == "valid" else ""), "space": "nb201",
                                   "spec": cells["spec"][keep], "accuracy": cells["val_accuracy"][keep]}))
    return check_table(pd.concat(parts, ignore_index=True))


def zoo_table(source, target: str = "test_accuracy", spaces: Iterable[str] | None = None) -> pd.DataFrame:
    """A zoo as a labelled table: one row per architecture, ``accuracy`` = the mean over seeds of
    ``target`` and ``label_seconds`` = the training time of all its seeds.

    ``source``: a zoo Dataset (:func:`nape_utils.zoo.export.to_dataset`), a NetCDF file
    (:func:`~nape_utils.zoo.export.load_zoo`) or a zoo store (``.sqlite``). ``spaces`` keeps only those."""
    ds = zoo_dataset(source)
    if target not in ds:
        raise ValueError(f"the zoo has no variable {target!r}; it has {', '.join(map(str, ds.data_vars))}")
    table = pd.DataFrame({"space": ds["space"].values.astype(str), "spec": ds["spec"].values.astype(str),
                          "accuracy": ds[target].mean("seed").values,
                          "label_seconds": ds["seconds"].sum("seed").values if "seconds" in ds else 0.0})
    if spaces is not None:
        spaces = list(spaces)
        absent = sorted(set(spaces) - set(table["space"]))
        if absent:
            raise ValueError(f"the zoo has no {', '.join(absent)}; it has {', '.join(sorted(table['space'].unique()))}")
        table = table[table["space"].isin(spaces)]
    return check_table(table)


def zoo_dataset(source):
    """A zoo Dataset from a Dataset, a NetCDF path or a store path."""
    import xarray as xr

    from ..zoo.export import load_zoo, to_dataset
    from ..zoo.store import ZooStore

    if isinstance(source, xr.Dataset):
        return source
    path = Path(source)
    if not path.is_file():
        raise ValueError(f"no zoo at {path}: give a zoo Dataset, a .nc file or a .sqlite store")
    if path.suffix == ".sqlite":
        with ZooStore(path, readonly=True) as store:
            return to_dataset(store.runs(), None, store.config)
    return load_zoo(path)


# ---------------------------------------------------------------------------------------------------
# proxies, cached
# ---------------------------------------------------------------------------------------------------
def _empty_cache() -> pd.DataFrame:
    return pd.DataFrame(columns=[*CACHE_KEYS, *PROXY_NAMES, *_SECONDS])


def _profile_fingerprint(space: str, profile: str, **extra) -> str:
    """A short hash of the profile's input, classes and options, and of ``extra``: what a cached value
    depends on besides its key."""
    import hashlib
    import json

    prof = get_space(space).profile(profile)
    content = {"input_shape": list(prof.input_shape), "num_classes": prof.num_classes, "options": prof.options,
               **extra}
    return hashlib.sha256(json.dumps(content, sort_keys=True, default=str).encode()).hexdigest()[:12]


def proxy_fingerprint(space: str, profile: str, data: str) -> str:
    """What a proxy value depends on besides its key: the profile, and for ``data="task"`` the task's
    tensors (:meth:`TaskConfig.key`)."""
    from ..data.task import TaskConfig

    return _profile_fingerprint(space, profile, task=TaskConfig().key() if data == "task" else data)


def _read_cache(path: Path) -> pd.DataFrame:
    """The cache's rows (the last of duplicates); empty when the file does not exist yet."""
    if not path.is_file():
        return _empty_cache()
    cache = pd.read_csv(path, dtype={"space": str, "spec": str, "profile": str, "data": str, "fingerprint": str})
    if "fingerprint" not in cache.columns:  # written before fingerprints: every row is stale
        cache["fingerprint"] = ""
    missing = [c for c in (*CACHE_KEYS, *PROXY_NAMES) if c not in cache.columns]
    if missing:
        raise ValueError(f"{path} is not a proxy cache (it lacks {', '.join(missing)}); move it aside")
    return cache.drop_duplicates(list(CACHE_KEYS), keep="last")


def proxy_table(cells: pd.DataFrame, cache: str | Path | None = None, *, profile: str = "zoo",
                batch_size: int = 64, seed: int = 0, data: str = "task", chunk: int = 20,
                progress: Callable[[int, int], None] | None = None) -> pd.DataFrame:
    """The 13 proxies (and their seconds) of every distinct (space, spec) of ``cells``, from the CSV
    ``cache`` where it has them; the rest are computed with :func:`score_specs` and appended to the
    cache every ``chunk`` networks (so an interrupted run resumes). ``progress(done, total)`` is called
    after each chunk. Returns one row per distinct (space, spec) of ``cells``, in their order."""
    if not isinstance(cells, pd.DataFrame) or not {"space", "spec"} <= set(cells.columns):
        raise ValueError("cells must be a DataFrame with columns space and spec")
    if chunk < 1:
        raise ValueError(f"chunk must be at least 1, got {chunk}")
    wanted = cells[["space", "spec"]].drop_duplicates().reset_index(drop=True)
    setting = {"profile": profile, "batch_size": int(batch_size), "seed": int(seed), "data": data}
    path = Path(cache) if cache is not None else None
    known = _read_cache(path) if path is not None else _empty_cache()
    same = np.ones(len(known), dtype=bool)
    for key, value in setting.items():
        same &= known[key].astype(type(value)).to_numpy() == value
    prints = {space: proxy_fingerprint(space, profile, data) for space in wanted["space"].unique()}
    same &= known["fingerprint"].fillna("").to_numpy() == known["space"].map(prints).fillna("-").to_numpy()
    known = known[same]
    todo = wanted.merge(known[["space", "spec"]], how="left", on=["space", "spec"], indicator=True)
    todo = todo.loc[todo["_merge"] == "left_only", ["space", "spec"]]
    parts = [known]
    for start in range(0, len(todo), chunk):
        rows = _score_part(todo.iloc[start:start + chunk], setting)
        if path is not None:  # append at once: a killed run keeps every finished chunk
            path.parent.mkdir(parents=True, exist_ok=True)
            rows.to_csv(path, mode="a", header=not path.is_file(), index=False)
        parts.append(rows)
        if progress is not None:
            progress(min(start + chunk, len(todo)), len(todo))
    scored = pd.concat([p for p in parts if len(p)] or [known], ignore_index=True)
    out = wanted.merge(scored.drop(columns=["profile", "batch_size", "seed", "data", "fingerprint"]), how="left",
                       on=["space", "spec"])
    return out[["space", "spec", *PROXY_NAMES, *_SECONDS]]


def _score_part(part: pd.DataFrame, setting: dict) -> pd.DataFrame:
    """Proxies of some (space, spec) rows under one setting, as cache rows (the caller's spec strings)."""
    frames = []
    for space, rows in part.groupby("space", sort=False):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ProxyWarning)  # NaN scores are kept and reported by the caller
            scores = score_specs(space, rows["spec"].tolist(), None, batch_size=setting["batch_size"],
                                 profile=setting["profile"], seed=setting["seed"], data=setting["data"])
        scores["spec"] = rows["spec"].to_numpy()  # key by the spec as given (score_specs canonicalises)
        frames.append(scores.assign(space=space, fingerprint=proxy_fingerprint(space, setting["profile"],
                                                                             setting["data"]), **setting))
    return pd.concat(frames, ignore_index=True)[[*CACHE_KEYS, *PROXY_NAMES, *_SECONDS]]


# ---------------------------------------------------------------------------------------------------
# generic GRAF features, cached
# ---------------------------------------------------------------------------------------------------
def graf_fingerprint(space: str, profile: str) -> str:
    """What a space's generic GRAF features depend on besides the spec: the profile and the feature columns."""
    return _profile_fingerprint(space, profile, features=feature_names(space))


def graf_cache_path(cache_dir: str | Path, space: str, profile: str) -> Path:
    """The cache file of one (space, profile) under ``cache_dir``."""
    return Path(cache_dir) / f"{get_space(space).name}.{profile}.csv.gz"


def _read_graf_cache(path: Path, names: list[str]) -> pd.DataFrame:
    """Every row of the cache at ``path`` (empty when it does not exist yet)."""
    columns = ["spec", "fingerprint", "seconds", *names]
    if not path.is_file():
        return pd.DataFrame(columns=columns)
    try:
        cache = pd.read_csv(path, dtype={"spec": str, "fingerprint": str})
    except (OSError, EOFError, pd.errors.ParserError) as err:
        raise ValueError(f"{path} is not a readable GRAF cache ({err}); delete it") from None
    if list(cache.columns) != columns:
        raise ValueError(f"{path} holds other columns than this version of nape's GRAF features; delete it")
    return cache


def cached_graf_features(space: str, specs: Sequence[str], cache: str | Path | None = None, *,
                         profile: str = "zoo", chunk: int = 50) -> tuple[pd.DataFrame, np.ndarray]:
    """GRAF features of ``specs`` (:func:`~nape_utils.predictors.graf.graf_features` as floats, one row per
    spec in order) and each one's seconds. With a ``cache`` directory, a space whose features come from its
    computation graphs reads the specs the cache has and computes the others, rewriting the cache
    (atomically) every ``chunk`` networks so an interrupted run resumes."""
    if chunk < 1:
        raise ValueError(f"chunk must be at least 1, got {chunk}")
    name, specs = get_space(space).name, [str(s) for s in specs]
    if cache is None or name in GRAF_SPACES:
        start = time.perf_counter()
        features = graf_features(name, specs, profile=profile).astype(float)
        return features, np.full(len(specs), (time.perf_counter() - start) / max(len(specs), 1))
    names, fingerprint = feature_names(name), graf_fingerprint(name, profile)
    path = graf_cache_path(cache, name, profile)
    rows = _read_graf_cache(path, names)
    have = set(rows.loc[rows["fingerprint"] == fingerprint, "spec"])
    todo = [s for s in dict.fromkeys(specs) if s not in have]
    for start in range(0, len(todo), chunk):
        rows = pd.concat([rows, _graf_part(name, todo[start:start + chunk], profile, fingerprint)], ignore_index=True)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.name + ".partial")
        rows.to_csv(partial, index=False, compression={"method": "gzip", "mtime": 0})
        partial.replace(path)  # atomic: a killed run leaves the previous complete cache
    table = rows[rows["fingerprint"] == fingerprint].drop_duplicates("spec", keep="last").set_index("spec").loc[specs]
    return table[names].reset_index(drop=True).astype(float), table["seconds"].to_numpy(float)


def _graf_part(space: str, specs: list[str], profile: str, fingerprint: str) -> pd.DataFrame:
    """Cache rows of some specs: each one's features and seconds."""
    frames, seconds = [], []
    for spec in specs:
        start = time.perf_counter()
        frames.append(graf_features(space, [spec], profile=profile))
        seconds.append(time.perf_counter() - start)
    return pd.concat([pd.DataFrame({"spec": specs, "fingerprint": fingerprint, "seconds": seconds}),
                      pd.concat(frames, ignore_index=True)], axis=1)


# ---------------------------------------------------------------------------------------------------
# the protocol
# ---------------------------------------------------------------------------------------------------
def split_indices(n_cells: int, n_train: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, test) indices: ``n_train`` cells of a seeded random permutation, and all the others."""
    if not 1 <= n_train < n_cells:
        raise ValueError(f"n_train must be between 1 and {n_cells - 1} for {n_cells} cells, got {n_train}")
    order = np.random.default_rng(seed).permutation(n_cells)
    return order[:n_train], order[n_train:]


def _lowest_for_nan(score: np.ndarray) -> np.ndarray:
    """NaN scores rank below every real score (NASLib scores a failed proxy −10⁸)."""
    score = np.asarray(score, dtype=float)
    bad = ~np.isfinite(score)
    if not bad.any():
        return score
    floor = np.nanmin(score[~bad]) - 1.0 if (~bad).any() else 0.0
    return np.where(bad, floor, score)


def _rank_metrics(y: np.ndarray, pred: np.ndarray) -> tuple[float, float]:
    """(Spearman, Kendall τ); NaN for a constant prediction, which ranks nothing."""
    if np.ptp(pred) == 0 or np.ptp(y) == 0:
        return float("nan"), float("nan")
    return spearman(y, pred), kendall_tau(y, pred)


def _as_seeds(seeds) -> list[int]:
    seeds = list(range(seeds)) if is_whole(seeds) else list(seeds)
    if not seeds or not all(is_whole(s) for s in seeds):
        raise ValueError(f"seeds must be a positive count or a non-empty list of integers, got {seeds!r}")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be distinct, got {seeds}")
    return [int(s) for s in seeds]


def _as_sizes(train_sizes) -> list[int]:
    sizes = list(train_sizes)
    if not sizes or not all(is_whole(n) and n >= 2 for n in sizes):
        raise ValueError(f"train_sizes must be a non-empty list of integers >= 2, got {sizes!r}")
    return sorted(set(int(n) for n in sizes))


def _proxy_columns(table: pd.DataFrame, proxies, proxy_names) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Per row of ``table``: the proxy values and seconds (NaN seconds where unknown) and the names."""
    if proxies is None:
        if proxy_names:
            raise ValueError("proxy_names given but no proxies table")
        return np.empty((len(table), 0)), np.empty((len(table), 0)), []
    if not isinstance(proxies, pd.DataFrame) or not {"space", "spec"} <= set(proxies.columns):
        raise ValueError("proxies must be a DataFrame with columns space, spec and one column per proxy")
    names = [p for p in PROXY_NAMES if p in proxies.columns] if proxy_names is None else list(proxy_names)
    absent = [p for p in names if p not in proxies.columns]
    if absent or not names:
        raise ValueError(f"the proxies table lacks {', '.join(absent) or 'every proxy'}; it has "
                         f"{', '.join(c for c in proxies.columns if c not in ('space', 'spec'))}")
    seconds = [f"{p}_seconds" for p in names]
    wide = proxies.drop_duplicates(["space", "spec"]).reindex(columns=["space", "spec", *names, *seconds])
    merged = table[["space", "spec"]].merge(wide, how="left", on=["space", "spec"])
    unscored = merged[names].isna().all(axis=1).to_numpy()
    if unscored.any():
        first = merged[unscored].iloc[0]
        raise ValueError(f"{int(unscored.sum())} cells have no proxy values (first: {first['space']} "
                         f"{first['spec'][:60]}); compute them with proxy_table first")
    return merged[names].to_numpy(dtype=float), merged[seconds].to_numpy(dtype=float), names


def compare(table: pd.DataFrame, proxies: pd.DataFrame | None = None, *, train_sizes=TRAIN_SIZES, seeds=10,
            proxy_names: Sequence[str] | None = None, min_test: int = 10, graf_profile: str = "zoo",
            graf_cache: str | Path | None = None, model: str = "rf"):
    """Evaluate every estimator on every family of ``table`` (see the module docstring).

    ``table``: labelled cells (:func:`check_table`); ``proxies``: a table keyed by space and spec with
    one column per proxy and optional ``<proxy>_seconds`` (:func:`proxy_table`), or None for GRAF + RF
    alone; ``proxy_names``: which of its columns are proxies (default: those of :data:`PROXY_NAMES` it
    has); ``seeds``: a count (0, 1, …) or a list; ``graf_profile``: the profile of the computation graphs
    behind the generic GRAF features (families without an authors' feature set); ``graf_cache``: a
    directory that keeps those features between runs (:func:`cached_graf_features`); ``model``: the
    regressor of :class:`~nape_utils.predictors.graf.GRAFRegressor`.

    Returns an xarray Dataset: ``spearman``, ``kendall``, ``init_seconds``, ``query_seconds`` over
    (family, estimator, train_size, seed), NaN where an estimator or size does not apply;
    ``label_seconds`` and ``n_test`` over (family, train_size[, seed]); ``spearman_all`` and
    ``kendall_all`` of the proxies on all cells (family, estimator); ``n_cells`` and ``space`` per
    family; the skipped sizes in ``attrs["skipped"]``."""
    import xarray as xr

    table = check_table(table)
    sizes, seeds = _as_sizes(train_sizes), _as_seeds(seeds)
    if not isinstance(min_test, (int, np.integer)) or min_test < 2:
        raise ValueError(f"min_test must be an integer >= 2 (a rank correlation needs 2 cells), got {min_test!r}")
    values, seconds, names = _proxy_columns(table, proxies, proxy_names)
    estimators = [*names, GRAF_RF] + ([PROXIES_RF, GRAF_PROXIES_RF] if names else [])
    families = list(dict.fromkeys(table["family"]))
    shape = (len(families), len(estimators), len(sizes), len(seeds))
    out = {k: np.full(shape, np.nan) for k in ("spearman", "kendall", "init_seconds", "query_seconds")}
    out_all = {k: np.full(shape[:2], np.nan) for k in ("spearman_all", "kendall_all")}
    label_seconds = np.full((len(families), len(sizes), len(seeds)), np.nan)
    n_test = np.zeros((len(families), len(sizes)), dtype=int)
    skipped = []
    for f, family in enumerate(families):
        rows = np.flatnonzero(table["family"].to_numpy() == family)
        cells = table.iloc[rows].reset_index(drop=True)
        graf, graf_seconds = cached_graf_features(cells["space"].iloc[0], cells["spec"], graf_cache,
                                                  profile=graf_profile)
        ctx = _FamilyData(cells, values[rows], seconds[rows], graf.to_numpy(), graf_seconds)
        for e, name in enumerate(names):
            out_all["spearman_all"][f, e], out_all["kendall_all"][f, e] = _rank_metrics(ctx.y, ctx.proxy_scores[:, e])
        for s, n_train in enumerate(sizes):
            if n_train > len(cells) - min_test:
                skipped.append(f"{family}: N = {n_train} skipped, {len(cells)} cells leave fewer than {min_test} "
                               "test cells")
                continue
            n_test[f, s] = len(cells) - n_train
            for r, seed in enumerate(seeds):
                train, test = split_indices(len(cells), n_train, seed)
                label_seconds[f, s, r] = ctx.label_seconds[train].sum() if ctx.label_seconds is not None else np.nan
                for e, result in enumerate(ctx.evaluate(train, test, seed, model, len(names))):
                    for key, value in result.items():
                        out[key][f, e, s, r] = value
    dims = ("family", "estimator", "train_size", "seed")
    space_of = [table.loc[table["family"] == fam, "space"].iloc[0] for fam in families]
    ds = xr.Dataset({**{k: (dims, v) for k, v in out.items()},
                     **{k: (dims[:2], v) for k, v in out_all.items()},
                     "label_seconds": (("family", "train_size", "seed"), label_seconds),
                     "n_test": (("family", "train_size"), n_test),
                     "n_cells": ("family", np.array([(table["family"] == fam).sum() for fam in families]))},
                    coords={"family": families, "estimator": estimators, "train_size": sizes, "seed": seeds,
                            "space": ("family", space_of)})
    ds.attrs.update(skipped="\n".join(skipped), model=model, graf_profile=graf_profile, min_test=int(min_test),
                    proxies=",".join(names),
                    protocol="train on N random cells of a family (seeded permutation), test on all the others; "
                             "proxies need no training and are also scored on all cells (spearman_all, kendall_all); "
                             "a NaN proxy score ranks its cell last",
                    timing="NASLib's vocabulary: initialization time = label_seconds (training the labelled "
                           "networks, where known) + init_seconds (features/proxies of the training cells + fit); "
                           "query_seconds = features/proxies + prediction of one architecture")
    return ds


class _FamilyData:
    """One family's labels, GRAF features and proxy values, and their seconds per architecture."""

    def __init__(self, cells: pd.DataFrame, proxy_values: np.ndarray, proxy_seconds: np.ndarray, graf: np.ndarray,
                 graf_seconds: np.ndarray):
        if len(cells) < 3:
            raise ValueError(f"family {cells['family'].iloc[0]} has {len(cells)} cells; a comparison needs at least 3")
        if cells["space"].nunique() != 1:
            raise ValueError(f"family {cells['family'].iloc[0]} mixes spaces {sorted(cells['space'].unique())}")
        self.y = cells["accuracy"].to_numpy(dtype=float)
        self.label_seconds = cells["label_seconds"].to_numpy(dtype=float) if "label_seconds" in cells else None
        self.graf, self.graf_seconds = graf, graf_seconds  # seconds per architecture
        # forest features: a signed log keeps every proxy's order (all a tree splits on) and keeps synflow
        # of deep networks (up to 1e297 in float64) inside the float32 range scikit-learn's trees use
        self.proxies = np.sign(proxy_values) * np.log1p(np.abs(proxy_values))
        self.proxy_scores = np.column_stack([_lowest_for_nan(c) for c in proxy_values.T]) if proxy_values.size \
            else proxy_values
        # seconds per architecture, per proxy (0 where the table gave none)
        self.proxy_seconds = np.nan_to_num(proxy_seconds) if proxy_seconds.size else proxy_seconds

    def evaluate(self, train: np.ndarray, test: np.ndarray, seed: int, model: str, n_proxies: int) -> list[dict]:
        """One result dict per estimator (proxies first, then the learned ones) for this split."""
        y_test = self.y[test]
        results = []
        for e in range(n_proxies):
            rho, tau = _rank_metrics(y_test, self.proxy_scores[test, e])
            results.append({"spearman": rho, "kendall": tau, "init_seconds": 0.0,
                            "query_seconds": float(self.proxy_seconds[test, e].mean())})
        all_proxy_seconds = self.proxy_seconds.sum(axis=1) if n_proxies else np.zeros(len(self.y))
        designs = [(GRAF_RF, self.graf, self.graf_seconds)]
        if n_proxies:
            designs += [(PROXIES_RF, self.proxies, all_proxy_seconds),
                        (GRAF_PROXIES_RF, np.hstack([self.graf, self.proxies]), self.graf_seconds + all_proxy_seconds)]
        for _, X, per_arch in designs:
            results.append(self._fit_predict(X, per_arch, train, test, seed, model))
        return results

    def _fit_predict(self, X, per_arch, train, test, seed, model) -> dict:
        start = time.perf_counter()
        forest = GRAFRegressor(model=model, seed=seed).fit(X[train], self.y[train])
        fit_seconds = time.perf_counter() - start
        start = time.perf_counter()
        pred = forest.predict(X[test])
        predict_seconds = (time.perf_counter() - start) / len(test)
        rho, tau = _rank_metrics(self.y[test], pred)
        return {"spearman": rho, "kendall": tau, "init_seconds": float(per_arch[train].sum() + fit_seconds),
                "query_seconds": float(per_arch[test].mean() + predict_seconds)}


# ---------------------------------------------------------------------------------------------------
# reading the result
# ---------------------------------------------------------------------------------------------------
def summarize(ds) -> pd.DataFrame:
    """Mean ± std over seeds per (family, estimator, training size), one row each; the proxies' scores
    on all cells come first with ``train_size`` 0 ("no training", one value: no std). Rows that were
    not evaluated are left out."""
    rows = []
    for family in ds["family"].values:
        for est in ds["estimator"].values:
            one = ds.sel(family=family, estimator=est)
            key = {"family": family, "estimator": est}
            if np.isfinite(one["spearman_all"].item()):
                rows.append({**key, "train_size": 0, "n_test": int(ds["n_cells"].sel(family=family)), "seeds": 0,
                             "spearman_mean": one["spearman_all"].item(), "spearman_std": float("nan"),
                             "kendall_mean": one["kendall_all"].item(), "kendall_std": float("nan"),
                             "init_seconds": 0.0, "query_seconds": _mean(one["query_seconds"])})
            for n in ds["train_size"].values:
                cell = one.sel(train_size=n)
                done = np.isfinite(cell["kendall"].values) | np.isfinite(cell["init_seconds"].values)
                if done.any():
                    n_test = int(ds["n_test"].sel(family=family, train_size=n))
                    rows.append({**key, "train_size": int(n), "n_test": n_test, "seeds": int(done.sum()), **_spread(cell)})
    return pd.DataFrame(rows)


def _spread(cell) -> dict[str, float]:
    """Mean and std over seeds of the metrics, mean of the times, of one (family, estimator, size)."""
    return {"spearman_mean": _mean(cell["spearman"]), "spearman_std": _std(cell["spearman"]),
            "kendall_mean": _mean(cell["kendall"]), "kendall_std": _std(cell["kendall"]),
            "init_seconds": _mean(cell["init_seconds"]), "query_seconds": _mean(cell["query_seconds"])}


def _mean(values) -> float:
    """Mean of the finite values; NaN when there are none (a constant score on every split)."""
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    return float(values.mean()) if len(values) else float("nan")


def _std(values) -> float:
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    return float(values.std(ddof=1)) if len(values) > 1 else float("nan")


def save_comparison(ds, path: str | Path) -> Path:
    """Write the Dataset to NetCDF (scipy engine: no compiled NetCDF library needed)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.to_netcdf(path, engine="scipy")
    return path


def load_comparison(path: str | Path):
    """A Dataset written by :func:`save_comparison`."""
    import xarray as xr

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"no comparison at {path}; run compare() and save_comparison() first")
    with xr.open_dataset(path, engine="scipy") as ds:
        return ds.load()


def plot_comparison(ds, family: str, *, published_spearman: dict | None = None,
                    published_kendall: dict | None = None, axes=None):
    """Two panels for one family: each proxy's Spearman on all cells (published values as grey bars), and
    the learned estimators' Kendall τ against the training size (mean ± std over seeds; published as
    open markers). Returns the figure."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    if family not in ds["family"].values:
        raise ValueError(f"no family {family!r}; the Dataset has {', '.join(map(str, ds['family'].values))}")
    one = ds.sel(family=family)
    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=(13, 5), gridspec_kw={"width_ratios": [1, 1.2]})
    proxies = [e for e in one["estimator"].values if np.isfinite(one["spearman_all"].sel(estimator=e).item())]
    bars = pd.DataFrame({"proxy": proxies, "Spearman": [one["spearman_all"].sel(estimator=p).item() for p in proxies],
                         "source": "nape"})
    if published_spearman:
        paper = pd.DataFrame({"proxy": list(published_spearman), "Spearman": list(published_spearman.values())})
        bars = pd.concat([bars, paper.assign(source="published")])
    order = bars[bars["source"] == "nape"].sort_values("Spearman", ascending=False)["proxy"].tolist()
    sns.barplot(data=bars, y="proxy", x="Spearman", hue="source", order=order, ax=axes[0],
                palette={"nape": "#4c72b0", "published": "#b0b0b0"})
    axes[0].axvline(0, color="0.3", lw=0.8)
    axes[0].set(title=f"proxies alone, all {int(one['n_cells'])} cells", xlabel="Spearman with accuracy", ylabel="")
    _plot_learned(one, axes[1], published_kendall or {}, sns.color_palette())
    fig = axes[0].figure
    fig.tight_layout()
    return fig


def _plot_learned(one, ax, published: dict, palette) -> None:
    """Kendall τ (mean ± std over seeds) of each learned estimator against N, each estimator shifted a
    little sideways so the bars do not overlap; its published value as an open diamond at the same place."""
    learned = [e for e in LEARNED if e in one["estimator"].values]
    tau = one["kendall"].sel(estimator=learned)
    sizes = [int(n) for n in tau["train_size"].values if np.isfinite(tau.sel(train_size=n)).any()]
    for i, est in enumerate(learned):
        shift = (i - (len(learned) - 1) / 2) * 0.12
        xs = np.arange(len(sizes)) + shift
        values = [tau.sel(estimator=est, train_size=n).values for n in sizes]
        ax.errorbar(xs, [_mean(v) for v in values], yerr=[_std(v) if len(v) > 1 else 0 for v in values], marker="o",
                    capsize=3, color=palette[i], label=est)
        paper = [(x, published[est][n]) for x, n in zip(xs, sizes) if n in published.get(est, {})]
        if paper:
            ax.scatter(*zip(*paper), marker="D", s=55, facecolors="none", edgecolors=palette[i], zorder=5,
                       label=f"{est}, published")
    ax.set_xticks(range(len(sizes)), [str(n) for n in sizes])
    ax.set(title="learned estimators, test = the other cells", xlabel="training cells N", ylabel="Kendall τ")
    ax.legend(fontsize=8, loc="lower right")
