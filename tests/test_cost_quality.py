"""Rank quality against cost (nape_utils.experiments.cost_quality): perfect and reversed estimators,
the layout and units of the result, failed scores, skipped families, pooling, full training as an
estimator, picking a zoo, the estimator adapters on small inputs, and clear errors for bad input."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import pytest

from nape_utils.experiments import cost_quality as cq
from nape_utils.spaces import get_space
from nape_utils.zoo.export import to_dataset

NB201 = get_space("nb201")


def _labels(n: int = 20, family: str = "nb201", seed: int = 0) -> pd.DataFrame:
    specs = list(dict.fromkeys(NB201.sample_many(n + 10, seed)))[:n]
    acc = [10.0 + 5 * s.count("conv") - 3 * s.count("none") + 0.01 * i for i, s in enumerate(specs)]
    return pd.DataFrame({"family": family, "space": "nb201", "spec": specs, "accuracy": acc})


def _estimates(labels: pd.DataFrame, name: str, score, seconds=0.5, kind: str = "test") -> pd.DataFrame:
    return pd.DataFrame({"family": labels["family"], "spec": labels["spec"], "estimator": name, "kind": kind,
                         "score": np.asarray(score, dtype=float), "seconds": seconds})


def _runs(families: dict[str, int], seeds=(0, 1), noise: float = 0.0, seed: int = 0) -> pd.DataFrame:
    """Synthetic zoo runs: ``families`` maps a space to its number of architectures."""
    rng = np.random.default_rng(seed)
    rows = []
    for space, n in families.items():
        specs = list(dict.fromkeys(get_space(space).sample_many(n + 10, seed)))[:n]
        truth = rng.uniform(20, 80, len(specs))
        for s in seeds:
            for spec, acc in zip(specs, truth):
                rows.append({"space": space, "spec": spec, "seed": s, "budget": 5,
                             "test_accuracy": acc + noise * rng.standard_normal(),
                             "val_accuracy": acc, "seconds": 10.0 + s, "params": 100, "flops": 1000})
    return pd.DataFrame(rows)


# -- cost_quality --------------------------------------------------------------------------------------
def test_perfect_and_reversed_estimators():
    labels = _labels()
    y = labels["accuracy"].to_numpy()
    est = pd.concat([_estimates(labels, "perfect", y, 0.25), _estimates(labels, "reversed", -y, 2.0),
                     _estimates(labels, "monotone", np.exp(y / 10), 1e-3)])
    table = cq.cost_quality(labels, est)
    assert list(table.columns) == list(cq.RESULT_COLUMNS)
    by = table.set_index("estimator")
    assert by.loc["perfect", "spearman"] == pytest.approx(1.0) and by.loc["perfect", "kendall"] == pytest.approx(1.0)
    assert by.loc["monotone", "spearman"] == pytest.approx(1.0)  # ranks only: any increasing transform
    assert by.loc["reversed", "spearman"] == pytest.approx(-1.0)
    assert by.loc["perfect", "seconds_per_arch"] == pytest.approx(0.25)  # seconds, per architecture
    assert by.loc["reversed", "seconds_per_arch"] == pytest.approx(2.0)
    assert (by["n_archs"] == len(labels)).all() and (by["n_failed"] == 0).all()
    assert (by["kind"] == "test").all() and by["ceiling"].isna().all()
    assert table.attrs["skipped"] == ""


def test_seconds_are_the_mean_over_the_family():
    labels = _labels(10)
    seconds = np.arange(10, dtype=float)
    table = cq.cost_quality(labels, _estimates(labels, "e", labels["accuracy"], seconds))
    assert table["seconds_per_arch"].iloc[0] == pytest.approx(seconds.mean())


def test_failed_scores_rank_last_and_are_counted():
    labels = _labels(12)
    y = labels["accuracy"].to_numpy()
    score = y.copy()
    score[np.argmin(y)] = np.nan  # the worst network fails: ranked last, the ranking stays perfect
    table = cq.cost_quality(labels, _estimates(labels, "e", score))
    assert table["n_failed"].iloc[0] == 1
    assert table["spearman"].iloc[0] == pytest.approx(1.0)


def test_constant_score_gives_nan():
    labels = _labels(10)
    table = cq.cost_quality(labels, _estimates(labels, "flat", np.ones(10)))
    assert np.isnan(table["spearman"].iloc[0])


def test_small_family_is_skipped_with_a_note():
    big, small = _labels(12, "big"), _labels(5, "small", seed=3)
    labels = pd.concat([big, small], ignore_index=True)
    est = pd.concat([_estimates(big, "e", big["accuracy"]), _estimates(small, "e", small["accuracy"])])
    table = cq.cost_quality(labels, est, min_archs=8)
    assert table["family"].tolist() == ["big"]
    assert "small: 5 labelled architectures" in table.attrs["skipped"]


def test_kind_is_optional():
    labels = _labels(10)
    est = _estimates(labels, "e", labels["accuracy"]).drop(columns="kind")
    assert cq.cost_quality(labels, est)["kind"].iloc[0] == ""


@pytest.mark.parametrize("change, message", [
    (lambda e: e.drop(columns="seconds"), "lack column"),
    (lambda e: e.assign(seconds=-1.0), "negative or non-finite seconds"),
    (lambda e: e.assign(seconds=np.nan), "negative or non-finite seconds"),
    (lambda e: e.assign(score=np.inf), "must not be inf"),
    (lambda e: e.assign(score="high"), "must be numeric"),
    (lambda e: e.iloc[1:], "lacks 1 of the 10 labelled"),
    (lambda e: pd.concat([e, e.iloc[:1]]), "repeated"),
    (lambda e: pd.concat([e, e.iloc[:1].assign(spec="|none~0|+|none~0|none~1|+|none~0|none~1|none~2|")]),
     "no label"),
    (lambda e: e.assign(family="elsewhere"), "without labels"),
    (lambda e: e.iloc[:0], "empty"),
    (lambda e: e.assign(kind=["a", "b"] * 5), "more than one kind"),
])
def test_bad_estimates_are_refused(change, message):
    labels = _labels(10)
    with pytest.raises(ValueError, match=message):
        cq.cost_quality(labels, change(_estimates(labels, "e", labels["accuracy"])))


def test_bad_labels_and_arguments_are_refused():
    labels = _labels(10)
    est = _estimates(labels, "e", labels["accuracy"])
    with pytest.raises(ValueError, match="lacks column"):
        cq.cost_quality(labels.drop(columns="accuracy"), est)
    with pytest.raises(ValueError, match="NaN or inf"):
        cq.cost_quality(labels.assign(accuracy=np.nan), est)
    with pytest.raises(ValueError, match="must be a pandas DataFrame"):
        cq.cost_quality(labels, est.to_dict())
    with pytest.raises(ValueError, match="min_archs"):
        cq.cost_quality(labels, est, min_archs=2)


# -- pooling ------------------------------------------------------------------------------------------
def test_pooled_averages_correlations_and_weights_seconds():
    a, b = _labels(10, "a"), _labels(30, "b", seed=5)
    labels = pd.concat([a, b], ignore_index=True)
    est = pd.concat([_estimates(a, "e", a["accuracy"], 1.0), _estimates(b, "e", -b["accuracy"], 3.0)])
    table = cq.cost_quality(labels, est)
    pool = cq.pooled(table).iloc[0]
    assert pool["family"] == "pooled" and pool["n_families"] == 2 and pool["n_archs"] == 40
    assert pool["spearman"] == pytest.approx(0.0)  # mean of +1 and -1, not a Spearman over the pooled ranks
    assert (pool["spearman_min"], pool["spearman_max"]) == (pytest.approx(-1.0), pytest.approx(1.0))
    assert pool["seconds_per_arch"] == pytest.approx((10 * 1.0 + 30 * 3.0) / 40)
    with pytest.raises(ValueError, match="empty"):
        cq.pooled(table.iloc[:0])
    with pytest.raises(ValueError, match="lacks column"):
        cq.pooled(table.drop(columns="spearman"))


# -- full training as an estimator ----------------------------------------------------------------------
def test_training_agreement_of_identical_seeds_is_one():
    ds = to_dataset(_runs({"nb201": 12, "nb101": 9}))
    table = cq.training_agreement(ds)
    assert list(table.columns) == list(cq.RESULT_COLUMNS)
    assert set(table["family"]) == {"nb201", "nb101"}
    assert np.allclose(table["spearman"], 1.0) and np.allclose(table["ceiling"], 1.0)
    assert np.allclose(table["seconds_per_arch"], 10.5)  # mean of one run's seconds over seeds 0 and 1
    assert (table["kind"] == cq.KIND_TRAINING).all()


def test_training_agreement_follows_the_labels_subset():
    ds = to_dataset(_runs({"nb201": 12}, noise=20.0))
    labels = cq.cap_archs(pd.DataFrame({"space": ds["space"].values, "spec": ds["spec"].values,
                                        "accuracy": ds["test_accuracy"].mean("seed").values}), 8, seed=1)
    table = cq.training_agreement(ds, labels)
    assert table["n_archs"].tolist() == [8]
    assert -1 <= table["spearman"].iloc[0] < 1  # noisy seeds disagree
    with pytest.raises(ValueError, match="not in the zoo"):
        cq.training_agreement(ds, _labels(8, seed=7))
    with pytest.raises(ValueError, match="no variable"):
        cq.training_agreement(ds, target="accuracy")


# -- choosing the zoo -------------------------------------------------------------------------------------
def test_pick_zoo_prefers_the_first_usable_source(tmp_path):
    small, usable, later = tmp_path / "small.nc", tmp_path / "usable.nc", tmp_path / "later.nc"
    to_dataset(_runs({"nb201": 4})).to_netcdf(small, engine="scipy")
    to_dataset(_runs({"nb201": 9, "nb101": 3})).to_netcdf(usable, engine="scipy")
    to_dataset(_runs({"nb101": 20})).to_netcdf(later, engine="scipy")
    path, ds, overview = cq.pick_zoo([tmp_path / "absent.nc", small, usable, later], min_archs=8)
    assert path == usable and ds.sizes["arch"] == 12
    status = overview.groupby("source")["status"].first()
    assert status[str(tmp_path / "absent.nc")] == "absent"
    assert status[str(small)].startswith("no family with 8+")
    assert status[str(usable)] == "used" and status[str(later)] == "not needed"
    with pytest.raises(ValueError, match="no zoo source has a family"):
        cq.pick_zoo([small], min_archs=8)
    with pytest.raises(ValueError, match="min_archs"):
        cq.pick_zoo([small], min_archs=1)


def test_zoo_summary_counts_each_familys_own_seeds():
    """The export's seed axis is the union of the families' seeds: a 2-seed family beside a 3-seed one has
    NaN in its third column, which must neither count as a seed nor turn its run cost into NaN."""
    runs = pd.concat([_runs({"nb201": 6}, seeds=(0, 1)), _runs({"nb101": 5}, seeds=(0, 1, 2))], ignore_index=True)
    summary = cq.zoo_summary(to_dataset(runs)).set_index("family")
    assert summary.loc["nb201", "seeds"] == 2 and summary.loc["nb101", "seeds"] == 3
    assert summary.loc["nb201", "run_seconds"] == pytest.approx(10.5)  # seeds 0 and 1 cost 10 and 11 s
    assert summary.loc["nb101", "run_seconds"] == pytest.approx(11.0)
    assert summary.loc["nb101", "archs"] == 5 and summary.loc["nb201", "budget_epochs"] == 5


def test_pick_zoo_reads_a_store_and_its_task(tmp_path):
    from nape_utils.zoo.store import ZooStore

    config = {"task": {"size": 16, "n_train": 500, "n_val": 100, "n_test": 100, "clutter": 1, "noise": 0.1,
                       "seed": 0}}
    path = tmp_path / "zoo.sqlite"
    with ZooStore(path, config) as store:
        for _, r in _runs({"nb201": 8}).iterrows():
            store.add({**r.to_dict(), "train_loss": [1.0], "versions": {}}, int(r["budget"]))
    found, ds, _ = cq.pick_zoo([path])
    task = cq.zoo_task(ds)
    assert found == path and (task.n_train, task.clutter) == (500, 1)
    empty = tmp_path / "empty.sqlite"
    ZooStore(empty).close()
    _, _, overview = cq.pick_zoo([empty, path])
    assert overview["status"].iloc[0] == "no runs yet"


def test_cap_archs_is_seeded_and_bounded():
    labels = pd.concat([_labels(20, "a"), _labels(5, "b", seed=2)], ignore_index=True)
    one, two = cq.cap_archs(labels, 8, seed=0), cq.cap_archs(labels, 8, seed=0)
    assert one.equals(two)
    assert one.groupby("family").size().to_dict() == {"a": 8, "b": 5}
    assert len(cq.cap_archs(labels, None)) == 25
    with pytest.raises(ValueError, match="max_per_family"):
        cq.cap_archs(labels, 1)


# -- the estimator adapters -------------------------------------------------------------------------------
def test_proxy_estimates_from_a_proxy_table():
    labels = _labels(10)
    table = labels[["space", "spec"]].assign(synflow=labels["accuracy"], synflow_seconds=0.01)
    est = cq.proxy_estimates(labels, table, ["synflow"])
    assert len(est) == 10 and (est["kind"] == cq.KIND_PROXY).all()
    assert cq.cost_quality(labels, est)["spearman"].iloc[0] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="lacks column"):
        cq.proxy_estimates(labels, table, ["snip"])
    with pytest.raises(ValueError, match="no values for 1 labelled"):
        cq.proxy_estimates(labels, table.iloc[1:], ["synflow"])


def test_graf_rf_estimates_predict_every_architecture_out_of_fold():
    labels = _labels(40).assign(label_seconds=10.0)
    est = cq.graf_rf_estimates(labels, folds=4, seed=0)
    assert len(est) == 40 and est["score"].notna().all() and (est["seconds"] > 0).all()
    assert est.attrs["label_seconds"]["nb201"] == pytest.approx(40 * 10.0 * 3 / 4)
    assert cq.cost_quality(labels, est)["spearman"].iloc[0] > 0.5  # the label is a function of the ops
    with pytest.raises(ValueError, match="needs at least 10"):
        cq.graf_rf_estimates(labels.iloc[:9], folds=5)
    with pytest.raises(ValueError, match="folds"):
        cq.graf_rf_estimates(labels, folds=1)


def test_rwe_estimates_layout():
    from nape_utils.data.task import TaskConfig

    labels = _labels(3)
    task = TaskConfig(n_train=60, n_val=40, n_test=10)
    est = cq.rwe_estimates(labels, 50, task=task)
    assert list(est.columns) == ["family", "spec", "estimator", "kind", "score", "seconds"]
    assert (est["estimator"] == "RWE (n=50)").all() and (est["kind"] == cq.KIND_RWE).all()
    assert est["score"].between(0, 100).all() and (est["seconds"] > 0).all()


def test_plot_cost_quality_draws_and_refuses_nothing_to_draw():
    import matplotlib.pyplot as plt

    labels = _labels(10)
    y = labels["accuracy"].to_numpy()
    est = pd.concat([_estimates(labels, "a", y, 0.1, cq.KIND_RWE), _estimates(labels, "b", -y, 1.0, cq.KIND_PROXY)])
    table = cq.cost_quality(labels, est)
    fig = cq.plot_cost_quality(cq.pooled(table), ceiling=0.9, title="t")
    assert fig.axes[0].get_xscale() == "log"
    plt.close(fig)
    with pytest.raises(ValueError, match="nothing to draw"):
        cq.plot_cost_quality(table.assign(spearman=np.nan))
