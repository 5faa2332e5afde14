"""The transfer table: same test cells for every estimator, the a-priori and oracle choices, intervals."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from nape_utils.experiments.transfer_table import (APRIORI, ORACLE, best_proxy, evaluate_family, summary,
                                                   to_dataset)
from nape_utils.predictors.hybrid import HybridEstimator
from nape_utils.predictors.proxies import PROXY_NAMES
from nape_utils.spaces import get_space


def _family(space: str, specs: list[str], seed: int) -> pd.DataFrame:
    """Accuracy follows jacov; every other proxy is noise (FLOPs weakly informative)."""
    rng = np.random.default_rng(seed)
    n = len(specs)
    table = pd.DataFrame({name: rng.normal(size=n) for name in PROXY_NAMES})
    table["accuracy"] = 2 * table["jacov"] + 0.3 * table["flops"] + 0.2 * rng.normal(size=n)
    table.insert(0, "spec", specs)
    table.insert(0, "space", space)
    return table


@pytest.fixture(scope="module")
def result():
    specs = get_space("nb201").sample_many(90, seed=1)
    source = {"a": _family("nb101", specs[:60], 0), "b": _family("hiaml", specs[:60], 1)}
    model = HybridEstimator(trees=20, min_samples_leaf=5).fit(source)
    target = _family("nb201", specs, 2)
    long = evaluate_family(target, model, apriori=best_proxy(*source.values()), k=20, draws=3, bootstrap=20)
    return source, target, long


def test_choices_are_made_without_and_with_the_targets_labels(result):
    source, target, long = result
    assert best_proxy(*source.values()) == "jacov" == best_proxy(target)
    assert set(long.loc[long["estimator"] == APRIORI, "choice"]) == {"jacov"}
    assert set(long.loc[long["estimator"] == ORACLE, "choice"]) == {"jacov"}


def test_every_estimator_is_scored_on_each_draws_test_cells(result):
    _, _, long = result
    counts = long.groupby(["estimator", "shots", "metric"]).size()
    assert (counts == 3).all()
    assert {("hybrid", 0), ("hybrid", 20), ("GRAF + RF", 20), ("FLOPs", 0)} <= set(zip(long["estimator"], long["shots"]))
    spear = long[(long["metric"] == "spearman")].set_index(["estimator", "shots", "draw"])["value"]
    assert spear[("hybrid", 0, 0)] > 0.8  # the hybrid finds jacov from the source families


def test_dataset_has_means_intervals_and_the_choices(result):
    _, _, long = result
    ds = to_dataset({"NB-201": long})
    assert set(ds.estimator.values) >= {"hybrid (k=0)", "hybrid (k=20)", "GRAF + RF (k=20)", APRIORI, ORACLE}
    one = ds.sel(family="NB-201", estimator="hybrid (k=0)")
    assert float(one["spearman_low"]) <= float(one["spearman_mean"]) <= float(one["spearman_high"])
    assert str(ds["proxy_choice"].sel(family="NB-201", estimator=ORACLE).item()) == "jacov"
    assert int(ds["shots"].sel(estimator="hybrid (k=20)")) == 20
    assert "±" in summary(ds).loc["NB-201", "FLOPs"]
