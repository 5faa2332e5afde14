"""GRAF features (hand-drawn cells against hand-computed values, the vectorised NB-201 path against a
per-cell reference, brute-force path checks for NB-101 and NB-301, the generic CG version), the
regressors' input checks, the CLI, and Kendall τ on the real NB-201 development slice."""
from __future__ import annotations

import itertools
import json

import networkx as nx
import numpy as np
import pandas as pd
import pytest

from nape_utils import cli
from nape_utils.graphs import ComputationGraph, FEATURES, OP_ID, OPS, graph_of
from nape_utils.predictors import graf
from nape_utils.predictors.graf import GRAFRegressor, feature_names, graf_features
from nape_utils.spaces import get_space

NB201 = get_space("nb201")
CONV3, CONV1, SKIP, NONE, POOL = "nor_conv_3x3", "nor_conv_1x1", "skip_connect", "none", "avg_pool_3x3"


def _nb201(*ops: str) -> dict[str, float]:
    """The features of one cell given its 6 ops in arch-string order (0→1, 0→2, 1→2, 0→3, 1→3, 2→3)."""
    row = graf_features("nb201", [NB201.format(ops)]).iloc[0]
    return {k: float(v) for k, v in row.items()}


def _with(op: str) -> list[tuple[str, ...]]:
    return [s for s in graf.subsets(graf.NB201_OPS) if op in s]


# -- feature sets ---------------------------------------------------------------------------------
def test_feature_counts_and_names():
    assert len(feature_names("nb201")) == 191 == 5 + 31 + 31 + 124
    assert len(feature_names("nb101")) == 47 == 5 + 7 + 7 + 28
    assert len(feature_names("nb301")) == 2 * 8 + 127 * 2 * 2 + 127 * 2 * 4
    assert len(feature_names(None)) == len(OPS) + len(graf.OP_GROUPS) + 127 * 6
    for space in ("nb201", "nb101", "nb301", None):
        assert len(set(feature_names(space))) == len(feature_names(space))
    names = feature_names("nb201")
    assert names[:5] == [f"op_count[{op}]" for op in graf.NB201_OPS]
    assert "min_path_len[skip_connect,none,nor_conv_3x3,nor_conv_1x1,avg_pool_3x3]" in names
    assert names[-4:] == [f"{d}[skip_connect,none,nor_conv_3x3,nor_conv_1x1,avg_pool_3x3]" for d in graf.DEGREES]
    # every vocabulary op but input/output belongs to exactly one generic group
    grouped = [op for ops in graf.OP_GROUPS.values() for op in ops]
    assert sorted(grouped) == sorted(op for op in OPS if op not in ("input", "output"))


# -- hand-drawn NB-201 cells ----------------------------------------------------------------------
@pytest.mark.parametrize("op", [SKIP, NONE])
def test_nb201_uniform_cell(op):
    f = _nb201(*[op] * 6)
    assert f[f"op_count[{op}]"] == 6 and sum(f[f"op_count[{o}]"] for o in graf.NB201_OPS) == 6
    for s in graf.subsets(graf.NB201_OPS):
        t = ",".join(s)
        if op in s:  # every edge usable: shortest 0→3, longest 0→1→2→3, degrees 3, 3 and 6/4
            expect = (1, 3, 3, 3, 1.5, 1.5)
        else:        # nothing usable: GRAF's no-path values
            expect = (graf.NB201_NO_PATH, 0, 0, 0, 0, 0)
        got = (f[f"min_path_len[{t}]"], f[f"max_op_on_path[{t}]"], *(f[f"{d}[{t}]"] for d in graf.DEGREES))
        assert got == expect, t


def test_nb201_single_chain():
    # 0→1 conv3x3, 1→2 conv1x1, 2→3 conv3x3; 0→2, 0→3, 1→3 none
    f = _nb201(CONV3, NONE, CONV1, NONE, NONE, CONV3)
    assert [f[f"op_count[{o}]"] for o in graf.NB201_OPS] == [0, 3, 2, 1, 0]
    cases = {
        (CONV3, CONV1): (3, 3, 1, 1, 0.75, 0.75),   # the chain only
        (CONV3,): (6, 0, 1, 1, 0.5, 0.5),           # the chain is broken at 1→2
        (NONE,): (1, 1, 2, 2, 0.75, 0.75),          # 0→3 directly; 0→2 and 1→3 lead nowhere
        (NONE, CONV3): (1, 2, 3, 3, 1.25, 1.25),    # also 0→1→3 and 0→2→3
        (NONE, CONV3, CONV1): (1, 3, 3, 3, 1.5, 1.5),
        (SKIP, POOL): (6, 0, 0, 0, 0, 0),
    }
    order = {op: i for i, op in enumerate(graf.NB201_OPS)}
    for s, expect in cases.items():
        t = ",".join(sorted(s, key=order.get))
        got = (f[f"min_path_len[{t}]"], f[f"max_op_on_path[{t}]"], *(f[f"{d}[{t}]"] for d in graf.DEGREES))
        assert got == expect, t


def test_nb201_vectorised_equals_reference():
    rng = np.random.default_rng(0)
    specs = NB201.sample_many(200, seed=3)
    specs[0] = NB201.format((SKIP,) * 6)
    table = graf_features("nb201", specs)
    for i in rng.permutation(200):
        ref = graf.nb201_features_reference(specs[i])
        assert list(ref) == list(table.columns)
        np.testing.assert_array_equal(np.array(list(ref.values())), table.iloc[i].to_numpy(float), err_msg=specs[i])


def test_nb201_accepts_naslib_tuples_and_all_cells():
    arch = "|avg_pool_3x3~0|+|skip_connect~0|none~1|+|nor_conv_1x1~0|avg_pool_3x3~1|nor_conv_1x1~2|"
    a = graf_features("nb201", ["(4, 0, 3, 1, 4, 3)"])
    b = graf_features("nb201", [arch])
    pd.testing.assert_frame_equal(a, b)
    ids = np.array(list(itertools.product(range(5), repeat=6)))
    values = graf.nb201_features_from_ids(ids)
    assert values.shape == (15625, 191) and np.isfinite(values).all()
    assert len(np.unique(values, axis=0)) > 1000
    with pytest.raises(ValueError, match="architecture 2"):
        graf_features("nb201", [arch, "|bogus~0|"])


# -- NB-101 ---------------------------------------------------------------------------------------
NB101_CELL = json.dumps({"matrix": [[0, 1, 1, 0], [0, 0, 1, 1], [0, 0, 0, 1], [0, 0, 0, 0]],
                         "ops": ["input", "conv3x3-bn-relu", "maxpool3x3", "output"]})


def test_nb101_hand_cell():
    # input→conv3→output, input→maxpool→output, conv3→maxpool
    f = {k: float(v) for k, v in graf_features("nb101", [NB101_CELL]).iloc[0].items()}
    assert [f[f"op_count[{o}]"] for o in graf.NB101_OPS] == [1, 1, 1, 0, 1]
    mp, c1, c3 = graf.NB101_CELL_OPS
    cases = {  # min_path_len, max_op_on_path, input_out, output_in, mean_in, mean_out
        (mp,): (2, 1, 1, 1, 0.25, 0.5),
        (c1,): (4, -1, 0, 0, 0, 0),          # no path: number of nodes, -1
        (c3,): (2, 1, 1, 1, 0.5, 0.25),
        (mp, c3): (2, 2, 2, 2, 0.75, 0.75),
        (mp, c1, c3): (2, 2, 2, 2, 0.75, 0.75),
    }
    for s, expect in cases.items():
        t = ",".join(s)
        got = (f[f"min_path_len[{t}]"], f[f"max_op_on_path[{t}]"], *(f[f"{d}[{t}]"] for d in graf.DEGREES))
        assert got == expect, t


def _opnode_brute(matrix, ops, allowed):
    """min path, max ops on path, degrees by enumerating paths (NB-101 definitions)."""
    n = len(ops)
    g = nx.DiGraph([tuple(e) for e in np.argwhere(np.asarray(matrix) == 1)])
    ok = [(ops[v] in allowed) or v in (0, n - 1) for v in range(n)]
    paths = [p for p in nx.all_simple_paths(g, 0, n - 1) if all(ok[v] for v in p)]
    edges = list(g.edges)
    return (min((len(p) - 1 for p in paths), default=n), max((len(p) - 2 for p in paths), default=-1),
            sum(ops[d] in allowed for s, d in edges if s == 0), sum(ops[s] in allowed for s, d in edges if d == n - 1),
            sum(ops[s] in allowed for s, d in edges) / n, sum(ops[d] in allowed for s, d in edges) / n)


def test_nb101_against_brute_force():
    space = get_space("nb101")
    specs = space.sample_many(15, seed=4)
    table = graf_features("nb101", specs)
    for spec, (_, row) in zip(specs, table.iterrows()):
        matrix, ops = space.parse(spec)
        for s in graf.subsets(graf.NB101_CELL_OPS):
            t = ",".join(s)
            got = (row[f"min_path_len[{t}]"], row[f"max_op_on_path[{t}]"], *(row[f"{d}[{t}]"] for d in graf.DEGREES))
            assert got == pytest.approx(_opnode_brute(matrix, ops, s)), (spec, t)


# -- NB-301 ---------------------------------------------------------------------------------------
def test_nb301_darts_v2_normal_cell():
    from nape_utils.spaces.nb301 import DARTS_V2

    f = {k: float(v) for k, v in graf_features("nb301", [DARTS_V2]).iloc[0].items()}
    assert [f[f"normal.op_count[{o}]"] for o in graf.NB301_OPS] == [4, 0, 0, 2, 5, 0, 1, 0]
    cases = {  # max_op_on_path from in0, from in1, in0/in1 out-degree, mean degree (7 nodes)
        ("sep_conv_3x3",): (1, 1, 2, 3, 5 / 7),
        ("skip_connect",): (1, 0, 2, 0, 2 / 7),
        ("sep_conv_3x3", "dil_conv_3x3"): (2, 2, 2, 3, 6 / 7),
        ("max_pool_3x3",): (0, 0, 0, 0, 0),
        graf.NB301_CELL_OPS: (2, 2, 4, 3, 8 / 7),
    }
    for s, (p0, p1, d0, d1, mean) in cases.items():
        t = ",".join(s)
        assert f[f"normal.max_op_on_path_in0[{t}]"] == p0 and f[f"normal.max_op_on_path_in1[{t}]"] == p1, t
        assert f[f"normal.in0_out_degree[{t}]"] == d0 and f[f"normal.in1_out_degree[{t}]"] == d1, t
        assert f[f"normal.mean_in_degree[{t}]"] == pytest.approx(mean) == f[f"normal.mean_out_degree[{t}]"], t


def test_nb301_paths_against_brute_force():
    space = get_space("nb301")
    specs = space.sample_many(3, seed=5)
    table = graf_features("nb301", specs)
    for spec, (_, row) in zip(specs, table.iterrows()):
        g = space.parse(spec)
        for cell in ("normal", "reduce"):
            edges, kinds = graf._darts_cell(g.cell(cell), getattr(g, f"{cell}_concat"))
            ops = [graf.NB301_OPS[k] for k in kinds]
            dg = nx.MultiDiGraph()
            for (s, d), op in zip(edges.tolist(), ops):
                dg.add_edge(s, d, op=op)
            for s in graf.subsets(graf.NB301_CELL_OPS)[::7]:
                for source in (0, 1):
                    best = 0
                    for path in nx.all_simple_edge_paths(dg, source, 6):
                        if all(dg.edges[e]["op"] in s or dg.edges[e]["op"] == "out" for e in path):
                            best = max(best, len(path) - 1)
                    assert row[f"{cell}.max_op_on_path_in{source}[{','.join(s)}]"] == best


# -- generic GRAF over computation graphs ---------------------------------------------------------
def test_generic_hand_graph():
    # input → conv → relu → add → output, plus input → add
    ops = ["input", "conv", "relu", "add", "output"]
    edges = [(0, 1), (1, 2), (2, 3), (0, 3), (3, 4)]
    cg = ComputationGraph([OP_ID[o] for o in ops], np.zeros((5, len(FEATURES))), edges)
    f = dict(zip(feature_names(None), graf.cg_features(cg)))
    assert f["op_count[conv]"] == 1 and f["group_count[merge]"] == 1 and f["group_count[act]"] == 1
    assert (f["min_path_len[merge]"], f["max_op_on_path[merge]"]) == (2, 1)
    assert (f["min_path_len[conv]"], f["max_op_on_path[conv]"]) == (5, -1)
    assert (f["min_path_len[conv,act,merge]"], f["max_op_on_path[conv,act,merge]"]) == (2, 3)
    assert [f[f"{d}[conv]"] for d in graf.DEGREES] == [1, 0, 0.2, 0.2]
    assert [f[f"{d}[merge]"] for d in graf.DEGREES] == [1, 1, 0.2, 0.4]
    with pytest.raises(ValueError, match="exactly one output"):
        graf.cg_features(ComputationGraph([OP_ID["input"], OP_ID["relu"]], np.zeros((2, len(FEATURES))), [(0, 1)]))


@pytest.mark.parametrize("space", ["nb201", "nb101", "nb301"])
def test_generic_on_a_graph_of_each_space(space):
    spec = get_space(space).sample_many(1, seed=2)[0]
    values = graf.cg_features(graph_of(space, spec, "zoo"))
    table = graf_features(space, [spec], profile="zoo", generic=True)
    assert table.shape == (1, len(feature_names(None)))
    np.testing.assert_array_equal(table.iloc[0].to_numpy(float), values)
    f = dict(zip(feature_names(None), values))
    everything = ",".join(graf.OP_GROUPS)
    assert 1 <= f[f"min_path_len[{everything}]"] <= f[f"max_op_on_path[{everything}]"] + 1
    assert f[f"min_path_len[{everything}]"] < sum(f[f"op_count[{op}]"] for op in OPS)


# -- regressors -----------------------------------------------------------------------------------
def test_regressor_fits_specs_and_extra_columns():
    specs = NB201.sample_many(60, seed=7)
    table = graf_features("nb201", specs)
    y = table["max_op_on_path[nor_conv_3x3,nor_conv_1x1]"].to_numpy() + 0.1 * table["op_count[nor_conv_3x3]"].to_numpy()
    for model in ("rf", "gb"):
        a = GRAFRegressor("nb201", model, seed=1, n_estimators=30).fit(specs[:40], y[:40])
        b = GRAFRegressor("nb201", model, seed=1, n_estimators=30).fit(table.iloc[:40], y[:40])
        np.testing.assert_allclose(a.predict(specs[40:]), b.predict(table.iloc[40:]))
        assert np.corrcoef(a.predict(specs[40:]), y[40:])[0, 1] > 0.7
    extra = pd.DataFrame({"flops": np.arange(60.0), "proxy": np.r_[np.full(5, np.nan), np.ones(55)]})
    m = GRAFRegressor("nb201", "rf", n_estimators=30).fit(specs[:40], y[:40], extra=extra.iloc[:40])
    assert m.feature_names_[-2:] == ["flops", "proxy"] and len(m.predict(specs[40:], extra=extra.iloc[40:])) == 20
    assert m.feature_importances().index[0] in m.feature_names_


def test_regressor_bad_inputs():
    specs = NB201.sample_many(10, seed=8)
    y = np.arange(10.0)
    with pytest.raises(ValueError, match="NaN"):
        GRAFRegressor("nb201").fit(specs, np.r_[y[:9], np.nan])
    with pytest.raises(ValueError, match="no architectures"):
        GRAFRegressor("nb201").fit([], [])
    with pytest.raises(ValueError, match="10 architectures but 9 labels"):
        GRAFRegressor("nb201").fit(specs, y[:9])
    with pytest.raises(ValueError, match="extra has 3 rows"):
        GRAFRegressor("nb201").fit(specs, y, extra=np.ones((3, 1)))
    with pytest.raises(ValueError, match="space="):
        GRAFRegressor().fit(specs, y)
    with pytest.raises(ValueError, match="unknown GRAF model"):
        GRAFRegressor("nb201", "svm")
    with pytest.raises(ValueError, match="does not accept NaN"):
        GRAFRegressor("nb201", "gb").fit(specs, y, extra=np.r_[np.nan, np.ones(9)])
    with pytest.raises(ValueError, match="inf"):
        GRAFRegressor("nb201").fit(specs, y, extra=np.r_[np.inf, np.ones(9)])
    with pytest.raises(RuntimeError, match="not fitted"):
        GRAFRegressor("nb201").predict(specs)
    fitted = GRAFRegressor("nb201").fit(specs, y)
    with pytest.raises(ValueError, match="extra columns"):
        fitted.predict(specs, extra=np.ones(10))
    with pytest.raises(ValueError, match="architecture 1"):
        fitted.predict(["|nope~0|"])


def test_regressor_save_load(tmp_path):
    specs = NB201.sample_many(20, seed=9)
    m = GRAFRegressor("nb201", seed=3).fit(specs, np.arange(20.0))
    loaded = GRAFRegressor.load(m.save(tmp_path / "graf.pkl"))
    np.testing.assert_array_equal(loaded.predict(specs), m.predict(specs))


# -- CLI ------------------------------------------------------------------------------------------
def test_cli_graf_and_bench(tmp_path, capsys):
    archs = tmp_path / "archs.txt"
    archs.write_text("(4, 0, 3, 1, 4, 3)\n" + NB201.format((SKIP,) * 6) + "\n")
    out = tmp_path / "graf.csv"
    assert cli.main(["graf", "nb201", "--archs", str(archs), "--out", str(out)]) == 0
    table = pd.read_csv(out)
    assert list(table.columns) == ["spec", *feature_names("nb201")] and len(table) == 2
    assert table["spec"][0] == NB201.canonical("(4, 0, 3, 1, 4, 3)")
    archs.write_text("|nope~0|\n")
    assert cli.main(["graf", "nb201", "--archs", str(archs), "--out", str(out)]) == 2
    assert "architecture 1" in capsys.readouterr().err
    report = tmp_path / "bench.json"
    assert cli.main(["bench", "graf", "-n", "3", "--out", str(report)]) == 0
    rows = {r["space"]: r for r in json.loads(report.read_text())["results"]}
    assert rows["nb201"]["n"] == 15625 and rows["nb201"]["features"] == 191 and rows["nb301"]["n"] == 3


# -- the published number -------------------------------------------------------------------------
def test_kendall_tau_on_nb201_dev_slice(shared_data):
    """GRAF + random forest, 128 random valid cells for training, the other valid cells for testing,
    10 seeds: the GRAF paper's protocol (valid cells, CIFAR-10 validation accuracy) gives τ ≈ 0.74."""
    from nape_utils.metrics import kendall_tau

    frame = pd.read_csv(shared_data / "nb201" / "nb201_dev_subset.csv")
    valid = np.array([not NB201.flags(s)["dead_ops"] for s in frame["arch_str"]])
    frame = frame[valid].reset_index(drop=True)
    features = graf_features("nb201", frame["arch_str"].tolist())
    y = frame["cifar10_val_acc"].to_numpy()
    taus = []
    for seed in range(10):
        order = np.random.default_rng(seed).permutation(len(frame))
        train, test = order[:128], order[128:]
        model = GRAFRegressor(model="rf", seed=seed).fit(features.iloc[train], y[train])
        taus.append(kendall_tau(y[test], model.predict(features.iloc[test])))
    assert abs(np.mean(taus) - 0.74) < 0.05, (np.mean(taus), np.std(taus))
