"""nape's hybrid estimator: pool ranks, the order-aware fit, leaving the target's space out, k-shot, files."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr

from nape_utils.predictors.hybrid import HybridEstimator, pool_context, pool_ranks

FEATURES = ("a", "b", "c")
SMALL = dict(features=FEATURES, linear_features=FEATURES, trees=30, min_samples_leaf=5)


def _family(space: str, n: int, seed: int, sign_b: float = 1.0, scale: float = 1.0) -> pd.DataFrame:
    """Accuracy rises with ``a`` (on the family's own scale) and with ``sign_b · b``; ``c`` is noise."""
    rng = np.random.default_rng(seed)
    a, b, c = rng.normal(size=(3, n)) * scale
    return pd.DataFrame({"space": space, "a": a * 100 + 1e4 * scale, "b": b, "c": c,
                         "accuracy": 3 * a + sign_b * b + 0.3 * rng.normal(size=n)})


def test_pool_ranks_are_centred_percentiles_with_nan_lowest_and_ties_averaged():
    r = pool_ranks([3.0, np.nan, 1.0, 3.0])[:, 0]
    assert np.allclose(r, [(3.5 - 0.5) / 4 - 0.5, (1 - 0.5) / 4 - 0.5, (2 - 0.5) / 4 - 0.5, (3.5 - 0.5) / 4 - 0.5])
    assert np.allclose(pool_ranks(np.arange(5.0) * 1e6), pool_ranks(np.arange(5.0)))  # scale-free
    with pytest.raises(ValueError, match="empty pool"):
        pool_ranks([])


def test_pool_context_holds_the_features_correlations_on_every_row():
    x = np.arange(10.0)
    ctx = pool_context(pool_ranks(np.column_stack([x, -x, x ** 2])))
    assert ctx.shape == (10, 3)
    assert np.allclose(ctx[0], [-1.0, 1.0, -1.0]) and np.allclose(ctx, ctx[0])


def test_fit_learns_order_that_transfers_to_a_family_on_another_scale():
    train = {f"f{i}": _family(f"s{i}", 80, i) for i in range(3)}
    model = HybridEstimator(**SMALL).fit(train)
    target = _family("new", 200, 99, scale=50.0)  # another scale: only ranks carry over
    assert spearmanr(model.predict(target), target["accuracy"])[0] > 0.8
    w = model._model(frozenset())[0]
    assert w[0] > w[2] and w[1] > w[2]  # informative features outweigh the noise feature


def test_a_feature_that_hurts_in_every_family_gets_a_negative_weight():
    train = {f"f{i}": _family(f"s{i}", 80, i, sign_b=-1.0) for i in range(3)}
    w = HybridEstimator(**SMALL, prior_strength=0.01).fit(train)._model(frozenset())[0]
    assert w[1] < 0 < w[0]


def test_families_of_the_target_space_are_left_out():
    train = {"same": _family("target", 80, 1, sign_b=-1.0), "other": _family("other", 80, 2)}
    model = HybridEstimator(**SMALL).fit(train)
    pool = _family("target", 60, 3).drop(columns="accuracy")
    model.predict(pool)
    assert set(model._models) == {frozenset(), frozenset({"target"})}
    assert not np.allclose(model.predict(pool), model.predict(pool, space="elsewhere"))
    with pytest.raises(ValueError, match="no training family is left"):
        HybridEstimator(**SMALL).fit({"same": train["same"]}).predict(pool)


def test_calibrate_learns_from_k_labels_without_changing_the_model():
    train = {f"f{i}": _family(f"s{i}", 80, i) for i in range(3)}
    model = HybridEstimator(**SMALL).fit(train)
    rng = np.random.default_rng(5)
    pool = pd.DataFrame({"space": "t", "a": rng.normal(size=300), "b": rng.normal(size=300), "c": rng.normal(size=300)})
    truth = pool["c"].to_numpy() + 0.1 * rng.normal(size=300)  # here only the "noise" feature matters
    before = model.predict(pool)
    labelled = np.arange(50)
    after = model.calibrate(pool, labelled, truth[labelled])
    test = np.arange(50, 300)
    assert spearmanr(after[test], truth[test])[0] > spearmanr(before[test], truth[test])[0] + 0.5
    assert np.allclose(model.predict(pool), before)
    with pytest.raises(ValueError, match="one label per labelled row"):
        model.calibrate(pool, labelled, truth[:10])
    with pytest.raises(ValueError, match="distinct row positions"):
        model.calibrate(pool, np.array([0, 0, 1, 2, 3]), truth[:5])


def test_save_and_load_give_the_same_scores(tmp_path):
    train = {f"f{i}": _family(f"s{i}", 60, i) for i in range(2)}
    model = HybridEstimator(**SMALL).fit(train)
    pool = _family("new", 50, 7)
    path = model.save(tmp_path / "model.json")
    again = HybridEstimator.load(path)
    assert np.allclose(again.predict(pool), model.predict(pool))
    assert again.config.features == FEATURES


def test_bad_files_and_pools_are_refused_with_the_reason(tmp_path):
    (tmp_path / "x.json").write_text("not json")
    with pytest.raises(ValueError, match="not JSON"):
        HybridEstimator.load(tmp_path / "x.json")
    (tmp_path / "y.json").write_text(json.dumps({"format": "other"}))
    with pytest.raises(ValueError, match="is not a nape-hybrid"):
        HybridEstimator.load(tmp_path / "y.json")
    model = HybridEstimator(**SMALL).fit({"f": _family("s", 40, 0)})
    with pytest.raises(ValueError, match="lacks feature column"):
        model.predict(pd.DataFrame({"a": [1.0, 2.0]}))
    with pytest.raises(ValueError, match="at least 2 architectures"):
        model.predict(_family("t", 1, 0))
    with pytest.raises(ValueError, match="not fitted"):
        HybridEstimator(**SMALL).predict(_family("t", 5, 0))
    with pytest.raises(ValueError, match="unknown hybrid setting"):
        HybridEstimator(depth=3)
    with pytest.raises(ValueError, match="not among the features"):
        HybridEstimator(features=("a",), linear_features=("b",))
    with pytest.raises(ValueError, match="mixes spaces"):
        HybridEstimator(**SMALL).fit({"f": pd.concat([_family("s", 5, 0), _family("t", 5, 1)])})


def _nb201_hybrid(tmp_path) -> str:
    """A small hybrid model on cheap features, fitted on two synthetic families, saved as JSON."""
    feats = ("flops", "params", "l2_norm")
    families = {}
    for i, space in enumerate(("s0", "s1")):
        rng = np.random.default_rng(i)
        x = rng.normal(size=(3, 40))
        families[space] = pd.DataFrame({"space": space, "flops": x[0], "params": x[1], "l2_norm": x[2],
                                        "accuracy": x[0] + 0.2 * rng.normal(size=40)})
    model = HybridEstimator(features=feats, linear_features=feats, trees=20, min_samples_leaf=5).fit(families)
    return str(model.save(tmp_path / "hybrid.json"))


def test_cli_predict_ranks_a_pool_with_a_hybrid_model_and_calibrates_on_labels(capsys, monkeypatch, tmp_path):
    from nape_utils.cli import main
    from nape_utils.spaces import get_space

    path = _nb201_hybrid(tmp_path)
    specs = get_space("nb201").sample_many(8, seed=3)
    (tmp_path / "archs.txt").write_text("\n".join(specs))
    code = main(["predict", "nb201", "--archs", str(tmp_path / "archs.txt"), "--model", path, "--quiet"])
    out = capsys.readouterr().out.splitlines()
    assert code == 0 and out[0] == "spec,prediction" and len(out) == 9
    scores = np.array([float(line.rsplit(",", 1)[1]) for line in out[1:]])
    flops = [get_space("nb201").build(s, "zoo") for s in specs]  # the model ranks by FLOPs: bigger first
    assert spearmanr(scores, [sum(p.numel() for p in net.parameters()) for net in flops])[0] > 0.5
    labels = tmp_path / "labels.csv"
    labels.write_text("spec,accuracy\n" + "\n".join(f"{s},{i}" for i, s in enumerate(specs[:5])))
    code = main(["predict", "nb201", "--archs", str(tmp_path / "archs.txt"), "--model", path, "--quiet",
                 "--labels", str(labels)])
    assert code == 0 and len(capsys.readouterr().out.splitlines()) == 9
    labels.write_text("spec,accuracy\n" + get_space("nb201").sample_many(1, seed=99)[0] + ",1\n")
    code = main(["predict", "nb201", "--archs", str(tmp_path / "archs.txt"), "--model", path, "--quiet",
                 "--labels", str(labels)])
    assert code == 2 and "not in --archs" in capsys.readouterr().err


def test_module_features_score_any_networks_as_one_pool():
    import torch.nn as nn

    from nape_utils.predictors.hybrid import module_features

    def net(width: int) -> nn.Module:
        return nn.Sequential(nn.Conv2d(3, width, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                             nn.Linear(width, 10))

    table = module_features({"narrow": net(4), "wide": net(32)}, (3, 16, 16), ("flops", "params", "l2_norm"))
    assert list(table.index) == ["narrow", "wide"]
    assert table.loc["wide", "params"] > table.loc["narrow", "params"] and table.loc["wide", "flops"] > 0
