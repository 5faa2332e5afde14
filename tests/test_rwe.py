"""RWE: only the last layer is trained, the closed form, determinism, bad input and the CLI."""
from __future__ import annotations

import csv
import warnings

import numpy as np
import pytest
import torch
import torch.nn as nn

from nape_utils.cli import main
from nape_utils.data.task import TaskConfig, make_task
from nape_utils.predictors import RWE, RWEWarning, final_linear, fit_last_layer, rwe_network, rwe_score, rwe_scores
from nape_utils.spaces import get_space

SPEC = "|nor_conv_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|avg_pool_3x3~0|nor_conv_3x3~1|skip_connect~2|"
ALL_CONV = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"
ALL_NONE = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"
SMALL = TaskConfig(n_train=300, n_val=200, n_test=10)  # renders in a fraction of a second
FAST = {"n_train": 200, "task": SMALL}


def _random_net(space: str, spec: str, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return get_space(space).build(spec, "zoo")


def _val(task: TaskConfig = SMALL):
    x, y = make_task(task)["val"]
    return torch.tensor(x), torch.tensor(y)


def _accuracy(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return 100.0 * (net.eval()(x).argmax(1) == y).sum().item() / len(y)


# -- only the last layer is trained ---------------------------------------------------------------
@pytest.mark.parametrize("bn", ["eval", "batch"])
def test_only_the_final_linear_changes(bn):
    fitted = rwe_network("nb201", SPEC, bn=bn, **FAST)
    fresh = _random_net("nb201", SPEC)
    name, _ = final_linear(fresh, _val()[0][:2])
    assert name == "head.classifier"
    before, after = fresh.state_dict(), fitted.state_dict()
    assert before.keys() == after.keys()
    for key, value in before.items():
        if key.startswith(f"{name}."):
            assert not torch.equal(value, after[key]), f"{key} was not fitted"
        else:  # every other parameter and buffer (BN running stats, num_batches_tracked) bitwise the init
            assert value.dtype == after[key].dtype and torch.equal(value, after[key]), f"{key} changed"


def test_network_reproduces_the_score():
    est = RWE(**FAST)
    x, y = _val()
    assert _accuracy(est.network("nb201", SPEC), x, y) == est.score("nb201", SPEC)


def test_caller_mode_flags_and_rng_untouched():
    net = _random_net("nb201", SPEC).train()
    train = tuple(torch.tensor(a[:100]) for a in make_task(SMALL)["train"])
    state = torch.get_rng_state()
    fit_last_layer(net, train, _val(), bn="batch")
    assert all(m.training for m in net.modules())
    assert all(m.track_running_stats for m in net.modules() if isinstance(m, nn.BatchNorm2d))
    rwe_score("nb201", SPEC, **FAST)
    assert torch.equal(state, torch.get_rng_state())


# -- the closed form -------------------------------------------------------------------------------
def test_classifier_is_ridge_on_standardised_features():
    """With φ = identity the written layer is sklearn's Ridge(alpha = α·n) on z-scored features, mapped
    back to raw coordinates: weight = (W / σ)ᵀ, bias = ȳ − Wᵀ(μ / σ)."""
    from sklearn.linear_model import Ridge

    g = torch.Generator().manual_seed(0)
    x = torch.randn(120, 6, generator=g) * torch.arange(1, 7) + 3.0
    y = torch.arange(120) % 4
    net = nn.Sequential(nn.Linear(6, 4))
    alpha = 0.05
    acc = fit_last_layer(net, (x, y), (x, y), alpha=alpha)
    h = x.double().numpy()
    mu, sd = h.mean(0), h.std(0)
    ridge = Ridge(alpha=alpha * len(h)).fit((h - mu) / sd, np.eye(4)[y.numpy()])
    weight = ridge.coef_ / sd
    bias = ridge.intercept_ - ridge.coef_ @ (mu / sd)
    np.testing.assert_allclose(net[0].weight.detach().numpy(), weight, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(net[0].bias.detach().numpy(), bias, rtol=1e-5, atol=1e-6)
    assert acc == _accuracy(net, x, y)


def test_bias_free_classifier_and_dual_form():
    """More features than examples (dual form) and no bias: the training set is fitted exactly."""
    g = torch.Generator().manual_seed(1)
    x = torch.randn(30, 50, generator=g)
    y = torch.arange(30) % 3
    net = nn.Sequential(nn.Linear(50, 3, bias=False))
    assert fit_last_layer(net, (x, y), (x, y), alpha=1e-6) == 100.0


def test_non_finite_features_give_nan_with_warning():
    net = nn.Sequential(nn.Linear(4, 3))
    weight = net[0].weight.detach().clone()
    x = torch.ones(20, 4)
    x[3, 0] = float("inf")
    with pytest.warns(RWEWarning, match="not finite"):
        assert np.isnan(fit_last_layer(net, (x, torch.arange(20) % 3), (torch.ones(5, 4), torch.zeros(5).long())))
    assert torch.equal(weight, net[0].weight)


# -- determinism -----------------------------------------------------------------------------------
def test_deterministic_for_a_seed():
    a, b = rwe_network("nb201", SPEC, seed=3, **FAST), rwe_network("nb201", SPEC, seed=3, **FAST)
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert ka == kb and torch.equal(va, vb)
    assert rwe_score("nb201", SPEC, seed=3, **FAST) == rwe_score("nb201", SPEC, seed=3, **FAST)
    c = rwe_network("nb201", SPEC, seed=4, **FAST)  # another seed, other random weights
    assert not torch.equal(next(a.parameters()), next(c.parameters()))


# -- a better architecture beats a degenerate one ----------------------------------------------------
def test_conv_cell_beats_the_all_none_cell_which_is_at_chance():
    est = RWE()  # the defaults, on the default task
    none, conv = est.score("nb201", ALL_NONE), est.score("nb201", ALL_CONV)
    (_, y_train), (_, y_val) = est.data(16)
    # all-none: the cell outputs zeros, the features are constant, the classifier predicts the training
    # subset's most frequent class; the score is that class's share of the validation split
    majority = int(torch.bincount(y_train).argmax())
    assert none == pytest.approx(100.0 * (y_val == majority).float().mean().item())
    assert none < 12.5 < conv


# -- other networks and sizes ----------------------------------------------------------------------
def test_network_without_final_linear_is_a_clear_error():
    net = nn.Sequential(nn.Conv2d(3, 10, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    x = torch.randn(12, 3, 8, 8)
    y = torch.arange(12) % 10
    with pytest.raises(ValueError, match="no nn.Linear"):
        fit_last_layer(net, (x, y), (x, y))
    with pytest.raises(ValueError, match="no nn.Linear"):
        final_linear(net, x)


def test_bad_train_or_val_pairs():
    net = nn.Sequential(nn.Linear(4, 3))
    x, y = torch.randn(6, 4), torch.arange(6) % 3
    with pytest.raises(ValueError, match="train must be a pair"):
        fit_last_layer(net, x, (x, y))
    with pytest.raises(ValueError, match=r"val labels must be integer class indices of shape \[6\]"):
        fit_last_layer(net, (x, y), (x, y[:5]))
    with pytest.raises(ValueError, match="labels must lie in 0..2"):
        fit_last_layer(net, (x, y + 1), (x, y))


def test_linear_that_is_not_last_is_a_clear_error():
    net = nn.Sequential(nn.Flatten(), nn.Linear(12, 10), nn.Softmax(dim=1))
    x = torch.randn(12, 3, 2, 2)
    with pytest.raises(ValueError, match="not its last operation"):
        fit_last_layer(net, (x, torch.arange(12) % 10), (x, torch.arange(12) % 10))


def test_last_linear_in_forward_order():
    """The classifier is the last Linear *called*, not the last one registered."""

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.classifier = nn.Linear(5, 3)
            self.body = nn.Linear(4, 5)  # registered last, called first

        def forward(self, x):
            return self.classifier(torch.relu(self.body(x)))

    assert final_linear(Net(), torch.randn(2, 4))[0] == "classifier"


def test_other_size_and_unsupported_size():
    est = RWE(size=24, **FAST)
    assert 0.0 <= est.score("nb201", SPEC) <= 100.0
    assert est.data(24)[0][0].shape[-2:] == (24, 24)
    with pytest.raises(ValueError, match="failed at 14×14"):
        RWE(size=14, **FAST).score("nb201", SPEC)


def test_ofa_resolution_below_the_canvas_is_the_canvas_downsampled():
    """An OFA spec at r=128 is a 9×9 network at zoo size: RWE shows it the task as the zoo trainer does."""
    import json

    from nape_utils.data.task import task_tensors

    est = RWE(**FAST)
    spec = json.dumps({**json.loads(get_space("ofa_pn").sample_many(1, seed=0)[0]), "r": 128})
    assert 0.0 <= est.score("ofa_pn", spec) <= 100.0
    (x_train, _), (x_val, y_val) = est.data(9)
    expected = task_tensors(make_task(SMALL), "val", 9)
    assert x_train.shape[1:] == (3, 9, 9) and torch.equal(x_val, expected[0]) and torch.equal(y_val, expected[1])


def test_score_specs_table():
    table = rwe_scores("nb201", [SPEC, ALL_NONE], progress=False, **FAST)
    assert list(table.columns) == ["spec", "rwe_accuracy", "seconds"]
    assert table["spec"].tolist() == [SPEC, ALL_NONE]
    assert table["rwe_accuracy"].tolist() == [rwe_score("nb201", s, **FAST) for s in (SPEC, ALL_NONE)]
    assert (table["seconds"] > 0).all()


# -- bad input -------------------------------------------------------------------------------------
@pytest.mark.parametrize("n_train", [0, 9, 301, 1.5, True, "100"])
def test_bad_n_train(n_train):
    with pytest.raises(ValueError, match="n_train must be an integer from 10 to 300"):
        RWE(n_train=n_train, task=SMALL)


@pytest.mark.parametrize("params, match", [
    ({"seed": -1}, "seed"), ({"size": 8}, "size"), ({"bn": "train"}, "bn must be one of"),
    ({"alpha": -1.0}, "alpha"), ({"alpha": 0}, "alpha"), ({"alpha": float("nan")}, "alpha"), ({"chunk": 0}, "chunk"),
    ({"task": "default"}, "TaskConfig"), ({"profile": 3}, "profile"),
])
def test_bad_params(params, match):
    with pytest.raises(ValueError, match=match):
        RWE(**params)


def test_bad_spec_and_profile_and_no_specs():
    with pytest.raises(ValueError, match="spec 2"):
        rwe_scores("nb201", [SPEC, "|nope~0|"], progress=False, **FAST)
    with pytest.raises(ValueError, match="no specs"):
        rwe_scores("nb201", [], progress=False, **FAST)
    with pytest.raises(ValueError, match="unknown profile"):
        rwe_score("nb201", SPEC, profile="huge", **FAST)


# -- CLI -------------------------------------------------------------------------------------------
def test_cli_round_trip(tmp_path):
    archs = tmp_path / "archs.txt"
    archs.write_text(f"{SPEC}\n{ALL_CONV}\n")
    out = tmp_path / "rwe.csv"
    assert main(["rwe", "nb201", "--archs", str(archs), "--out", str(out), "--n-train", "200", "--seed", "1",
                 "--quiet"]) == 0
    with out.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["spec"] for r in rows] == [SPEC, ALL_CONV]
    assert set(rows[0]) == {"spec", "rwe_accuracy", "seconds"}
    for row in rows:
        assert float(row["rwe_accuracy"]) == rwe_score("nb201", row["spec"], n_train=200, seed=1)
        assert float(row["seconds"]) > 0


def test_cli_bad_n_train_exits_2(tmp_path, capsys):
    archs = tmp_path / "archs.txt"
    archs.write_text(SPEC + "\n")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main(["rwe", "nb201", "--archs", str(archs), "--n-train", "3", "--quiet"]) == 2
    assert "n_train must be" in capsys.readouterr().err


# -- benchmark -------------------------------------------------------------------------------------
def test_bench_rwe_on_a_tiny_store(tmp_path):
    import json
    from dataclasses import asdict

    from nape_utils.experiments.bench import bench_rwe
    from nape_utils.zoo import ZooStore

    store = tmp_path / "zoo.sqlite"
    specs = {SPEC: 50.0, ALL_CONV: 60.0, ALL_NONE: 10.0}
    with ZooStore(store, {"task": asdict(SMALL)}) as zoo:
        for spec, acc in specs.items():
            for seed in (0, 1):
                zoo.add({"space": "nb201", "spec": spec, "seed": seed, "test_accuracy": acc + seed,
                         "val_accuracy": acc, "train_loss": [1.0], "params": 1, "flops": 1, "seconds": 1.0,
                         "versions": {}}, budget=1)
    report = bench_rwe(["nb201"], n=1, n_train=200, store=store, out=tmp_path / "rwe.json")
    assert json.loads((tmp_path / "rwe.json").read_text()) == report
    (timing,) = report["results"]
    assert timing["space"] == "nb201" and timing["n"] == 1 and timing["cpu_seconds_mean"] > 0
    assert [(r["space"], r["task"], r["n"]) for r in report["ranking"]] == [("nb201", "store", 3),
                                                                             ("nb201", "default", 3)]
    assert all(-1.0 <= r["spearman"] <= 1.0 and r["train_seconds_mean"] == 1.0 for r in report["ranking"])
    assert report["params"]["store_task"] == asdict(SMALL)
    capped = bench_rwe(["nb201"], n=1, n_train=200, store=store, rank_archs=2, out=tmp_path / "capped.json")
    assert [r["n"] for r in capped["ranking"]] == [2, 2] and capped["params"]["rank_archs"] == 2
    with pytest.raises(ValueError, match="rank_archs must be at least 2"):
        bench_rwe(["nb201"], n=1, store=store, rank_archs=1, out=tmp_path / "bad.json")


def test_channels_last_families_score_as_in_the_default_layout(monkeypatch):
    """A zoo profile that asks for channels-last tensors (the OFA families) is scored in that layout, as the
    zoo trainer trains it; the layout changes the arithmetic's order, not the score beyond rounding."""
    import dataclasses

    space = get_space("ofa_pn")
    spec = space.sample_many(1, seed=0)[0]
    assert space.profile("zoo").options["channels_last"]
    fast = RWE(**FAST).score("ofa_pn", spec)
    plain = dataclasses.replace(space.profile("zoo"), options={**space.profile("zoo").options, "channels_last": False})
    monkeypatch.setitem(type(space).profiles, "zoo", plain)
    assert RWE(**FAST).score("ofa_pn", spec) == pytest.approx(fast, abs=1.0)
