"""Once-for-All spaces (OFA-MobileNetV3 w1.2, OFA-ProxylessNAS w1.3, OFA-ResNet-50): specs, search, networks.

Parameter counts marked "OFA" were obtained by building the reference implementation (PyPI package
``ofa`` 0.1.0.post202307202001, mit-han-lab/once-for-all): ``OFAMobileNetV3(width_mult=1.2,
ks_list=[3,5,7], expand_ratio_list=[3,4,6], depth_list=[2,3,4], dropout_rate=0)``,
``OFAProxylessNASNets(width_mult=1.3, ...same lists...)`` and ``OFAResNets(depth_list=[0,1,2],
expand_ratio_list=[0.2,0.25,0.35], width_mult_list=[0.65,0.8,1.0], dropout_rate=0)``, calling
``set_active_subnet`` with the config and counting the parameters of ``get_active_subnet()``. The same
check over 30 random configs per family, and a weight-copy comparison of outputs (max difference
< 1e-6), agreed with nape's networks when this file was written.
"""
from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch
import torch.nn as nn
from hypothesis import given, settings
from hypothesis import strategies as st

from nape_utils.graphs import from_module, graph_of
from nape_utils.spaces import get_space
from nape_utils.spaces.ofa_common import RESOLUTIONS, MBConvBlock, make_divisible
from nape_utils.spaces.ofa_mbv3 import OFAMobileNetV3Space
from nape_utils.spaces.ofa_mbv3 import widths_of as mbv3_widths
from nape_utils.spaces.ofa_pn import OFAProxylessSpace
from nape_utils.spaces.ofa_pn import widths_of as pn_widths
from nape_utils.spaces.ofa_resnet import EXPANDS as RN_EXPANDS
from nape_utils.spaces.ofa_resnet import (W0_CANON, WIDTH_MULTS, Bottleneck, OFAResNetSpace, StemResidual,
                                          stage_widths, standard_resnet50)

NAMES = ("ofa_mbv3", "ofa_pn", "ofa_resnet")
MBV3, PN, RN = (get_space(n) for n in NAMES)


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def mb(n_slots: int, n_stages: int, k: int, e: int, d: int, **extra) -> str:
    return json.dumps({"ks": [k] * n_slots, "e": [e] * n_slots, "d": [d] * n_stages, **extra})


def rn(d, e, w, **extra) -> str:
    d = [d] * 5 if isinstance(d, int) else d
    e = [e] * 18 if isinstance(e, float) else e
    w = [w] * 6 if isinstance(w, int) else w
    return json.dumps({"d": d, "e": e, "w": w, **extra})


MAX_SPEC = {"ofa_mbv3": mb(20, 5, 7, 6, 4), "ofa_pn": mb(21, 6, 7, 6, 4), "ofa_resnet": rn(2, 0.35, 2)}
MIN_SPEC = {"ofa_mbv3": mb(20, 5, 3, 3, 2), "ofa_pn": mb(21, 6, 3, 3, 2), "ofa_resnet": rn(0, 0.2, 0)}


# -- registry and spec strings ---------------------------------------------------------------------
def test_registry():
    assert isinstance(MBV3, OFAMobileNetV3Space) and isinstance(PN, OFAProxylessSpace)
    assert isinstance(RN, OFAResNetSpace)
    for name in NAMES:
        assert get_space(name).name == name
        # OFA-MobileNetV3 has both OFA super-network widths (w1.2 at paper, w1.0 at paper_w1.0)
        assert set(get_space(name).profiles) == {"paper", "zoo"} | ({"paper_w1.0"} if name == "ofa_mbv3" else set())


def test_canonical_forms():
    spec = MBV3.canonical(MAX_SPEC["ofa_mbv3"])
    assert spec == '{"r":224,"d":[4,4,4,4,4],"ks":[' + ",".join(["7"] * 20) + '],"e":[' + ",".join(["6"] * 20) + "]}"
    low = json.loads(MBV3.canonical(MIN_SPEC["ofa_mbv3"]))
    assert low["ks"][:4] == [3, 3, 0, 0] and low["e"][4:8] == [3, 3, 0, 0]
    pn = json.loads(PN.canonical(MIN_SPEC["ofa_pn"]))
    assert pn["d"] == [2, 2, 2, 2, 2, 1] and pn["ks"][20] == 3 and len(pn["e"]) == 21
    r = json.loads(RN.canonical(rn([2, 1, 0, 2, 1], 0.25, 1)))
    assert r == {"r": 224, "d": [2, 1, 0, 2, 1], "w": [0, 1, 1, 1, 1, 1],
                 "e": [0.25] * 3 + [0] + [0.25] * 2 + [0, 0] + [0.25] * 6 + [0.25] * 3 + [0]}
    assert list(json.loads(RN.canonical(rn(0, 0.2, 0)))) == ["r", "d", "e", "w"]


def test_ofa_arch_dicts_are_accepted():
    # OFA's sample_active_subnet dict: values in unused slots, no resolution → r = 224
    rng = np.random.default_rng(0)
    ks = [int(x) for x in rng.choice([3, 5, 7], 20)]
    e = [int(x) for x in rng.choice([3, 4, 6], 20)]
    d = [2, 3, 4, 2, 3]
    spec = MBV3.canonical(json.dumps({"ks": ks, "e": e, "d": d}))
    cfg = MBV3.parse(spec)
    assert cfg.r == 224 and cfg.d == tuple(d)
    assert cfg.ks[:2] == tuple(ks[:2]) and cfg.ks[2:4] == (0, 0) and cfg.ks[4:7] == tuple(ks[4:7])
    # same network from OFA's tutorial form: r as [r], k for ks, "wid": null
    alt = json.dumps({"wid": None, "k": ks, "e": e, "d": d, "r": [224]})
    assert MBV3.canonical(alt) == spec
    assert MBV3.canonical(json.dumps({"ks": ks, "e": e, "d": d, "image_size": 224})) == spec
    assert MBV3.canonical(json.dumps(MBV3.to_ofa(spec))) == spec
    # ProxylessNAS: the fixed last stage may carry any OFA depth or be left out
    pn = PN.canonical(mb(21, 6, 5, 4, 3))
    assert json.loads(pn)["d"] == [3, 3, 3, 3, 3, 1]
    assert PN.canonical(json.dumps({"ks": [5] * 21, "e": [4] * 21, "d": [3] * 5})) == pn
    # ResNet: OFA's arch-encoder dict with image_size
    spec = RN.canonical(rn([0, 2, 1, 0, 2], 0.35, [1, 0, 2, 1, 0, 2], image_size=160))
    assert RN.parse(spec).r == 160
    assert RN.canonical(json.dumps(RN.to_ofa(spec))) == spec


def test_resnet_equivalent_stem_widths_share_one_string():
    # the stem's first convs have 24, 24, 32 channels for width indices 0, 1, 2
    assert [stage_widths(RN.profile("paper"), (i, 0, 0, 0, 0, 0))[0] for i in range(3)] == [24, 24, 32]
    assert W0_CANON == {0: 0, 1: 0, 2: 2}
    assert RN.canonical(rn(2, 0.25, [1, 2, 2, 2, 2, 2])) == RN.canonical(rn(2, 0.25, [0, 2, 2, 2, 2, 2]))


def test_paper_choices_give_distinct_channels():
    """Every free choice changes the paper network: no other equivalent strings exist."""
    for space, widths in ((MBV3, mbv3_widths), (PN, pn_widths)):
        for c_in in widths(space.profile("paper"))[1:-2]:
            mids = [make_divisible(round(c_in * e), 8) for e in (3, 4, 6)]
            assert len(set(mids)) == 3, (space.name, c_in, mids)
    p = RN.profile("paper")
    stem_out = {stage_widths(p, (0, i, 0, 0, 0, 0))[1] for i in range(len(WIDTH_MULTS))}
    assert stem_out == {40, 48, 64}
    for stage in range(4):
        w = [stage_widths(p, (0, 0) + (i,) * 4)[2][stage] for i in range(len(WIDTH_MULTS))]
        assert len(set(w)) == 3, (stage, w)
    for base in p["stage_widths"]:
        for m in WIDTH_MULTS:
            width = make_divisible(base * m, 8)
            assert len({make_divisible(round(width * e), 8) for e in RN_EXPANDS}) == 3


# -- bad input ---------------------------------------------------------------------------------------
_GOOD_MB = json.loads(MIN_SPEC["ofa_mbv3"])


def _mb_bad(**kw) -> str:
    obj = dict(_GOOD_MB)
    obj.update(kw)
    return json.dumps(obj)


@pytest.mark.parametrize("space, text, pattern", [
    (MBV3, '{"d": [2, 2', r"malformed JSON"),
    (MBV3, "[1, 2]", r"JSON object"),
    (MBV3, _mb_bad(x=1), r"unknown key.*'x'"),
    (MBV3, _mb_bad(ks=[3] * 19), r"wrong list length.*'ks' must have 20 entries, got 19"),
    (MBV3, _mb_bad(d=[2] * 4), r"wrong list length.*'d' must have 5"),
    (MBV3, _mb_bad(ks=[9] + [3] * 19), r"kernel not in \{3,5,7\}: ks\[0\] = 9"),
    (MBV3, _mb_bad(ks=[3, 3, 4] + [3] * 17), r"kernel not in \{3,5,7\}: ks\[2\] = 4 \(stage 0 block 2, unused"),
    (MBV3, _mb_bad(ks=[0] + [3] * 19), r"kernel not in \{3,5,7\}: ks\[0\] = 0 \(stage 0 block 0, used\)"),
    (MBV3, _mb_bad(e=[3] * 5 + [5] + [3] * 14), r"expand ratio not allowed: e\[5\] = 5"),
    (MBV3, _mb_bad(d=[2, 2, 5, 2, 2]), r"depth out of range: d\[2\] = 5"),
    (MBV3, _mb_bad(d=[2, 1, 2, 2, 2]), r"depth out of range: d\[1\] = 1"),
    (MBV3, _mb_bad(r=120), r"resolution out of range: 120"),
    (MBV3, _mb_bad(r=228), r"resolution out of range: 228"),
    (MBV3, _mb_bad(r=130), r"resolution 130 is not a multiple of 4"),
    (MBV3, _mb_bad(r=224, image_size=224), r"resolution twice"),
    (MBV3, _mb_bad(k=[3] * 20), r"kernels twice"),
    (MBV3, _mb_bad(wid=1), r"no elastic width"),
    (MBV3, json.dumps({"ks": [3] * 20, "d": [2] * 5}), r"misses key 'e'"),
    (PN, mb(21, 6, 3, 3, 2).replace("[2, 2, 2, 2, 2, 2]", "[2, 2, 2, 2, 2, 5]"), r"depth out of range: d\[5\] = 5"),
    (PN, mb(20, 6, 3, 3, 2), r"wrong list length.*'ks' must have 21"),
    (PN, mb(21, 4, 3, 3, 2), r"wrong list length.*'d' must have 6 or 5"),
    (RN, rn(2, 0.25, 2)[:-3], r"malformed JSON"),
    (RN, rn([1, 0, 0, 0, 0], 0.25, 2), r"depth out of range: d\[0\] = 1 is the input stem"),
    (RN, rn([0, 0, 3, 0, 0], 0.25, 2), r"depth out of range: d\[2\] = 3"),
    (RN, rn(2, 0.3, 2), r"expand ratio not allowed: e\[0\] = 0.3"),
    (RN, rn(2, 0.25, [0, 0, 0, 3, 0, 0]), r"width index out of range: w\[3\] = 3"),
    (RN, json.dumps({"d": [2] * 5, "e": [0.25] * 17, "w": [2] * 6}), r"wrong list length.*'e' must have 18"),
    (RN, json.dumps({"d": [2] * 4, "e": [0.25] * 18, "w": [2] * 6}), r"wrong list length.*'d' must have 5"),
    (RN, rn(2, 0.25, 2, r=100), r"resolution out of range"),
    (RN, rn(2, 0.25, 2, ks=[3]), r"unknown key.*'ks'"),
])
def test_bad_specs_raise_value_error_naming_the_rule(space, text, pattern):
    with pytest.raises(ValueError, match=pattern):
        space.parse(text)
    assert not space.is_valid(text)


# -- search ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
def test_sample_is_deterministic_canonical_and_covers_choices(name):
    space = get_space(name)
    a = space.sample_many(40, seed=3)
    assert a == space.sample_many(40, seed=3)
    assert a != space.sample_many(40, seed=4)
    assert len(set(a)) == 40
    assert all(space.canonical(s) == s for s in a)
    cfgs = [space.parse(s) for s in space.sample_many(200, seed=0)]
    assert {c.d[1] for c in cfgs} == ({2, 3, 4} if name != "ofa_resnet" else {0, 1, 2})
    assert len({c.r for c in cfgs}) > 15 and {c.r for c in cfgs} <= set(RESOLUTIONS)


@pytest.mark.parametrize("name", NAMES)
def test_mutate_gives_a_valid_different_spec_one_choice_away(name):
    space = get_space(name)
    rng = np.random.default_rng(1)
    spec = space.sample(rng)
    keys = ("r", "d", "ks", "e") if name != "ofa_resnet" else ("r", "d", "e", "w")
    for _ in range(60):
        child = space.mutate(spec, rng)
        assert child != spec and space.canonical(child) == child
        a, b = json.loads(spec), json.loads(child)
        changed = [k for k in keys if a[k] != b[k]]
        assert len(changed) == 1 or (changed[0] == "d" and set(changed) <= {"d", "ks", "e"})
        if changed[0] in ("r",):
            assert len(changed) == 1
        elif changed[0] != "d":
            assert sum(x != y for x, y in zip(a[changed[0]], b[changed[0]])) == 1
        else:
            assert sum(x != y for x, y in zip(a["d"], b["d"])) == 1
        spec = child


@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=30, deadline=None)
@given(seed=st.integers(min_value=0, max_value=2**32 - 1))
def test_property_round_trip_over_sampled_specs(name, seed):
    space = get_space(name)
    rng = np.random.default_rng(seed)
    spec = space.sample(rng)
    assert space.format(space.parse(spec)) == spec
    assert space.canonical(json.dumps(space.to_ofa(spec))) == spec
    child = space.mutate(spec, rng)
    assert child != spec and space.is_valid(child) and space.canonical(child) == child


# -- input shapes --------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
def test_input_shapes(name):
    space = get_space(name)
    spec = json.dumps({**json.loads(MIN_SPEC[name]), "r": 160})
    assert space.input_shape("paper") == (1, 3, 224, 224)
    assert space.input_shape_of(spec, "paper") == (1, 3, 160, 160)
    # zoo: OFA's 128..224 scaled onto the 16-pixel canvas, so the resolution choice still matters
    assert space.input_shape("zoo") == (1, 3, 16, 16)
    assert space.input_shape_of(spec, "zoo") == (1, 3, 11, 11)  # round(160 * 16 / 224)
    small = json.dumps({**json.loads(MIN_SPEC[name]), "r": 128})
    big = json.dumps({**json.loads(MIN_SPEC[name]), "r": 224})
    assert space.input_shape_of(small, "zoo") == (1, 3, 9, 9) and space.input_shape_of(big, "zoo") == (1, 3, 16, 16)
    assert graph_of(space, small, "zoo").flops < graph_of(space, big, "zoo").flops


@pytest.mark.parametrize("name", NAMES)
def test_zoo_residual_branches_start_as_identity(name):
    """zero_init_residual: the last BatchNorm scale of every residual branch is 0 at zoo size, not at paper size."""
    space = get_space(name)
    spec = space.sample_many(1, seed=3)[0]
    zoo_bns = [m.residual_bn for m in space.build(spec, "zoo").modules() if getattr(m, "residual_bn", None) is not None]
    paper_bns = [m.residual_bn for m in space.build(spec, "paper").modules()
                 if getattr(m, "residual_bn", None) is not None]
    assert zoo_bns and all(torch.all(bn.weight == 0) for bn in zoo_bns)
    assert all(torch.all(bn.weight == 1) for bn in paper_bns)


# -- networks -----------------------------------------------------------------------------------------
# OFA parameter counts (see the module docstring for how they were obtained).
OFA_PARAMS = {
    ("ofa_mbv3", "max"): 10_701_632, ("ofa_mbv3", "min"): 4_602_456,
    ("ofa_pn", "max"): 7_942_056, ("ofa_pn", "min"): 3_718_832,
    ("ofa_resnet", "max"): 48_105_992, ("ofa_resnet", "min"): 6_539_280,
}


@pytest.mark.parametrize("name, which", list(OFA_PARAMS))
def test_paper_parameter_counts_match_ofa(name, which):
    spec = (MAX_SPEC if which == "max" else MIN_SPEC)[name]
    assert n_params(get_space(name).build(spec, "paper")) == OFA_PARAMS[(name, which)]


def test_resnet50_facts():
    # the standard torchvision ResNet-50 from the same bottleneck blocks
    assert n_params(standard_resnet50()) == 25_557_032
    # OFA's space holds ResNet-50-D (3×3 three-conv stem), not the standard ResNet-50: depths 3, 4, 6, 3
    # with expand 0.25 and width 1.0 everywhere; 19,232 more parameters than ResNet-50 (the stem)
    d = RN.build(rn([2, 1, 2, 2, 1], 0.25, 2), "paper")
    assert n_params(d) == 25_576_264
    assert [len([b for b in d.blocks if isinstance(b, Bottleneck)])] == [16]
    assert [m.out_channels for m in d.modules() if isinstance(m, nn.Conv2d)][:3] == [32, 32, 64]
    # OFA ResNet-50 with the minimum depths is not ResNet-50: (2, 2, 4, 2) blocks
    small = RN.build(rn([2, 0, 0, 0, 0], 0.25, 2), "paper")
    assert len(small.blocks) == 10


def test_paper_mbv3_structure():
    net = MBV3.build(MAX_SPEC["ofa_mbv3"], "paper")
    blocks = list(net.blocks)
    assert len(blocks) == 21
    assert blocks[0].inverted_bottleneck is None and blocks[0].shortcut  # expand 1, 24 → 24
    assert [b.use_se for b in blocks[1:]] == [False] * 4 + [True] * 4 + [False] * 4 + [True] * 8
    acts = [type(b.depth_conv.act).__name__ for b in blocks[1:]]
    assert acts == ["ReLU"] * 8 + ["Hardswish"] * 12
    assert [b.point_linear.conv.out_channels for b in blocks[1::4]] == [32, 48, 96, 136, 192]
    assert net.final_expand_layer.conv.out_channels == 1152 and net.feature_mix_layer.conv.out_channels == 1536
    assert not hasattr(net.feature_mix_layer, "bn") and net.feature_mix_layer.conv.bias is None
    assert net.first_conv.conv.stride == (2, 2) and isinstance(net.first_conv.act, nn.Hardswish)


def test_paper_pn_structure():
    net = PN.build(MAX_SPEC["ofa_pn"], "paper")
    blocks = list(net.blocks)
    assert len(blocks) == 22 and not blocks[0].shortcut
    assert net.first_conv.conv.out_channels == 40 and blocks[0].point_linear.conv.out_channels == 24
    firsts = [blocks[1 + 4 * i] for i in range(5)] + [blocks[21]]
    assert [b.point_linear.conv.out_channels for b in firsts] == [32, 56, 104, 128, 248, 416]
    assert not any(b.use_se for b in blocks)
    assert all(isinstance(m, (nn.ReLU6,)) for m in net.modules() if isinstance(m, (nn.ReLU, nn.ReLU6, nn.Hardswish)))
    assert net.feature_mix_layer.conv.out_channels == 1664 and net.feature_mix_layer.bn.eps == 1e-3


@pytest.mark.parametrize("name", NAMES)
def test_paper_forward_at_smallest_resolution(name):
    space = get_space(name)
    spec = space.canonical(json.dumps({**json.loads(MIN_SPEC[name]), "r": 128}))
    net = space.build(spec, "paper").eval()
    with torch.no_grad():
        out = net(torch.randn(space.input_shape_of(spec, "paper")))
    assert out.shape == (1, 1000)


def _topology(net: nn.Module) -> list[tuple]:
    """What must agree between profiles: block kinds and choices, SE, activations, shortcuts."""
    out = []
    for m in net.modules():
        if isinstance(m, MBConvBlock):
            out.append(("mb", m.kernel, m.expand_ratio, m.use_se, m.shortcut, type(m.depth_conv.act).__name__))
        elif isinstance(m, Bottleneck):
            out.append(("bottleneck", type(m.downsample).__name__))
        elif isinstance(m, StemResidual):
            out.append(("stem_residual",))
    return out


@pytest.mark.parametrize("name", NAMES)
def test_zoo_network_keeps_topology_trains_small_and_traces(name):
    space = get_space(name)
    specs = [MAX_SPEC[name], MIN_SPEC[name]] + space.sample_many(2, seed=5)
    for spec in specs:
        zoo = space.build(spec, "zoo")
        assert _topology(zoo) == _topology(space.build(spec, "paper"))
    for spec in specs[:3]:
        zoo = space.build(spec, "zoo")
        zoo.train()
        x = torch.randn(2, *space.profile("zoo").input_shape)
        out = zoo(x)
        assert out.shape == (2, 10)
        out.sum().backward()
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # an oov node warns
            graph = from_module(zoo, space.input_shape_of(spec, "zoo"))
        assert graph.params == n_params(zoo)
        assert "oov" not in graph.op_names
        assert n_params(zoo) <= 400_000 and graph.flops <= 12_000_000  # zoo-sized: one CPU thread trains it in seconds
        traced = torch.fx.symbolic_trace(zoo.eval())
        with torch.no_grad():
            assert torch.allclose(traced(x), zoo(x))
