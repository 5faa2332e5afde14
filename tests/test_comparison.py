"""The predictor comparison (nape_utils.experiments.comparison): the protocol's behaviour on synthetic
NB-201 tables (perfect and reversed scores, seeded splits, skipped sizes, the Dataset's layout), the
proxy cache, the zoo table, NetCDF round trip, and clear errors for bad input."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from nape_utils.experiments import comparison as cmp
from nape_utils.predictors.graf import graf_features
from nape_utils.spaces import get_space

NB201 = get_space("nb201")


def _table(n: int = 60, seed: int = 0, family: str | None = None) -> pd.DataFrame:
    """n random NB-201 cells labelled by a simple function of their ops (convs help, none hurts)."""
    specs = NB201.sample_many(n, seed)
    specs = list(dict.fromkeys(specs))
    acc = [10.0 + 5 * s.count("conv") - 3 * s.count("none") + 0.01 * i for i, s in enumerate(specs)]
    table = pd.DataFrame({"space": "nb201", "spec": specs, "accuracy": acc})
    if family:
        table["family"] = family
    return table


def _scores(table: pd.DataFrame) -> pd.DataFrame:
    """A proxies table: a perfect score, a reversed one, a constant one and one with a failed cell."""
    y = table["accuracy"].to_numpy()
    broken = y.copy()
    broken[0] = np.nan
    return pd.DataFrame({"space": table["space"], "spec": table["spec"], "oracle": y, "reversed": -y,
                         "constant": np.ones(len(y)), "broken": broken, "oracle_seconds": 0.5})


NAMES = ["oracle", "reversed", "constant", "broken"]


@pytest.fixture(scope="module")
def result():
    table = _table(60)
    return cmp.compare(table, _scores(table), proxy_names=NAMES, train_sizes=[8, 20, 128], seeds=3, min_test=10)


# -- the protocol ------------------------------------------------------------------------------------
def test_perfect_and_reversed_scores(result):
    for stat in ("spearman_all", "kendall_all"):
        assert result[stat].sel(family="nb201", estimator="oracle").item() == pytest.approx(1.0)
        assert result[stat].sel(family="nb201", estimator="reversed").item() == pytest.approx(-1.0)
    split = result["spearman"].sel(family="nb201", estimator="oracle", train_size=[8, 20])
    np.testing.assert_allclose(split.values, 1.0)


def test_constant_score_ranks_nothing_and_nan_ranks_last(result):
    assert np.isnan(result["spearman_all"].sel(family="nb201", estimator="constant").item())
    # the failed cell has the lowest accuracy (row 0 is not guaranteed lowest): compare with the ranking
    table = _table(60)
    y = table["accuracy"].to_numpy()
    expected = cmp.spearman(y, np.where(np.arange(len(y)) == 0, y.min() - 1, y))
    assert result["spearman_all"].sel(family="nb201", estimator="broken").item() == pytest.approx(expected)


def test_learned_estimators_rank_well_on_a_learnable_label(result):
    tau = result["kendall"].sel(family="nb201", estimator=cmp.GRAF_RF, train_size=20)
    assert np.all(np.isfinite(tau)) and float(tau.mean()) > 0.5


def test_dataset_layout(result):
    assert result["spearman"].dims == ("family", "estimator", "train_size", "seed")
    for name in ("kendall", "init_seconds", "query_seconds"):
        assert result[name].dims == result["spearman"].dims
    assert result["spearman_all"].dims == ("family", "estimator")
    assert list(result["estimator"].values) == [*NAMES, cmp.GRAF_RF, cmp.PROXIES_RF, cmp.GRAF_PROXIES_RF]
    assert list(result["train_size"].values) == [8, 20, 128]
    assert list(result["seed"].values) == [0, 1, 2]
    assert result["space"].sel(family="nb201").item() == "nb201"
    assert int(result["n_cells"].sel(family="nb201")) == 60
    assert int(result["n_test"].sel(family="nb201", train_size=20)) == 40
    # learned estimators are not scored on all cells; proxies cost nothing to set up
    assert np.isnan(result["spearman_all"].sel(family="nb201", estimator=cmp.GRAF_RF).item())
    assert (result["init_seconds"].sel(family="nb201", estimator="oracle", train_size=8) == 0).all()
    assert (result["query_seconds"].sel(family="nb201", estimator="oracle", train_size=8) == 0.5).all()
    assert (result["init_seconds"].sel(family="nb201", estimator=cmp.GRAF_RF, train_size=8) > 0).all()


def test_train_size_too_large_is_skipped_with_a_note(result):
    assert "N = 128 skipped" in result.attrs["skipped"] and "nb201" in result.attrs["skipped"]
    assert np.isnan(result["kendall"].sel(train_size=128)).all()
    assert int(result["n_test"].sel(family="nb201", train_size=128)) == 0


def test_seeds_give_different_splits_and_the_same_seed_the_same():
    train0, test0 = cmp.split_indices(100, 32, 0)
    train1, _ = cmp.split_indices(100, 32, 1)
    assert len(train0) == 32 and len(test0) == 68
    assert sorted(np.concatenate([train0, test0])) == list(range(100))
    assert set(train0) != set(train1)
    np.testing.assert_array_equal(train0, cmp.split_indices(100, 32, 0)[0])


def test_results_differ_across_seeds(result):
    tau = result["kendall"].sel(family="nb201", estimator=cmp.GRAF_RF, train_size=8).values
    assert len(set(np.round(tau, 6))) > 1


def test_families_are_compared_separately():
    table = pd.concat([_table(40, 0, "a"), _table(40, 1, "b")], ignore_index=True)
    ds = cmp.compare(table, None, train_sizes=[10], seeds=[5, 7])
    assert list(ds["family"].values) == ["a", "b"]
    assert list(ds["estimator"].values) == [cmp.GRAF_RF]
    assert list(ds["seed"].values) == [5, 7]
    assert np.isfinite(ds["kendall"]).all()


def test_summary_and_netcdf_round_trip(result, tmp_path):
    summary = cmp.summarize(result)
    oracle = summary[(summary["estimator"] == "oracle") & (summary["train_size"] == 0)].iloc[0]
    assert oracle["spearman_mean"] == pytest.approx(1.0) and oracle["n_test"] == 60
    graf20 = summary[(summary["estimator"] == cmp.GRAF_RF) & (summary["train_size"] == 20)].iloc[0]
    assert graf20["seeds"] == 3 and graf20["n_test"] == 40 and graf20["kendall_std"] >= 0
    assert not ((summary["train_size"] == 128).any())
    path = cmp.save_comparison(result, tmp_path / "deep" / "comparison.nc")
    back = cmp.load_comparison(path)
    xr.testing.assert_allclose(back[["spearman", "kendall"]], result[["spearman", "kendall"]])
    assert list(back["estimator"].values) == list(result["estimator"].values)
    assert back.attrs["skipped"] == result.attrs["skipped"]


def test_plot_comparison(result):
    import matplotlib

    matplotlib.use("Agg")
    fig = cmp.plot_comparison(result, "nb201", published_kendall={cmp.GRAF_RF: {8: 0.5}},
                              published_spearman={"oracle": 0.9})
    assert len(fig.axes) >= 2
    with pytest.raises(ValueError, match="no family"):
        cmp.plot_comparison(result, "nb999")


# -- tables ------------------------------------------------------------------------------------------
def test_zoo_table_means_seeds_and_sums_training_time():
    specs = NB201.sample_many(3, 0)
    ds = xr.Dataset({"test_accuracy": (("arch", "seed"), [[10.0, 20.0], [30.0, 50.0], [40.0, 40.0]]),
                     "seconds": (("arch", "seed"), [[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])},
                    coords={"arch": [0, 1, 2], "seed": [0, 1], "space": ("arch", ["nb201"] * 3),
                            "spec": ("arch", specs)})
    table = cmp.zoo_table(ds)
    assert table["accuracy"].tolist() == [15.0, 40.0, 40.0]
    assert table["label_seconds"].tolist() == [3.0, 7.0, 11.0]
    assert table["family"].tolist() == ["nb201"] * 3
    with pytest.raises(ValueError, match="no variable"):
        cmp.zoo_table(ds, target="train_accuracy")
    with pytest.raises(ValueError, match="has no nb101"):
        cmp.zoo_table(ds, spaces=["nb101"])
    with pytest.raises(ValueError, match="no zoo at"):
        cmp.zoo_table("no/such/zoo.nc")


def test_nb201_dev_table(shared_data):
    table = cmp.nb201_dev_table(shared_data)
    sizes = table.groupby("family").size().to_dict()
    assert sizes == {"nb201-dev": 500, "nb201-dev-valid": 291}
    with pytest.raises(ValueError, match="subsets"):
        cmp.nb201_dev_table(shared_data, ["most"])


def test_proxy_cache_computes_once_and_resumes(tmp_path, monkeypatch):
    cells = pd.DataFrame({"space": "nb201", "spec": NB201.sample_many(3, 4)})
    cache = tmp_path / "proxies.csv"
    first = cmp.proxy_table(cells.iloc[:2], cache, chunk=1)
    assert len(pd.read_csv(cache)) == 2 and list(first["spec"]) == list(cells["spec"][:2])
    assert set(cmp.PROXY_NAMES) <= set(first.columns)
    calls = []
    real = cmp.score_specs

    def counting(space, specs, *args, **kwargs):
        calls.append(list(specs))
        return real(space, specs, *args, **kwargs)

    monkeypatch.setattr(cmp, "score_specs", counting)
    again = cmp.proxy_table(cells, cache)
    assert calls == [[cells["spec"][2]]]  # only the missing cell is computed
    pd.testing.assert_frame_equal(again.iloc[:2].reset_index(drop=True), first, check_dtype=False)
    assert len(pd.read_csv(cache)) == 3


def test_proxy_cache_keys_on_the_setting(tmp_path):
    cells = pd.DataFrame({"space": "nb201", "spec": NB201.sample_many(1, 5)})
    cache = tmp_path / "proxies.csv"
    cmp.proxy_table(cells, cache)
    cmp.proxy_table(cells, cache, batch_size=16)  # another batch size is another entry
    stored = pd.read_csv(cache)
    assert sorted(stored["batch_size"]) == [16, 64]


def test_proxy_cache_never_reuses_values_from_another_task_or_profile(tmp_path, monkeypatch):
    cells = pd.DataFrame({"space": "nb201", "spec": NB201.sample_many(1, 6)})
    cache = tmp_path / "proxies.csv"
    first = cmp.proxy_table(cells, cache)
    stale = pd.read_csv(cache)
    stale["nwot"] = -1.0  # a value computed under an older task or profile...
    stale.assign(fingerprint="0123456789ab").to_csv(cache, index=False)
    legacy = tmp_path / "legacy.csv"  # ...or before fingerprints existed
    stale.drop(columns="fingerprint").to_csv(legacy, index=False)
    for path in (cache, legacy):
        again = cmp.proxy_table(cells, path)
        assert again["nwot"].iloc[0] == pytest.approx(first["nwot"].iloc[0])  # recomputed, not reused
    # a changed zoo profile changes the fingerprint
    before = cmp.proxy_fingerprint("nb201", "zoo", "task")
    profile = NB201.profiles["zoo"]
    monkeypatch.setitem(type(NB201).profiles, "zoo", type(profile)(profile.name, profile.input_shape,
                                                                    profile.num_classes, {**profile.options, "channels": 16}))
    assert cmp.proxy_fingerprint("nb201", "zoo", "task") != before


def test_graf_cache_computes_once_resumes_and_equals_the_features(tmp_path, monkeypatch):
    specs = get_space("two_path").sample_many(4, 0)
    direct = graf_features("two_path", specs, profile="zoo")
    real, calls = cmp._graf_part, []

    def counting(space, part, *args):
        calls.append(list(part))
        if len(calls) == 2:
            raise KeyboardInterrupt  # interrupted during the second chunk
        return real(space, part, *args)

    monkeypatch.setattr(cmp, "_graf_part", counting)
    with pytest.raises(KeyboardInterrupt):
        cmp.cached_graf_features("two_path", specs[:3], tmp_path, chunk=2)
    path = cmp.graf_cache_path(tmp_path, "two_path", "zoo")
    assert len(pd.read_csv(path)) == 2  # the finished chunk survived
    calls.clear()
    features, seconds = cmp.cached_graf_features("two_path", specs, tmp_path, chunk=2)
    assert calls == [specs[2:4]]  # only the missing networks are traced
    np.testing.assert_array_equal(features.to_numpy(), direct.to_numpy(float))
    assert list(features.columns) == list(direct.columns)
    assert seconds.shape == (4,) and (seconds > 0).all()
    calls.clear()
    again, again_seconds = cmp.cached_graf_features("two_path", specs[::-1], tmp_path)
    assert calls == []  # all from the cache, in the order asked
    np.testing.assert_array_equal(again.to_numpy(), direct.to_numpy(float)[::-1])
    np.testing.assert_array_equal(again_seconds, seconds[::-1])


def test_graf_cache_keys_on_the_profile_and_skips_spec_feature_sets(tmp_path, monkeypatch):
    spec = get_space("two_path").sample_many(1, 1)
    cmp.cached_graf_features("two_path", spec, tmp_path, profile="zoo")
    cmp.cached_graf_features("two_path", spec, tmp_path, profile="paper")
    cmp.cached_graf_features("nb201", NB201.sample_many(2, 1), tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["two_path.paper.csv.gz", "two_path.zoo.csv.gz"]
    path = cmp.graf_cache_path(tmp_path, "two_path", "zoo")
    stale = pd.read_csv(path).assign(fingerprint="0123456789ab")  # written under another zoo profile
    stale.iloc[:, 3:] = 12345
    stale.to_csv(path, index=False)
    features, _ = cmp.cached_graf_features("two_path", spec, tmp_path)
    np.testing.assert_array_equal(features.to_numpy(), graf_features("two_path", spec, profile="zoo").to_numpy(float))
    assert len(pd.read_csv(path)) == 2


def test_compare_with_a_graf_cache_equals_compare_without(tmp_path):
    specs = get_space("two_path").sample_many(14, 2)
    table = pd.DataFrame({"space": "two_path", "spec": specs, "accuracy": np.arange(len(specs), dtype=float)})
    plain = cmp.compare(table, None, train_sizes=[4], seeds=2, min_test=5)
    cached = [cmp.compare(table, None, train_sizes=[4], seeds=2, min_test=5, graf_cache=tmp_path) for _ in range(2)]
    for ds in cached:
        np.testing.assert_array_equal(ds["kendall"].values, plain["kendall"].values)


def test_bad_graf_caches_are_refused(tmp_path):
    spec = get_space("two_path").sample_many(1, 3)
    path = cmp.graf_cache_path(tmp_path, "two_path", "zoo")
    path.write_bytes(b"\x1f\x8b not really gzip")
    with pytest.raises(ValueError, match="not a readable GRAF cache.*delete it"):
        cmp.cached_graf_features("two_path", spec, tmp_path)
    pd.DataFrame({"spec": ["x"], "fingerprint": ["y"], "seconds": [1.0], "op_count[conv]": [1]}).to_csv(path, index=False)
    with pytest.raises(ValueError, match="other columns.*delete it"):
        cmp.cached_graf_features("two_path", spec, tmp_path)
    with pytest.raises(ValueError, match="chunk"):
        cmp.cached_graf_features("two_path", spec, tmp_path, chunk=0)


# -- bad input ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("mutate, message", [
    (lambda t: t.drop(columns="accuracy"), "lacks column"),
    (lambda t: t.iloc[:0], "empty"),
    (lambda t: t.assign(space="nb999"), "nb999"),
    (lambda t: t.assign(accuracy=[np.nan] + [1.0] * (len(t) - 1)), "NaN or inf"),
    (lambda t: t.assign(accuracy="high"), "numeric"),
    (lambda t: pd.concat([t, t.iloc[:1]]), "twice"),
])
def test_bad_tables_are_refused(mutate, message):
    with pytest.raises(ValueError, match=message):
        cmp.check_table(mutate(_table(20)))
    with pytest.raises(ValueError, match="DataFrame"):
        cmp.check_table({"space": ["nb201"]})


@pytest.mark.parametrize("kwargs, message", [
    ({"seeds": 0}, "seeds"),
    ({"seeds": [1, 1]}, "distinct"),
    ({"seeds": ["a"]}, "seeds"),
    ({"train_sizes": []}, "train_sizes"),
    ({"train_sizes": [1]}, "train_sizes"),
    ({"min_test": 1}, "min_test"),
    ({"proxy_names": ["synflow"]}, "no proxies table"),
])
def test_bad_settings_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        cmp.compare(_table(20), None, **kwargs)


def test_bad_proxies_are_refused():
    table = _table(20)
    with pytest.raises(ValueError, match="lacks"):
        cmp.compare(table, _scores(table), proxy_names=["synflow"])
    with pytest.raises(ValueError, match="no proxy values"):
        cmp.compare(table, _scores(table).iloc[:5], proxy_names=["oracle"])
    with pytest.raises(ValueError, match="columns space, spec"):
        cmp.compare(table, pd.DataFrame({"oracle": [1.0]}), proxy_names=["oracle"])
    with pytest.raises(ValueError, match="at least 3"):
        cmp.compare(_table(2), None, train_sizes=[2])
    with pytest.raises(ValueError, match="n_train"):
        cmp.split_indices(10, 10, 0)
    with pytest.raises(ValueError, match="columns space and spec"):
        cmp.proxy_table(pd.DataFrame({"spec": ["x"]}))


def test_proxy_values_beyond_float32_still_train_the_forests():
    """synflow of a deep network can exceed 1e38 (float64 holds it); the forests must still fit on it and
    rank exactly as on an order-preserving rescaling of the same values."""
    table = _table(40)
    y = table["accuracy"].to_numpy()
    huge = pd.DataFrame({"space": table["space"], "spec": table["spec"], "synflow": 10.0 ** (5 * y)})  # up to 1e176
    tame = huge.assign(synflow=y)
    ds_huge = cmp.compare(table, huge, proxy_names=["synflow"], train_sizes=[20], seeds=2)
    ds_tame = cmp.compare(table, tame, proxy_names=["synflow"], train_sizes=[20], seeds=2)
    assert float(huge["synflow"].max()) > 1e100
    for name in (cmp.PROXIES_RF, cmp.GRAF_PROXIES_RF):
        got = ds_huge["spearman"].sel(estimator=name).values
        assert np.isfinite(got).all()
        np.testing.assert_allclose(got, ds_tame["spearman"].sel(estimator=name).values)
