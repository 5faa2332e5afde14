"""Estimator-guided multi-objective search: operators, optimum on an enumerable space, hypervolume,
random baseline budget, verification, bad input and the CLI."""
from __future__ import annotations

import itertools
import json
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch.nn as nn
from pymoo.core.population import Population

from nape_utils.cli import main
from nape_utils.graphs import graph_of
from nape_utils.search import (ArchProblem, SearchResult, estimator_names, hypervolume, make_estimator,
                               reference_spec, search, verify)
from nape_utils.search.problem import CanonicalDuplicates, ChooseParent, SpaceMutation, SpaceSampling
from nape_utils.spaces import Profile, Space, get_space


def crc_score(specs):
    """A deterministic stand-in estimator: a pseudo-random accuracy in [0, 100) per spec."""
    return np.array([zlib.crc32(s.encode()) % 1000 / 10 for s in specs])


# -- a tiny enumerable space: 16 conv nets (width × depth) ------------------------------------------------------
class TinyGrid(Space):
    name = "tiny_grid"
    profiles = {"zoo": Profile("zoo", (3, 8, 8), 10)}
    WIDTHS, DEPTHS = (1, 2, 4, 8), (1, 2, 3, 4)

    def parse(self, text):
        obj = json.loads(text)
        if obj.get("w") not in self.WIDTHS or obj.get("d") not in self.DEPTHS:
            raise ValueError(f"bad tiny_grid spec {text!r}")
        return obj["w"], obj["d"]

    def format(self, parsed):
        return json.dumps({"d": parsed[1], "w": parsed[0]}, separators=(",", ":"))

    def sample(self, rng):
        return self.format((int(rng.choice(self.WIDTHS)), int(rng.choice(self.DEPTHS))))

    def mutate(self, text, rng):
        w, d = self.parse(text)
        if rng.random() < 0.5:
            w = int(rng.choice([v for v in self.WIDTHS if v != w]))
        else:
            d = int(rng.choice([v for v in self.DEPTHS if v != d]))
        return self.format((w, d))

    def all(self):
        return [self.format(p) for p in itertools.product(self.WIDTHS, self.DEPTHS)]

    def build(self, text, profile="zoo"):
        w, d = self.parse(text)
        layers = [nn.Conv2d(3, w, 3, padding=1), nn.ReLU()]
        for _ in range(d - 1):
            layers += [nn.Conv2d(w, w, 3, padding=1), nn.ReLU()]
        return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(w, 10))


def tiny_labels(space):
    """A fake labelled table of all 16 nets: accuracy grows with width, peaks at depth 3, all distinct."""
    return {s: 20 + 8 * np.log2(w) + {1: 0, 2: 3, 3: 5, 4: 1}[d] + 0.1 * w * d
            for s, (w, d) in ((s, space.parse(s)) for s in space.all())}


def true_front(space, labels):
    """Brute-force non-dominated set of (max accuracy, min FLOPs)."""
    points = {s: (labels[s], graph_of(space, s, "zoo").flops) for s in space.all()}
    return {s for s, (a, f) in points.items()
            if not any(a2 >= a and f2 <= f and (a2 > a or f2 < f) for a2, f2 in points.values())}


# -- operators --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["nb201", "hiaml"])
def test_operators_give_valid_canonical_specs(name):
    space, rng = get_space(name), np.random.default_rng(1)
    X = SpaceSampling(space)._do(None, 12, random_state=rng)
    assert X.shape == (12, 1) and len(set(X[:, 0])) == 12
    pop = Population.new("X", X)
    children = ChooseParent().do(type("P", (), {"n_var": 1})(), pop, parents=rng.integers(12, size=(10, 2)),
                                 random_state=rng)
    assert set(children.get("X")[:, 0]) <= set(X[:, 0])  # a child copies a parent
    mutated = SpaceMutation(space)._do(None, children.get("X"), random_state=rng)
    for before, after in zip(children.get("X")[:, 0], mutated[:, 0]):
        assert space.canonical(after) == after and after != before
    dup = Population.new("X", np.array([[X[0, 0]], [X[1, 0]], [X[0, 0]]], dtype=object))
    assert CanonicalDuplicates(space)._do(dup, None, np.zeros(3, bool)).tolist() == [False, False, True]


@pytest.mark.parametrize("name,generations,population", [("nb201", 4, 8), ("hiaml", 3, 4)])
def test_every_offspring_is_a_valid_canonical_spec(name, generations, population, monkeypatch):
    space = get_space(name)
    seen = []
    evaluate = ArchProblem._evaluate

    def spy(self, X, out, *args, **kwargs):
        seen.append([x[0] for x in X])
        return evaluate(self, X, out, *args, **kwargs)

    monkeypatch.setattr(ArchProblem, "_evaluate", spy)
    bounds = {"accuracy": (100, 0), "flops": (0, 5e6)}  # fixed: no calibration graphs (HiAML traces slowly)
    result = search(space, crc_score, generations, population, seed=3, bounds=bounds)
    assert len(seen) == generations
    for batch in seen:
        assert all(space.canonical(s) == s for s in batch)
        assert len(set(batch)) == len(batch)  # duplicates were eliminated within each generation
    assert set(result.evaluations["spec"]) == {s for batch in seen for s in batch}
    assert result.n_evals == sum(map(len, seen))


# -- the known optimum -----------------------------------------------------------------------------------------
def test_oracle_search_finds_the_true_pareto_front_of_a_tiny_space():
    space = TinyGrid()
    labels = tiny_labels(space)
    result = search(space, "oracle", generations=8, population=6, seed=0, estimator_options={"labels": labels})
    assert set(result.front["spec"]) == true_front(space, labels)
    assert result.meta["bounds"]["accuracy"] == [max(labels.values()), min(labels.values())]
    for row in result.front.itertuples():
        assert row.accuracy == pytest.approx(labels[row.spec])
        assert row.flops == graph_of(space, row.spec, "zoo").flops


def test_hypervolume_never_decreases_under_nsga2_elitism():
    result = search("nb201", crc_score, generations=6, population=8, seed=1)
    for column in ("hv", "hv_population"):
        assert np.all(np.diff(result.history[column]) >= -1e-12), result.history
    assert result.history["hv"].iloc[-1] > result.history["hv"].iloc[0]
    assert result.meta["ref_point"] == [1.1, 1.1]


def test_hypervolume_by_hand():
    # two points against r = (1.1, 1.1): the union of their boxes, as two disjoint rectangles
    F = np.array([[0.1, 0.5], [0.5, 0.1]])
    expected = (1.1 - 0.1) * (1.1 - 0.5) + (1.1 - 0.5) * (0.5 - 0.1)
    assert hypervolume(F) == pytest.approx(expected)
    assert hypervolume(np.array([[1.2, 0.0]])) == 0.0  # beyond the reference point: adds nothing
    assert hypervolume(np.empty((0, 2))) == 0.0


# -- random baseline ---------------------------------------------------------------------------------------------
def test_random_baseline_spends_the_same_budget():
    nsga = search("nb201", crc_score, generations=3, population=6, seed=2)
    rand = search("nb201", crc_score, generations=3, population=6, seed=2, algorithm="random",
                  budget=nsga.n_evals, bounds=nsga.meta["bounds"])
    assert rand.n_evals == nsga.n_evals == len(rand.evaluations)
    assert rand.meta["algorithm"] == "random" and rand.history["n_evals"].is_monotonic_increasing
    assert np.all(np.diff(rand.history["hv"]) >= 0)
    default = search("nb201", crc_score, generations=3, population=6, seed=2, algorithm="random")
    assert default.n_evals == 3 * 6


def test_random_estimator_name_selects_random_search():
    est = make_estimator("random", "nb201")
    assert est.algorithm == "random" and est.name == "random:synflow"
    result = search("nb201", "random:params", generations=2, population=3, seed=0)
    assert result.meta["algorithm"] == "random" and result.n_evals == 6
    with pytest.raises(ValueError, match="cannot be random"):
        make_estimator("random:random", "nb201")


def test_verify_trains_fronts_reference_and_random_at_the_same_budget():
    space = TinyGrid()
    labels = tiny_labels(space)
    result = search(space, "oracle", generations=3, population=4, seed=0, estimator_options={"labels": labels})
    calls = []

    def trainer(sp, spec, seed, config):
        calls.append((spec, seed))
        return {"test_accuracy": labels[spec] - 1, "val_accuracy": labels[spec]}

    check = verify(result, trainer=trainer, seeds=(0, 1), reference=space.format((8, 4)))
    assert set(check.table["source"]) == {"search", "random", "reference"}
    assert check.baseline.n_evals == result.n_evals
    assert len(calls) == 2 * check.table["spec"].nunique()  # each spec trained once per seed
    ref = check.table[check.table["source"] == "reference"].iloc[0]
    assert ref["estimated"] == pytest.approx(labels[ref["spec"]])
    assert set(check.summary["source"]) == {"search", "random", "reference"}
    assert (check.summary["hv_true"] >= 0).all()


def test_reference_specs():
    spec, note = reference_spec("nb201")
    assert spec.count("nor_conv_3x3") == 5 and "best" in note
    spec, note = reference_spec("nb301")
    assert get_space("nb301").canonical(spec) == spec and "DARTS" in note
    spec, note = reference_spec("hiaml")
    assert spec == get_space("hiaml").sample(np.random.default_rng(0)) and "default" in note


# -- results on disk -----------------------------------------------------------------------------------------------
def test_result_round_trip(tmp_path):
    result = search("nb201", crc_score, generations=2, population=4, seed=0, objectives=("accuracy", "flops", "params"),
                    out=tmp_path / "run")
    assert result.meta["ref_point"] == [1.1, 1.1, 1.1] and "f_params" in result.front
    loaded = SearchResult.load(tmp_path / "run")
    assert loaded.front["spec"].tolist() == result.front["spec"].tolist()
    assert loaded.history["hv"].tolist() == pytest.approx(result.history["hv"].tolist())
    ds = result.to_xarray()
    assert ds["on_front"].sum() == len(result.fronts) and ds.sizes["evaluation"] == len(result.evaluations)
    assert (tmp_path / "run" / "search.nc").is_file()


# -- bad input -----------------------------------------------------------------------------------------------------
class Untraceable(TinyGrid):
    name = "untraceable"

    def build(self, text, profile="zoo"):
        class DataDependent(nn.Module):
            def forward(self, x):
                return x if x.sum() > 0 else -x  # control flow on a tensor: torch.fx cannot trace it
        return DataDependent()


class NoFlops(TinyGrid):
    name = "no_flops"

    def build(self, text, profile="zoo"):
        return nn.Sequential(nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())


def test_bad_input_is_refused_clearly():
    with pytest.raises(ValueError, match=r"unknown estimator 'nope'; known estimators: .*oracle.*synflow"):
        search("nb201", "nope", 2, 4)
    assert {"gennape", "rwe", "graf_rf", "oracle", "random", "synflow", "jacov"} <= set(estimator_names())
    with pytest.raises(ValueError, match="population must be an integer of at least 2"):
        search("nb201", crc_score, 2, 1)
    with pytest.raises(ValueError, match="generations must be an integer of at least 1"):
        search("nb201", crc_score, 0, 4)
    with pytest.raises(ValueError, match="cannot build the computation graph"):
        search(Untraceable(), crc_score, 1, 2)
    with pytest.raises(ValueError, match="has no flops"):
        search(NoFlops(), crc_score, 1, 2)
    with pytest.raises(ValueError, match="objectives must be"):
        search("nb201", crc_score, 1, 2, objectives=("flops", "params"))
    with pytest.raises(ValueError, match="unknown algorithm"):
        search("nb201", crc_score, 1, 2, algorithm="cma")
    with pytest.raises(ValueError, match="unknown profile"):
        search("nb201", crc_score, 1, 2, profile="huge")
    with pytest.raises(ValueError, match="takes no"):
        make_estimator("synflow:3", "nb201")


def test_oracle_refuses_an_unlabelled_spec_and_missing_labels(tmp_path):
    space = TinyGrid()
    labels = tiny_labels(space)
    missing = space.format((8, 4))
    labels.pop(missing)
    oracle = make_estimator("oracle", space, labels=labels)
    with pytest.raises(ValueError, match="no 'val_accuracy' label for 1 spec"):
        oracle.score([missing])
    with pytest.raises(ValueError, match="no label file"):
        make_estimator(f"oracle:{tmp_path / 'none.nc'}", space)
    with pytest.raises(ValueError, match="on_missing"):
        make_estimator("oracle", space, labels=labels, on_missing="guess")


def test_oracle_reads_a_csv_table(tmp_path):
    space = TinyGrid()
    labels = tiny_labels(space)
    path = tmp_path / "labels.csv"
    frame = pd.DataFrame([{"space": space.name, "spec": s, "seed": seed, "val_accuracy": v + seed}
                          for s, v in labels.items() for seed in (0, 1)])
    frame.to_csv(path, index=False)
    oracle = make_estimator(f"oracle:{path}", space)
    spec = space.all()[5]
    assert oracle.score([spec])[0] == pytest.approx(labels[spec] + 0.5)  # the seed mean


# -- CLI -----------------------------------------------------------------------------------------------------------
def test_cli_search_round_trip(tmp_path, capsys):
    out = tmp_path / "cli"
    assert main(["search", "nb201", "--estimator", "params", "--generations", "2", "--population", "4",
                 "--out", str(out), "--seed", "1"]) == 0
    captured = capsys.readouterr()
    assert captured.out.splitlines()[0] == "spec,accuracy,flops,params"
    assert "hypervolume" in captured.err
    loaded = SearchResult.load(out)
    assert loaded.meta["estimator"] == "params" and loaded.meta["seed"] == 1
    assert len(captured.out.splitlines()) == 1 + len(loaded.front)
    assert main(["search", "nb201", "--estimator", "nope", "--generations", "2", "--population", "4",
                 "--out", str(out)]) == 2
    assert "unknown estimator" in capsys.readouterr().err


# -- the registered estimators -------------------------------------------------------------------------------------
PILOT = Path(__file__).resolve().parents[1] / "results" / "zoo" / "pilot-4ep.sqlite"


def test_gennape_estimator_predicts_accuracies():
    from nape_utils.predictors.pretrained import available

    if not available():
        pytest.skip("no shipped GENNAPE model")
    est = make_estimator("gennape", "nb201")
    scores = est.score(get_space("nb201").sample_many(2, seed=5))
    assert est.name.startswith("gennape:") and est.bounds == (100.0, 0.0) and np.isfinite(scores).all()


def test_graf_rf_and_oracle_read_the_zoo_store():
    if not PILOT.is_file():
        pytest.skip("no pilot zoo store")
    graf = make_estimator(f"graf_rf:{PILOT}", "nb201")
    oracle = make_estimator(f"oracle:{PILOT}", "nb201")
    known = list(oracle.labels)[:3]
    assert graf.n_train == len(oracle.labels) and np.isfinite(graf.score(known)).all()
    assert oracle.bounds == (max(oracle.labels.values()), min(oracle.labels.values()))


def test_rwe_is_resolved_when_used():
    try:
        from nape_utils.predictors import rwe  # noqa: F401
    except ImportError:
        with pytest.raises(ValueError, match="needs nape_utils.predictors.rwe"):
            make_estimator("rwe", "nb201")
    else:
        assert np.isfinite(make_estimator("rwe", "nb201").score(get_space("nb201").sample_many(1))).all()


def test_proxy_estimator_scores_a_spec_alike_in_every_run():
    specs = get_space("nb201").sample_many(2, seed=7)
    first = make_estimator("synflow", "nb201").score(specs)
    again = make_estimator("synflow", "nb201").score(specs[::-1])[::-1]
    assert np.isfinite(first).all() and first.tolist() == again.tolist()
    assert make_estimator("synflow", "nb201").log_scale


def _fake_rwe_module(monkeypatch, **members):
    """Install a stand-in nape_utils.predictors.rwe holding ``members``."""
    import sys
    import types

    import nape_utils.predictors as predictors

    fake = types.ModuleType("nape_utils.predictors.rwe")
    for name, value in members.items():
        setattr(fake, name, value)
    monkeypatch.setitem(sys.modules, "nape_utils.predictors.rwe", fake)
    monkeypatch.setattr(predictors, "rwe", fake, raising=False)


def test_rwe_estimator_scores_by_the_accuracy_column_not_the_timing(monkeypatch):
    built = []

    class FakeRWE:
        def __init__(self, n_train=1000, seed=0, profile="zoo"):
            built.append({"seed": seed, "profile": profile, "n_train": n_train})

        def score_specs(self, space, specs, progress=True):
            assert progress is False  # the search asks for no progress bar
            scores = crc_score(specs)
            return pd.DataFrame({"spec": specs, "rwe_accuracy": scores, "seconds": 1000 + scores})

    _fake_rwe_module(monkeypatch, RWE=FakeRWE)
    specs = get_space("nb201").sample_many(3, seed=2)
    est = make_estimator("rwe", "nb201", seed=4, n_train=200)
    assert est.score(specs).tolist() == crc_score(specs).tolist()  # the accuracy, not the seconds column
    est.score(get_space("nb201").sample_many(2, seed=9))
    assert built == [{"seed": 4, "profile": "zoo", "n_train": 200}]  # one model for every call

    def score_specs(space, specs, seed=0):
        return pd.DataFrame({"spec": specs, "seconds": np.ones(len(specs)), "rwe": crc_score(specs)})

    _fake_rwe_module(monkeypatch, score_specs=score_specs)
    assert make_estimator("rwe", "nb201").score(specs).tolist() == crc_score(specs).tolist()
    _fake_rwe_module(monkeypatch)
    with pytest.raises(ValueError, match="neither an RWE class"):
        make_estimator("rwe", "nb201")


def test_verify_true_hypervolume_counts_archs_costlier_than_the_search_bounds():
    space = TinyGrid()
    labels = tiny_labels(space)
    # FLOPs bounds far below every network's FLOPs: each trained arch lies beyond the search's worst bound
    result = search(space, "oracle", generations=2, population=4, seed=0, estimator_options={"labels": labels},
                    bounds={"accuracy": (100, 0), "flops": (0, 10)})

    def trainer(sp, spec, seed, config):
        return {"test_accuracy": labels[spec], "val_accuracy": labels[spec]}

    check = verify(result, trainer=trainer, reference=space.format((1, 1)))
    assert (check.summary["hv_true"] > 0).all(), check.summary
    low, high = check.summary.attrs["flops_bounds"]
    assert low == 0 and high == check.table["flops"].max()
