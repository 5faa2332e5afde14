"""The zoo as an xarray Dataset (NetCDF), with its label quality.

Dims ``(arch, seed)``; coords ``space`` and ``spec`` on ``arch``; variables ``test_accuracy``,
``val_accuracy`` and ``seconds`` per (arch, seed), ``params`` and ``flops`` per arch. Label quality
per family goes into the attrs: the seed-to-seed Spearman on non-degenerate architectures and the
reliability of the seed mean (Spearman–Brown; ``reliability_bar`` is what it should reach), plus the
accuracy spread; ``config`` and ``versions`` say how the labels were made.

Families may be trained at different numbers of seeds (a family whose members are alike needs more
for a reliable mean). A family's seeds are those at least half of its architectures were trained at;
an architecture is kept when it has all of them, and its entries for other seeds are NaN, so every
label of a family is the mean over the same seeds (xarray's ``mean("seed")`` skips the NaNs).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

DEFAULT_NETCDF = Path("results/zoo/zoo.nc")
#: the zoo committed with nape (a checkout's results/zoo/zoo.nc)
SHIPPED_NETCDF = Path(__file__).resolve().parents[2] / DEFAULT_NETCDF
#: the seed-mean reliability every family's labels should reach
RELIABILITY_BAR = 0.8
#: seed-mean test accuracy (%) at or below which a network counts as degenerate (chance is 10 %)
DEGENERATE_BELOW = 15.0


class NothingComplete(ValueError):
    """The store has runs at the budget, but no architecture has all its family's seeds yet: the one
    refusal of `to_dataset` that a build in progress meets (and `nape zoo status` reports, not raises)."""


def to_dataset(runs: pd.DataFrame, budget: int | None = None, config: dict | None = None):
    """Architectures trained at every seed of their family (see the module docstring), at the chosen
    budget (default: the largest) → Dataset."""
    import xarray as xr

    if runs.empty:
        raise ValueError("the zoo store has no runs yet; build some with `nape zoo build`")
    budgets = sorted(int(b) for b in runs["budget"].unique())
    budget = budgets[-1] if budget is None else budget
    if budget not in budgets:
        raise ValueError(f"the zoo store has no runs at a budget of {budget} epochs; it holds budgets "
                         f"of {', '.join(map(str, budgets))}: choose one of those (`--budget` on the command line)")
    runs = complete_runs(runs[runs["budget"] == budget])
    if runs.empty:
        raise NothingComplete("no architecture has been trained at every seed of its family yet, so there is "
                              "nothing to export; let `nape zoo build` run on and try again")
    runs = runs.sort_values(["space", "spec", "seed"])
    seeds = sorted(runs["seed"].unique())
    wide = runs.pivot(index=["space", "spec"], columns="seed")
    arch = wide.index
    per_arch = runs.groupby(["space", "spec"])[["params", "flops"]].first().loc[arch]
    data = {name: (("arch", "seed"), wide[name].to_numpy(dtype=float))
            for name in ("test_accuracy", "val_accuracy", "seconds")}
    data.update(params=("arch", per_arch["params"].to_numpy()), flops=("arch", per_arch["flops"].to_numpy()))
    ds = xr.Dataset(data, coords={"arch": np.arange(len(arch)), "seed": seeds,
                                  "space": ("arch", arch.get_level_values(0).to_numpy(dtype=str)),
                                  "spec": ("arch", arch.get_level_values(1).to_numpy(dtype=str))})
    ds["test_accuracy"].attrs["units"] = "%"
    ds.attrs.update(budget_epochs=budget, config=json.dumps(config or {}, sort_keys=True),
                    label_quality=label_quality(ds).to_json(orient="index"), reliability_bar=RELIABILITY_BAR,
                    versions=_distinct_versions(runs))
    return ds


def _distinct_versions(runs: pd.DataFrame) -> str:
    """The package versions the runs were made with, each distinct set once (JSON list)."""
    if "versions" not in runs:
        return "[]"
    distinct = sorted({json.dumps(v, sort_keys=True) for v in runs["versions"]})
    return json.dumps([json.loads(text) for text in distinct])


def complete_runs(runs: pd.DataFrame) -> pd.DataFrame:
    """The runs at each family's seeds (those at least half its architectures have), of the
    architectures that have every one of them."""
    parts = []
    for _, family in runs.groupby("space"):
        archs_per_seed = family.groupby("seed")["spec"].nunique()
        family_seeds = archs_per_seed.index[archs_per_seed * 2 >= family["spec"].nunique()]
        family = family[family["seed"].isin(family_seeds)]
        parts.append(family[family.groupby("spec")["seed"].transform("nunique") == len(family_seeds)])
    return pd.concat(parts) if parts else runs.iloc[:0]


def spearman_brown(r: float, k: int) -> float:
    """Reliability of the mean of k measurements whose pairwise correlation is r. Seeds that disagree
    (r ≤ 0) carry no reliable signal, so their mean's reliability is 0 (the formula is meant for r > 0)."""
    return k * r / (1 + (k - 1) * r) if r > 0 else 0.0


def label_quality(ds) -> pd.DataFrame:
    """Per family: architectures, non-degenerate ones, mean pairwise seed Spearman on those, the
    Spearman–Brown reliability of the seed mean, and the spread of the seed-mean accuracy."""
    from scipy.stats import spearmanr

    rows = {}
    for space in np.unique(ds["space"].values):
        acc = ds["test_accuracy"].values[ds["space"].values == space]
        acc = acc[:, ~np.isnan(acc).all(axis=0)]  # the family's own seeds
        mean = acc.mean(axis=1)
        alive = acc[mean > DEGENERATE_BELOW]
        k = acc.shape[1]
        pairs = [spearmanr(alive[:, i], alive[:, j])[0] for i in range(k) for j in range(i + 1, k)] if len(alive) > 2 else []
        r = float(np.mean(pairs)) if pairs else float("nan")
        rows[str(space)] = {"archs": len(acc), "seeds": k, "non_degenerate": len(alive), "seed_spearman": round(r, 4),
                            "seed_mean_reliability": round(spearman_brown(r, k), 4) if pairs else float("nan"),
                            "acc_mean": round(float(mean.mean()), 2), "acc_std": round(float(mean.std()), 2),
                            "acc_min": round(float(mean.min()), 2), "acc_max": round(float(mean.max()), 2)}
    return pd.DataFrame.from_dict(rows, orient="index")


def export(store_path, out: str | Path = DEFAULT_NETCDF, budget: int | None = None) -> Path:
    """Write the store's Dataset to NetCDF (scipy engine: no compiled NetCDF library needed)."""
    from .store import ZooStore

    with ZooStore(store_path, readonly=True) as store:
        ds = to_dataset(store.runs(), budget, store.config)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    ds.to_netcdf(out, engine="scipy")
    return out


def load_zoo(path: str | Path | None = None):
    """A zoo Dataset (see the module docstring); by default the shipped one, wherever Python runs from."""
    import xarray as xr

    path = SHIPPED_NETCDF if path is None else Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no zoo at {path}; build one with `nape zoo build` and `nape zoo export`")
    with open(path, "rb") as head:
        is_store = head.read(16) == b"SQLite format 3\x00"
    if is_store:
        raise ValueError(f"{path} is a zoo store (SQLite), not an export: write its Dataset with "
                         f"`nape zoo export --store {path} --out zoo.nc` and load that")
    with xr.open_dataset(path, engine="scipy") as ds:
        return ds.load()
