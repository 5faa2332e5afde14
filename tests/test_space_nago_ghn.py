"""NAGO (hierarchical random graphs) and DeepNets-1M (GHN random DARTS-like nets): specs, sampling,
mutation, the reference semantics and the networks at both profiles."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn as nn
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.utils.flop_counter import FlopCounterMode

from nape_utils.graphs import from_module
from nape_utils.spaces import get_space
from nape_utils.spaces.ghn_random import (
    OPS,
    GHNNetwork,
    GHNRandomSpace,
    _plan,
    _reference_num_params,
    reference_num_params,
)
from nape_utils.spaces.nago import NAGOSpace, level_graph, logical, stage_list, width_multiplier

NAGO = get_space("nago")
GHN = get_space("ghn_random")
seeds = st.integers(0, 2**32 - 1)


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def outputs_of(space, spec: str, profile: str, seed: int = 0, batch: int = 2) -> tuple[list, torch.Tensor]:
    torch.manual_seed(seed)
    net = space.build(spec, profile).eval()
    x = torch.randn(batch, *space.input_shape(profile)[1:], generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        y = net(x)
    return [tuple(p.shape) for p in net.parameters()], y


def check_graph(space, spec: str) -> None:
    """Zoo forward gives (2, 10); the traced graph has no oov node and the module's params and FLOPs."""
    net = space.build(spec, "zoo").eval()
    shape = space.input_shape("zoo")
    with torch.no_grad():
        assert net(torch.randn(2, *shape[1:])).shape == (2, 10)
        with FlopCounterMode(display=False) as counter:
            net(torch.randn(shape))
    graph = from_module(net, shape)
    graph.check()
    assert "oov" not in graph.op_names
    assert graph.params == n_params(net)
    assert graph.flops == counter.get_total_flops()


# ===================================================================================================
# NAGO
# ===================================================================================================
SMALL = '{"top":[3,2,0.5],"mid":[3,0.5],"bottom":[3,2,0.5],"seed":0}'
MEDIUM = '{"top":[6,4,0.5],"mid":[4,0.6],"bottom":[4,2,0.3],"seed":7}'


def test_nago_registry_and_profiles():
    assert isinstance(NAGO, NAGOSpace) and NAGO.name == "nago"
    assert NAGO.input_shape("paper") == (1, 3, 32, 32) and NAGO.input_shape("zoo") == (1, 3, 16, 16)
    assert NAGO.profile("paper")["n_param_limit"] == 4.0e6  # vega's examples/nas/nago/nago.yml


@settings(max_examples=20, deadline=None)
@given(seed=seeds)
def test_nago_canonical_round_trip(seed):
    spec = NAGO.sample(np.random.default_rng(seed))
    assert NAGO.format(NAGO.parse(spec)) == spec
    obj = json.loads(spec)
    vega = {"G1_nodes": obj["top"][0], "G1_K": obj["top"][1], "G1_P": obj["top"][2],
            "G2_nodes": obj["mid"][0], "G2_P": obj["mid"][1],
            "G3_nodes": obj["bottom"][0], "G3_K": obj["bottom"][1], "G3_P": obj["bottom"][2], "seed": obj["seed"]}
    assert NAGO.canonical(json.dumps(vega)) == spec


def test_nago_canonical_form_rounds_p_and_clamps_k():
    text = '{"top": [3, 5, 0.504], "mid": [4, 0.999], "bottom": [5, 4, 1], "seed": 3}'
    assert NAGO.canonical(text) == '{"top":[3,2,0.5],"mid":[4,1.0],"bottom":[5,4,1.0],"seed":3}'
    # vega's form without a seed is vega's own network: seed 0
    vega = {"G1_nodes": 3, "G1_K": 2, "G1_P": 0.5, "G2_nodes": 3, "G2_P": 0.5, "G3_nodes": 3, "G3_K": 2, "G3_P": 0.5}
    assert NAGO.canonical(json.dumps(vega)) == SMALL


def test_nago_generator_is_deterministic_and_pinned():
    # networkx's seeded generators: the same parameters and seed give the same graph, always
    level_graph.cache_clear()
    g = level_graph("WS", (6, 4, 0.5), 0)
    assert g.edges == ((0, 1), (0, 2), (0, 3), (0, 4), (0, 5), (1, 2), (1, 3), (1, 5), (2, 3), (2, 5), (3, 4), (4, 5))
    assert g.input_nodes == (0,) and g.output_nodes == (5,) and g.inputs[3] == (0, 1, 2)
    # ER(3, 0.2) is rarely connected: the first connected draw is seed 22 (within vega's 30 tries)
    er = level_graph("ER", (3, 0.2), 0)
    assert er.seed_used == 22 and er.edges == ((0, 2), (1, 2))
    assert er.input_nodes == (0, 1) and er.output_nodes == (2,)  # node 1 has no lower neighbour: an input


def test_nago_stages_and_width_follow_vega():
    assert stage_list(3) == [0, 1, 2]
    assert stage_list(6) == [0, 0, 1, 1, 2, 2]
    assert stage_list(10) == [0, 0, 0, 0, 1, 1, 1, 2, 2, 2]
    lg = logical(NAGO.parse(SMALL))
    assert lg.stages == (0, 1, 2) and lg.outplanes == (1, 2, 4) and lg.inplanes == (1, 1, 2)
    # 3 cells × 3 middle nodes × 3 bottom convs of 9·in·out weights at channel ratios
    assert lg.base_param_count() == 1611
    assert width_multiplier(lg, 4.0e6) == int(np.sqrt(4.0e6 / 1611)) == 49
    net = NAGO.build(SMALL, "paper")
    bottom_convs = [m for m in net.cells.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)]
    assert len(bottom_convs) == 27
    assert sum(m.weight.numel() for m in bottom_convs) == 1611 * 49**2 <= 4.0e6


def test_nago_same_spec_same_module():
    shapes_a, y_a = outputs_of(NAGO, MEDIUM, "zoo")
    level_graph.cache_clear()
    shapes_b, y_b = outputs_of(NAGO, MEDIUM, "zoo")
    assert shapes_a == shapes_b
    assert torch.equal(y_a, y_b)


def test_nago_sample_is_deterministic_per_seed_and_valid():
    a = NAGO.sample_many(30, seed=3)
    assert a == NAGO.sample_many(30, seed=3) and a != NAGO.sample_many(30, seed=4)
    for spec in a:
        s = NAGO.parse(spec)
        assert NAGO.canonical(spec) == spec
        assert 3 <= s.top[0] <= 10 and 2 <= s.top[1] <= min(5, s.top[0] - 1) and 0.1 <= s.top[2] <= 1
        assert 0.2 <= s.mid[1] <= 1


def test_nago_mutate_is_valid_and_different():
    rng = np.random.default_rng(0)
    spec = SMALL
    for _ in range(40):
        child = NAGO.mutate(spec, rng)
        assert child != spec and NAGO.canonical(child) == child
        assert NAGO.logical(child) != NAGO.logical(spec)  # a change that rebuilds the same network is no mutation
        a, b = json.loads(spec), json.loads(child)
        changed = sum(x != y for k in ("top", "mid", "bottom") for x, y in zip(a[k], b[k])) + (a["seed"] != b["seed"])
        assert changed == 1
        spec = child


@pytest.mark.parametrize("text, pattern", [
    ('{"top": [3, 2, 0.5]', r"malformed JSON"),
    ('[1, 2]', r"must be a JSON object"),
    ('{"top": [2, 2, 0.5], "mid": [3, 0.5], "bottom": [3, 2, 0.5]}', r"top graph: N must be in \[3, 10\]"),
    ('{"top": [3, 2, 0.5], "mid": [11, 0.5], "bottom": [3, 2, 0.5]}', r"mid graph: N must be in \[3, 10\]"),
    ('{"top": [3, 6, 0.5], "mid": [3, 0.5], "bottom": [3, 2, 0.5]}', r"top graph: K must be in \[2, 5\]"),
    ('{"top": [3, 2, 0.05], "mid": [3, 0.5], "bottom": [3, 2, 0.5]}', r"top graph: P must be in \[0.1, 1.0\]"),
    ('{"top": [3, 2, 0.5], "mid": [3, 0.1], "bottom": [3, 2, 0.5]}', r"mid graph: P must be in \[0.2, 1.0\]"),
    ('{"top": [3, 2, 0.5], "mid": [3, 0.5], "bottom": [3, 2.5, 0.5]}', r"bottom graph: K .* must be an integer"),
    ('{"top": [3, 2, 0.5], "mid": [3, 0.5, 1], "bottom": [3, 2, 0.5]}', r"mid graph must be \[N, P\]"),
    ('{"top": [3, 2, 0.5], "mid": [3, 0.5]}', r"missing \['bottom'\]"),
    ('{"top": [3, 2, 0.5], "mid": [3, 0.5], "bottom": [3, 2, 0.5], "seed": -1}', r"seed must be an integer"),
    ('{"top": [3, 2, 0.5], "mid": [3, 0.5], "bottom": [3, 2, 0.5], "depth": 3}', r"unknown keys \['depth'\]"),
    ('{"G1_nodes": 3, "G1_K": 2}', r"vega-style nago spec is missing"),
])
def test_nago_bad_specs_name_the_rule(text, pattern):
    with pytest.raises(ValueError, match=pattern):
        NAGO.parse(text)
    assert not NAGO.is_valid(text)


@pytest.mark.parametrize("spec", [SMALL, MEDIUM])
def test_nago_zoo_forward_and_graph(spec):
    check_graph(NAGO, spec)


def test_nago_graph_has_merges_gates_and_reductions():
    net = NAGO.build(MEDIUM, "zoo")
    graph = from_module(net, NAGO.input_shape("zoo"))
    names = graph.op_names
    assert names.count("sigmoid") == names.count("mul") > 0  # one learnable gate per summed edge
    assert "avgpool" in names and "identity" not in names
    assert names.count("conv") == sum(isinstance(m, nn.Conv2d) for m in net.modules())


def test_nago_paper_forward():
    net = NAGO.build(SMALL, "paper").eval()
    with torch.no_grad():
        assert net(torch.randn(1, 3, 32, 32)).shape == (1, 10)
    assert net.stem[0].out_channels == 49 and net.conv_out[1].out_channels == 1280
    assert 4.0e6 < n_params(net) < 4.4e6  # 4M conv weights, plus stem, head, BN, biases and gates


# ===================================================================================================
# GHN / DeepNets-1M
# ===================================================================================================
def _ghn(normal, reduce, concat=None, **args) -> str:
    obj = {"normal": normal, "reduce": reduce, "n_cells": args.pop("n_cells", 4)}
    if concat is not None:
        obj["normal_concat"] = obj["reduce_concat"] = concat
    obj.update(args)
    return GHN.canonical(json.dumps(obj))


# DARTS' cell with the reference's extra ops: cse, msa-free; DARTS-like reduction
CONV = _ghn([["sep_conv_3x3", 0], ["conv_7x1_1x7", 1], ["cse", 0], ["dil_conv_5x5", 2]],
            [["max_pool_3x3", 0], ["skip_connect", 1], ["conv_1x1", 2], ["avg_pool_3x3", 0]],
            n_cells=5, C_mult=2, stem_type=1)
# a ViT-like net (msa: no spatial reductions); none ops are skipped, so normal node 2 is missing and
# becomes zeros in the concat
VIT = _ghn([["none", 0], ["none", 1], ["conv_3x3", 0], ["msa", 1]],
           [["msa", 0], ["none", 1], ["avg_pool_3x3", 1], ["none", 2]], concat=[2, 3], n_cells=4, C_mult=2)
# one node, no preprocessing, no BN, flattening head with two fc layers, stem max-pool
PLAIN = _ghn([["conv_5x5", 0], ["skip_connect", 1]], [["dil_conv_3x3", 0], ["skip_connect", 1]],
             n_cells=5, preproc=False, norm=None, glob_avg=False, fc_layers=2, stem_pool=True, ks=7)


def test_ghn_registry_profiles_and_ops():
    assert isinstance(GHN, GHNRandomSpace) and GHN.name == "ghn_random"
    assert len(OPS) == 15 and OPS[0] == "none" and OPS[-2:] == ("msa", "cse")
    assert GHN.profile("paper")["C"] == 32 and GHN.profile("paper")["fc_dim"] == 256
    assert GHN.input_shape("zoo") == (1, 3, 16, 16)


@settings(max_examples=20, deadline=None)
@given(seed=seeds)
def test_ghn_canonical_round_trip(seed):
    spec = GHN.sample(np.random.default_rng(seed))
    assert GHN.format(GHN.parse(spec)) == spec
    # the DeepNets-1M meta-file entry (genotype nested, norm 'bnorm'/None, fc_dim) reads as the same spec
    obj = json.loads(spec)
    meta = {k: v for k, v in obj.items() if not k.endswith(("normal", "reduce", "concat"))}
    meta["genotype"] = {k: obj[k] for k in ("normal", "normal_concat", "reduce", "reduce_concat")}
    meta.update(fc_dim=256, num_nodes=123, num_params={"cifar10": 1, "imagenet": 2})
    assert GHN.canonical(json.dumps(meta)) == spec
    assert GHN.flags(spec)["in_generator_support"]


def test_ghn_pair_order_and_defaults():
    a = GHN.canonical('{"normal": [["conv_3x3", 1], ["msa", 0]], "reduce": [["skip_connect", 1], ["none", 0]], '
                      '"n_cells": 6}')
    obj = json.loads(a)
    assert obj["normal"] == [["msa", 0], ["conv_3x3", 1]] and obj["normal_concat"] == [2]
    assert (obj["C_mult"], obj["ks"], obj["stem_type"], obj["norm"], obj["preproc"], obj["fc_layers"]) == \
        (1, 3, 0, "bnorm", True, 1)


def test_ghn_same_spec_same_module():
    for spec in (CONV, VIT):
        shapes_a, y_a = outputs_of(GHN, spec, "zoo")
        shapes_b, y_b = outputs_of(GHN, spec, "zoo")
        assert shapes_a == shapes_b and torch.equal(y_a, y_b)


def test_ghn_sample_is_deterministic_and_follows_the_generator():
    a = GHN.sample_many(40, seed=3)
    assert a == GHN.sample_many(40, seed=3) and a != GHN.sample_many(40, seed=4)
    specs = [GHN.parse(x) for x in GHN.sample_many(300, seed=0)]
    for s in specs:
        assert 4 <= s.n_cells <= 18 and 1 <= s.steps <= 4
        assert s.steps <= 2 or s.n_cells <= 10
        assert s.normal_concat == s.reduce_concat and s.normal_concat[-1] == s.steps + 1
        assert s.preproc or (s.steps == 1 and s.C_mult == 1)
        assert s.glob_avg or not s.is_vit
        assert max(reference_num_params(GHN.format(s), im) for im in (False, True)) <= 10**7
    ops = {op for s in specs for op, _ in s.normal + s.reduce}
    assert ops == set(OPS)
    assert {s.n_cells for s in specs} == set(range(4, 19))
    assert {s.stem_type for s in specs} == {0, 1} and {s.fc_layers for s in specs} == {1, 2}
    assert any(not s.norm for s in specs) and any(not s.glob_avg for s in specs)


def test_ghn_mutate_is_valid_different_and_in_support():
    rng = np.random.default_rng(0)
    spec = CONV
    for _ in range(40):
        child = GHN.mutate(spec, rng)
        assert child != spec and GHN.canonical(child) == child
        assert GHN.flags(child)["in_generator_support"]
        spec = child


_BASE = {"normal": [["conv_3x3", 0], ["sep_conv_3x3", 1]], "reduce": [["max_pool_3x3", 0], ["conv_1x1", 1]],
         "n_cells": 6}


def _bad(**kw) -> str:
    obj = dict(_BASE)
    obj.update(kw)
    return json.dumps(obj)


@pytest.mark.parametrize("text, pattern", [
    ('{"normal": [', r"malformed JSON"),
    (_bad(normal=[["conv_9x9", 0], ["conv_3x3", 1]]), r"unknown op 'conv_9x9'.*allowed ops: none"),
    (_bad(normal=[["conv_3x3", 0]]), r"2 \(op, input\) pairs per summation node and 1-4 nodes"),
    (_bad(normal=[["conv_3x3", 0], ["conv_3x3", 1]] * 5), r"1-4 nodes, got 10 pairs"),
    (_bad(normal=[["conv_3x3", 1], ["conv_3x3", 1]]), r"both pairs take input 1; the two inputs .* distinct"),
    (_bad(normal=[["conv_3x3", 0], ["conv_3x3", 2]]), r"input 2 out of range for summation node 0"),
    (_bad(normal=_BASE["normal"] * 2), r"same number of summation nodes"),
    (_bad(normal_concat=[3]), r"normal_concat may only list summation nodes 2..2"),
    (_bad(n_cells=3), r"n_cells must be an integer in \[4, 18\]"),
    (_bad(n_cells=19), r"n_cells must be an integer in \[4, 18\]"),
    (_bad(C_mult=3), r"C_mult must be one of \[1, 2\]"),
    (_bad(ks=4), r"ks must be one of \[3, 5, 7\]"),
    (_bad(stem_type=1, stem_pool=True), r"stem_pool applies to the simple stem"),
    (_bad(norm="layernorm"), r'norm must be "bnorm" or null'),
    (_bad(preproc=False, C_mult=2), r"preproc must be true when .* C_mult > 1"),
    (_bad(normal=[["msa", 0], ["conv_3x3", 1]], glob_avg=False), r"msa op needs glob_avg"),
    (_bad(normal=[["none", 0], ["none", 1]]), r"network output is missing"),
    (json.dumps({**_BASE, "genotype": {"normal": []}}), r"given both inside and outside genotype"),
    (json.dumps({"genotype": {**{k: _BASE[k] for k in ("normal", "reduce")}}, "n_cells": 6, "fc_dim": 128}),
     r"fc_dim must be 256"),
    (_bad(depth=3), r"unknown keys \['depth'\]"),
])
def test_ghn_bad_specs_name_the_rule(text, pattern):
    with pytest.raises(ValueError, match=pattern):
        GHN.parse(text)
    assert not GHN.is_valid(text)


def test_ghn_generator_support_rules():
    assert GHN.generator_rejects(_ghn([["cse", 0], ["max_pool_3x3", 1]], [["max_pool_3x3", 0], ["avg_pool_3x3", 1]])) \
        == "cse without a conv op"
    assert GHN.generator_rejects(_ghn([["conv_5x5", 0], ["conv_7x7", 1]], [["max_pool_3x3", 0], ["conv_1x1", 1]])) \
        == "more than one conv_5x5/conv_7x7 in a cell"
    assert GHN.generator_rejects(_ghn([["max_pool_3x3", 0], ["skip_connect", 1]], [["avg_pool_3x3", 0], ["skip_connect", 1]])) \
        == "no learnable op"
    big = _ghn([["conv_7x7", 0], ["sep_conv_5x5", 1]], [["conv_7x7", 0], ["conv_3x3", 1]], n_cells=10,
               C_mult=2, glob_avg=False, fc_layers=2)
    assert reference_num_params(big) < 10**7 < reference_num_params(big, is_imagenet_input=True)
    assert "parameters at ImageNet size" in GHN.generator_rejects(big)
    assert not GHN.flags(big)["in_generator_support"] and GHN.is_valid(big)


def test_ghn_reference_param_count_matches_the_unpruned_network():
    for spec in GHN.sample_many(8, seed=11) + [CONV, VIT, PLAIN]:
        s = GHN.parse(spec)
        for imagenet in (False, True):
            with torch.device("meta"):
                net = GHNNetwork(s, C=32, input_size=224 if imagenet else 32, is_imagenet_input=imagenet, prune=False)
            assert n_params(net) == _reference_num_params(s, imagenet)
        if not _plan(s).dead:  # nothing unused: the built network is the reference's, to the parameter
            assert n_params(GHN.build(spec, "paper")) == reference_num_params(spec)


def _reference_forward(net: GHNNetwork, s, x: torch.Tensor) -> torch.Tensor:
    """ppuda's Network/Cell forward, None handling included, on an unpruned network's modules."""
    if net.stem_type == -1:
        s0 = s1 = net.pos_enc(net.stem0(x))
    elif net.stem_type == 0:
        s0 = s1 = net.stem(x)
    else:
        s0 = net.stem0(x)
        s1 = net.stem1(s0)
    for c in range(s.n_cells):
        cell = net.cells[str(c)]
        pairs, concat = (s.reduce, s.reduce_concat) if cell.reduction else (s.normal, s.normal_concat)
        pre = [cell.preprocess0, cell.preprocess1]
        states = [None if v is None else (v if p is None else p(v)) for v, p in zip((s0, s1), pre)]
        ops = iter(cell.ops)
        modules = [next(ops) if op != "none" else None for op, _ in pairs]
        for k in range(len(pairs) // 2):
            h = []
            for j in (2 * k, 2 * k + 1):
                if modules[j] is not None and states[pairs[j][1]] is not None:
                    h.append(modules[j](states[pairs[j][1]]))
            states.append(None if not h else (h[0] if len(h) == 1 else h[0] + h[1]))
        present = [states[i] for i in concat if states[i] is not None]
        out = None if not present else torch.cat([states[i] if states[i] is not None else present[0] * 0
                                                  for i in concat], dim=1)
        s0, s1 = s1, out
    out = net.global_pooling(s1) if net.global_pooling is not None else s1
    return net.classifier(torch.flatten(out, 1))


def test_ghn_none_semantics_and_pruning_match_the_reference_forward():
    specs = [CONV, VIT, PLAIN] + [x for x in GHN.sample_many(60, seed=2) if GHN.flags(x)["has_none"]][:6]
    assert any(GHN.flags(x)["has_dead_ops"] for x in specs)
    for spec in specs:
        s = GHN.parse(spec)
        torch.manual_seed(0)
        net = GHNNetwork(s, C=4, input_size=16, fc_dim=32, track=True, heads=2, prune=False).eval()
        x = torch.randn(2, 3, 16, 16)
        with torch.no_grad():
            assert torch.allclose(net(x), _reference_forward(net, s, x), atol=1e-6), spec


@pytest.mark.parametrize("spec", [CONV, VIT, PLAIN])
def test_ghn_zoo_forward_and_graph(spec):
    check_graph(GHN, spec)


def test_ghn_graph_shapes_of_msa_and_cse():
    graph = from_module(GHN.build(VIT, "zoo"), GHN.input_shape("zoo"))
    names = graph.op_names
    assert {"matmul", "softmax", "layernorm", "gelu"} <= set(names) and "zero" in names  # missing node 2 → zeros
    assert "maxpool" not in names  # no spatial reduction in a ViT-like network
    graph = from_module(GHN.build(CONV, "zoo"), GHN.input_shape("zoo"))
    assert {"hardswish", "mean", "mul", "depthwise"} <= set(graph.op_names)


def test_ghn_paper_forward():
    net = GHN.build(CONV, "paper")
    bns = [m for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
    assert bns and not any(m.track_running_stats for m in bns)  # 'bnorm': batch statistics, as the reference
    net.eval()
    with torch.no_grad():
        assert net(torch.randn(1, 3, 32, 32)).shape == (1, 10)
    # channels 32 → 64 → 128 at the two reductions; two concatenated nodes
    assert net.stem0[0].out_channels == 16 and net.classifier[0].in_features == 2 * 128
