"""NB-301 / DARTS space: spec strings, validity, sampling, mutation and the evaluation network."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.fx
import torch.nn as nn
from hypothesis import given, settings
from hypothesis import strategies as st

from nape_utils.spaces import get_space
from nape_utils.spaces.nb301 import (
    COMPACT_OPS,
    DARTS_CIFAR10_PROFILE,
    DARTS_V2,
    FactorizedReduce,
    NB301Space,
    to_compact,
)

SPACE = get_space("nb301")

# DARTS-V2 in the canonical form: every node's two pairs sorted by input.
V2_CANONICAL = (
    '{"normal":[["sep_conv_3x3",0],["sep_conv_3x3",1],["sep_conv_3x3",0],["sep_conv_3x3",1],'
    '["skip_connect",0],["sep_conv_3x3",1],["skip_connect",0],["dil_conv_3x3",2]],'
    '"normal_concat":[2,3,4,5],'
    '"reduce":[["max_pool_3x3",0],["max_pool_3x3",1],["max_pool_3x3",1],["skip_connect",2],'
    '["max_pool_3x3",0],["skip_connect",2],["max_pool_3x3",1],["skip_connect",2]],'
    '"reduce_concat":[2,3,4,5]}'
)
# DARTS-V2 as NASLib writes the keys of zc_nasbench301.json: (input, op_id), DARTS' pair order.
V2_NASLIB = ("[[(0, 3), (1, 3), (0, 3), (1, 3), (1, 3), (0, 2), (0, 2), (2, 5)], "
             "[(0, 0), (1, 0), (2, 2), (1, 0), (0, 0), (2, 2), (2, 2), (1, 0)]]")
# DARTS-V2 as DARTS' genotypes.py defines it (lists for concat, Python-2 style print).
V2_LIST_REPR = DARTS_V2.replace("range(2, 6)", "[2, 3, 4, 5]")


def _v2_json(**overrides) -> dict:
    obj = json.loads(V2_CANONICAL)
    obj.update(overrides)
    return obj


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


# -- spec strings ------------------------------------------------------------------------------------
def test_registry_and_name():
    assert isinstance(SPACE, NB301Space)
    assert SPACE.name == "nb301"
    assert set(SPACE.profiles) == {"paper", "zoo"}


def test_canonical_round_trip():
    assert SPACE.format(SPACE.parse(V2_CANONICAL)) == V2_CANONICAL
    assert SPACE.canonical(V2_CANONICAL) == V2_CANONICAL


@pytest.mark.parametrize("alt", [DARTS_V2, V2_LIST_REPR, V2_NASLIB, V2_NASLIB.replace("[", "(").replace("]", ")"),
                                 json.dumps(_v2_json())])
def test_alternative_forms_give_the_canonical_string(alt):
    assert SPACE.canonical(alt) == V2_CANONICAL


def test_pair_order_within_a_node_does_not_matter():
    obj = _v2_json()
    obj["normal"][0], obj["normal"][1] = obj["normal"][1], obj["normal"][0]
    obj["reduce"][6], obj["reduce"][7] = obj["reduce"][7], obj["reduce"][6]
    assert SPACE.canonical(json.dumps(obj)) == V2_CANONICAL


def test_to_compact_matches_naslib_form():
    compact = to_compact(V2_CANONICAL)
    assert SPACE.canonical(str(compact)) == V2_CANONICAL
    assert compact[1][2] == (1, COMPACT_OPS.index("max_pool_3x3"))


# -- validity ----------------------------------------------------------------------------------------
def _bad(**overrides) -> str:
    return json.dumps(_v2_json(**overrides))


_SEVEN = json.loads(V2_CANONICAL)["normal"][:7]
_REPEATED = json.loads(V2_CANONICAL)["normal"]
_REPEATED[3] = ["sep_conv_3x3", 0]  # node 1 would read input 0 twice
_OUT_OF_RANGE = json.loads(V2_CANONICAL)["reduce"]
_OUT_OF_RANGE[1] = ["max_pool_3x3", 2]  # node 0 may only read 0 and 1


@pytest.mark.parametrize("text, pattern", [
    ('{"normal": [["sep_conv_3x3", 0]', r"malformed JSON"),
    (_bad(normal=[["conv_7x7", 0]] + _SEVEN[1:] + [["sep_conv_3x3", 1]]), r"unknown op 'conv_7x7'.*allowed ops: max_pool_3x3"),
    (_bad(normal=[["none", 0]] + _SEVEN[1:] + [["sep_conv_3x3", 1]]), r"unknown op 'none'"),
    (_bad(normal=_SEVEN), r"normal cell must have exactly 8 .*got 7"),
    (_bad(normal=_REPEATED), r"node 1: both pairs .* take input 0; the two inputs of a node must be distinct"),
    (_bad(reduce=_OUT_OF_RANGE), r"reduce cell pair 1: input 2 out of range for intermediate node 0; .* 0\.\.1"),
    (_bad(normal_concat=[2, 3, 4]), r"normal_concat must be \[2, 3, 4, 5\]"),
    (V2_NASLIB.replace("(2, 5)", "(2, 9)"), r"unknown op id 9"),
    (V2_NASLIB.replace("(2, 5)]", "(5, 5)]"), r"input 5 out of range for intermediate node 3"),
    (DARTS_V2.replace("'dil_conv_3x3'", "'dil_conv_7x7'"), r"unknown op 'dil_conv_7x7'"),
    ("Genotype(normal=[", r"malformed DARTS Genotype"),
    ("sep_conv_3x3", r"unrecognised nb301 spec"),
])
def test_bad_specs_raise_value_error_naming_the_rule(text, pattern):
    with pytest.raises(ValueError, match=pattern):
        SPACE.parse(text)
    assert not SPACE.is_valid(text)


# -- search ------------------------------------------------------------------------------------------
def test_sample_is_valid_canonical_and_deterministic():
    a = SPACE.sample_many(20, seed=3)
    assert a == SPACE.sample_many(20, seed=3)
    assert a != SPACE.sample_many(20, seed=4)
    assert len(set(a)) == 20
    for spec in a:
        assert SPACE.canonical(spec) == spec


def test_sample_covers_all_ops_and_inputs():
    specs = [SPACE.parse(s) for s in SPACE.sample_many(200, seed=0)]
    ops = {op for g in specs for op, _ in g.normal + g.reduce}
    assert ops == set(COMPACT_OPS)
    last_node_inputs = {inp for g in specs for _, inp in g.normal[6:]}
    assert last_node_inputs == {0, 1, 2, 3, 4}


def test_mutate_gives_a_valid_different_spec_one_edge_away():
    rng = np.random.default_rng(0)
    spec = V2_CANONICAL
    for _ in range(50):
        child = SPACE.mutate(spec, rng)
        assert child != spec
        assert SPACE.canonical(child) == child
        a, b = SPACE.parse(spec), SPACE.parse(child)
        changed = sum(len(set(x) ^ set(y)) // 2 for g1, g2 in [(a.normal, b.normal), (a.reduce, b.reduce)]
                      for x, y in zip(zip(g1[::2], g1[1::2]), zip(g2[::2], g2[1::2])))
        assert changed == 1
        spec = child


@settings(max_examples=60, deadline=None)
@given(st.integers(min_value=0, max_value=2**32 - 1))
def test_property_round_trip_over_sampled_specs(seed):
    rng = np.random.default_rng(seed)
    spec = SPACE.sample(rng)
    assert SPACE.format(SPACE.parse(spec)) == spec
    # the NASLib compact form of a spec reads back as the same spec
    assert SPACE.canonical(str(to_compact(spec))) == spec
    child = SPACE.mutate(spec, rng)
    assert child != spec and SPACE.is_valid(child)


# -- networks ----------------------------------------------------------------------------------------
def test_darts_v2_parameter_count_matches_darts():
    # DARTS' CIFAR-10 evaluation network (C=36, 20 cells), auxiliary head excluded as DARTS'
    # count_parameters_in_MB does: 3,349,342 (the paper's "3.3M").
    model = SPACE.build(DARTS_V2, DARTS_CIFAR10_PROFILE)
    assert n_params(model) == 3_349_342


# Published NASLib zc_nasbench301.json "params" (millions) for three of its cells. NASLib builds the
# cell ops with non-affine BatchNorm; removing those BN affine parameters from our paper network must
# give NASLib's number to the parameter.
NASLIB_PARAMS = {
    "[[(0, 4), (1, 3), (0, 2), (2, 3), (2, 3), (0, 3), (2, 6), (3, 5)], "
    "[(0, 3), (1, 3), (1, 1), (0, 5), (2, 3), (0, 2), (4, 4), (3, 1)]]": 1.204906,
    "[[(1, 1), (0, 6), (1, 1), (0, 3), (1, 1), (2, 5), (0, 1), (4, 4)], "
    "[(0, 1), (1, 1), (0, 4), (2, 4), (0, 4), (1, 5), (2, 4), (4, 0)]]": 0.920618,
    "[[(0, 1), (1, 0), (0, 2), (1, 4), (1, 2), (2, 6), (3, 4), (4, 3)], "
    "[(1, 1), (0, 1), (0, 3), (1, 5), (2, 6), (3, 0), (4, 0), (0, 1)]]": 0.849450,
}


@pytest.mark.parametrize("compact, params_m", list(NASLIB_PARAMS.items()))
def test_paper_network_matches_naslib_published_params(compact, params_m):
    model = SPACE.build(compact, "paper")
    op_bn = sum(p.numel() for cell in model.cells for m in cell.ops.modules()
                if isinstance(m, nn.BatchNorm2d) for p in m.parameters())
    assert n_params(model) - op_bn == round(params_m * 1e6)


def test_paper_forward_shape_and_structure():
    model = SPACE.build(V2_CANONICAL, "paper")
    assert SPACE.input_shape("paper") == (1, 3, 32, 32)
    assert len(model.cells) == 8
    assert [c.reduction for c in model.cells] == [i in (2, 5) for i in range(8)]
    assert model.stem[0].out_channels == 96
    assert model.classifier.in_features == 4 * 32 * 4
    # preprocess0 after a reduction cell is a FactorizedReduce; skip_connect at stride 2 too
    assert isinstance(model.cells[3].preprocess0, FactorizedReduce)
    assert isinstance(model.cells[2].ops[3], nn.Identity)  # skip from node 0 (input 2): stride 1
    assert all(m.affine for m in model.modules() if isinstance(m, nn.BatchNorm2d))
    model.eval()
    with torch.no_grad():
        assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_zoo_profile_forward_and_fx_trace():
    spec = SPACE.sample_many(1, seed=7)[0]
    model = SPACE.build(spec, "zoo")
    p = SPACE.profile("zoo")
    assert p["C"] == 8 and p["stem_stride"] == 2 and p["layers"] == 5 and p["reduction_cells"] == (1, 3)
    assert [c.reduction for c in model.cells] == [False, True, False, True, False]
    x = torch.randn(2, *p.input_shape)
    model.eval()
    traced = torch.fx.symbolic_trace(model)
    with torch.no_grad():
        assert torch.allclose(traced(x), model(x))
        assert model(x).shape == (2, p.num_classes)


def test_reduction_cell_with_skip_from_cell_inputs_uses_factorized_reduce():
    # every op of the reduce cell reading a cell input runs at stride 2
    model = SPACE.build(
        "[[(0, 2), (1, 2), (0, 2), (1, 2), (0, 2), (1, 2), (0, 2), (1, 2)], "
        "[(0, 2), (1, 2), (0, 1), (2, 0), (0, 3), (3, 4), (1, 5), (4, 6)]]", "zoo")
    red = model.cells[1]
    assert isinstance(red.ops[0], FactorizedReduce) and isinstance(red.ops[1], FactorizedReduce)
    assert isinstance(red.ops[3], nn.MaxPool2d) and red.ops[3].stride == 1  # reads node 0: stride 1
    assert isinstance(red.ops[2], nn.AvgPool2d) and red.ops[2].stride == 2
    model.eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 16, 16)).shape == (1, 10)


def test_unknown_profile_is_rejected():
    with pytest.raises(ValueError, match="unknown profile"):
        SPACE.build(V2_CANONICAL, "huge")
