"""NB-101 space: spec strings, validity, search operators and the exact paper network."""
from __future__ import annotations

import json
import operator
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.fx
from hypothesis import given, settings
from hypothesis import strategies as st

from nape_utils.spaces import get_space
from nape_utils.spaces.nb101 import NB101Space, compute_vertex_channels

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
SPACE = NB101Space()

# input → conv3x3 → conv1x1 → output, plus input → output
CHAIN = '{"matrix":[[0,1,0,1],[0,0,1,0],[0,0,0,1],[0,0,0,0]],"ops":["input","conv3x3-bn-relu","conv1x1-bn-relu","output"]}'


def _n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _spec(matrix, ops) -> str:
    return json.dumps({"matrix": matrix, "ops": ops})


def _data(name: str) -> Path:
    path = DATA / "nb101" / name
    if not path.exists():
        pytest.skip(f"{path} not available")
    return path


@pytest.fixture(scope="module")
def naslib_keys() -> list[str]:
    with open(_data("zc_nasbench101.json")) as f:
        return list(json.load(f)["nasbench101"]["cifar10"].items())


def test_registry_and_profiles():
    space = get_space("nb101")
    assert isinstance(space, NB101Space) and space.name == "nb101"
    paper, zoo = space.profile("paper"), space.profile("zoo")
    assert paper.input_shape == (3, 32, 32) and paper.num_classes == 10
    assert (paper["stem_channels"], paper["num_stacks"], paper["cells_per_stack"]) == (128, 3, 3)
    assert (zoo["stem_channels"], zoo["num_stacks"], zoo["cells_per_stack"]) == (8, 3, 1)


# -- exactness against the official records ------------------------------------------------------
def test_paper_parameters_match_nasbench_records():
    with open(_data("nb101_dummy.pkl"), "rb") as f:
        records = pickle.load(f)
    assert len(records) == 30
    for fixed, _ in records.values():
        spec = _spec(np.asarray(fixed["module_adjacency"]).tolist(), list(fixed["module_operations"]))
        assert _n_params(SPACE.build(spec, "paper")) == fixed["trainable_parameters"], spec


def test_paper_parameters_match_naslib_params(naslib_keys):
    for key, record in naslib_keys[:15]:
        assert _n_params(SPACE.build(key, "paper")) == round(record["params"] * 1e6), key


# -- spec strings ------------------------------------------------------------------------------------
def test_naslib_keys_parse_and_round_trip(naslib_keys):
    assert len(naslib_keys) == 500
    params: dict[str, set[float]] = {}
    for key, record in naslib_keys:
        c = SPACE.canonical(key)
        assert SPACE.format(SPACE.parse(c)) == c
        assert SPACE.canonical(c) == c
        params.setdefault(c, set()).add(record["params"])
    # the keys are raw 7-vertex cells: several prune to the same cell (55 of them to input→output
    # alone), and cells that prune alike have the same network
    assert len(params) == 301
    assert all(len(p) == 1 for p in params.values())
    assert params['{"matrix":[[0,1],[0,0]],"ops":["input","output"]}'] == {0.88257}


def test_naslib_tuple_maps_op_ids():
    # 3 vertices: input → conv1x1 → output; ids 0=input 3=conv1x1 1=output
    matrix, ops = SPACE.parse("(0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 3, 1)")
    assert matrix.tolist() == [[0, 1, 0], [0, 0, 1], [0, 0, 0]]
    assert ops == ("input", "conv1x1-bn-relu", "output")


def test_canonical_is_compact_json_and_whitespace_is_accepted():
    spaced = json.dumps(json.loads(CHAIN), indent=2)
    assert SPACE.canonical(spaced) == CHAIN
    assert " " not in SPACE.canonical(spaced)


def test_pruning_removes_dangling_vertices():
    # vertex 2 (maxpool) has no path to the output, vertex 3 no path from the input
    spec = _spec([[0, 1, 1, 0, 0], [0, 0, 0, 0, 1], [0, 0, 0, 0, 0], [0, 0, 0, 0, 1], [0, 0, 0, 0, 0]],
                 ["input", "conv3x3-bn-relu", "maxpool3x3", "conv1x1-bn-relu", "output"])
    matrix, ops = SPACE.parse(spec)
    assert matrix.tolist() == [[0, 1, 0], [0, 0, 1], [0, 0, 0]]
    assert ops == ("input", "conv3x3-bn-relu", "output")


BAD = [
    ('{"matrix": [[0,1],[0,0]], "ops": ["input", "output"', "malformed JSON"),
    ("(0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 9, 1)", "unknown NASLib op ids"),
    ("(0, 1, 0, oops)", "malformed NASLib tuple"),
    ("conv3x3", "cannot read spec"),
    ('{"matrix": [[0,1],[0,0]]}', "exactly the keys"),
    (_spec([[0, 1, 0], [0, 0, 1], [0, 0, 0]], ["input", "conv5x5-bn-relu", "output"]),
     "unknown interior op.*allowed ops: conv3x3-bn-relu, conv1x1-bn-relu, maxpool3x3"),
    (_spec([[0, 1, 0], [0, 0, 1], [0, 0, 0]], ["output", "conv3x3-bn-relu", "input"]), "first op must be 'input'"),
    (_spec([[0, 1, 0], [0, 0, 1], [0, 0, 0]], ["input", "output"]), "one op per vertex"),
    (_spec([[0, 1, 0], [0, 0, 1]], ["input", "conv3x3-bn-relu", "output"]), "must be square"),
    (_spec([[0, 2], [0, 0]], ["input", "output"]), "0 or 1"),
    (_spec([[0, 1, 0], [0, 0, 1], [0, 1, 0]], ["input", "conv3x3-bn-relu", "output"]),
     "strictly upper triangular"),
    (_spec(np.eye(8, k=1, dtype=int).tolist(), ["input"] + ["conv3x3-bn-relu"] * 6 + ["output"]),
     "at most 7 vertices"),
    # a 7-vertex chain (6 edges) plus 4 skips: 10 edges, all on input→output paths
    (_spec([[0, 1, 1, 0, 0, 0, 0],
            [0, 0, 1, 1, 0, 0, 0],
            [0, 0, 0, 1, 1, 0, 0],
            [0, 0, 0, 0, 1, 1, 0],
            [0, 0, 0, 0, 0, 1, 0],
            [0, 0, 0, 0, 0, 0, 1],
            [0, 0, 0, 0, 0, 0, 0]], ["input"] + ["conv3x3-bn-relu"] * 5 + ["output"]), "at most 9 edges"),
    (_spec([[0, 1, 0, 0], [0, 0, 0, 0], [0, 0, 0, 1], [0, 0, 0, 0]],
           ["input", "conv3x3-bn-relu", "conv3x3-bn-relu", "output"]), "disconnected"),
]


@pytest.mark.parametrize("text,rule", BAD)
def test_bad_specs_name_the_rule(text, rule):
    with pytest.raises(ValueError, match=rule):
        SPACE.parse(text)
    assert not SPACE.is_valid(text)


def test_ten_edge_case_really_has_ten_edges():
    matrix = json.loads(BAD[-2][0])["matrix"]
    assert int(np.sum(matrix)) == 10


# -- search -------------------------------------------------------------------------------------------
def test_sample_is_valid_canonical_and_seeded():
    specs = SPACE.sample_many(50, seed=3)
    assert specs == SPACE.sample_many(50, seed=3)
    assert specs != SPACE.sample_many(50, seed=4)
    for s in specs:
        assert SPACE.canonical(s) == s
        matrix, ops = SPACE.parse(s)
        assert matrix.shape[0] <= 7 and matrix.sum() <= 9
    assert len(set(specs)) > 40


def test_mutate_gives_a_valid_different_spec():
    rng = np.random.default_rng(0)
    for parent in SPACE.sample_many(20, seed=1) + [CHAIN, '{"matrix":[[0,1],[0,0]],"ops":["input","output"]}']:
        child = SPACE.mutate(parent, rng)
        assert child != SPACE.canonical(parent)
        assert SPACE.canonical(child) == child


def test_mutate_accepts_alternative_forms():
    child = SPACE.mutate(json.dumps(json.loads(CHAIN), indent=1), np.random.default_rng(5))
    assert child != CHAIN and SPACE.is_valid(child)


@settings(max_examples=40, deadline=None)
@given(st.integers(min_value=0, max_value=2**32 - 1))
def test_format_parse_round_trip(seed):
    s = SPACE.sample(np.random.default_rng(seed))
    m1, o1 = SPACE.parse(s)
    m2, o2 = SPACE.parse(SPACE.format(SPACE.parse(s)))
    assert np.array_equal(m1, m2) and o1 == o2
    assert SPACE.format((m1, o1)) == s


# -- networks -------------------------------------------------------------------------------------------
def test_vertex_channels_split_and_propagate():
    # vertices 2, 3, 4 feed the output: 128 = 43 + 43 + 42; vertex 1 feeds only vertex 3, so it
    # takes vertex 3's channels
    matrix = np.zeros((6, 6), int)
    matrix[0, [1, 2, 4]] = 1
    matrix[1, 3] = 1
    matrix[[2, 3, 4], 5] = 1
    assert compute_vertex_channels(64, 128, matrix) == [64, 43, 43, 43, 42, 128]


def test_paper_forward_shape_and_fx_trace():
    # vertices 2, 3, 4 feed the output, vertex 1 feeds 3 and 4 (so takes vertex 3's channels and is
    # truncated on its edge to 4); the input feeds 1, 2, 4 and the output through projections
    matrix = np.zeros((6, 6), int)
    matrix[0, [1, 2, 4, 5]] = 1
    matrix[1, [3, 4]] = 1
    matrix[[2, 3, 4], 5] = 1
    spec = _spec(matrix.tolist(), ["input", "conv3x3-bn-relu", "maxpool3x3", "conv1x1-bn-relu",
                                   "conv3x3-bn-relu", "output"])
    model = SPACE.build(spec, "paper").eval()
    x = torch.randn(2, 3, 32, 32)
    out = model(x)
    assert out.shape == (2, 10)
    traced = torch.fx.symbolic_trace(model)
    assert torch.allclose(traced(x), out)
    calls = [n.target for n in traced.graph.nodes if n.op == "call_function"]
    assert calls.count(torch.cat) == 9                     # one concat per cell
    # truncation 43→42 at 128 channels and 171→170 at 512; at 256 vertices 3 and 4 both get 85
    assert calls.count(operator.getitem) == 6
    assert calls.count(operator.add) == 9 * 2              # vertex 4 sums two inputs; output adds input
    assert sum not in calls


def test_zoo_forward_and_trace_on_sampled_cells():
    x = torch.randn(2, *SPACE.profile("zoo").input_shape)
    for spec in SPACE.sample_many(3, seed=7):
        model = SPACE.build(spec, "zoo").eval()
        out = model(x)
        assert out.shape == (2, 10)
        assert torch.allclose(torch.fx.symbolic_trace(model)(x), out)


def test_input_only_cell_is_a_projection():
    spec = '{"matrix":[[0,1],[0,0]],"ops":["input","output"]}'
    model = SPACE.build(spec, "paper")
    # stem 3x3 conv + BN, 9 cells of one 1x1 projection + BN, linear 512→10
    stem = 3 * 128 * 9 + 2 * 128
    cells = sum(ci * co + 2 * co for ci, co in [(128, 128)] * 3 + [(128, 256)] + [(256, 256)] * 2
                + [(256, 512)] + [(512, 512)] * 2)
    assert _n_params(model) == stem + cells + 512 * 10 + 10
    assert model(torch.randn(1, 3, 32, 32)).shape == (1, 10)


def test_build_rejects_unknown_profile():
    with pytest.raises(ValueError, match="unknown profile"):
        SPACE.build(CHAIN, "huge")
