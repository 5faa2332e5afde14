"""TransNAS-Bench-101 micro and macro: spec strings, enumeration, sampling, networks and parameter counts."""
from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from nape_utils.data.benchmarks import TNB101_TASKS, load_benchmark
from nape_utils.graphs import from_module
from nape_utils.spaces import Profile, get_space

MICRO = get_space("tnb101_micro")
MACRO = get_space("tnb101_macro")


def n_params(module) -> int:
    return sum(p.numel() for p in module.parameters())


# -- enumeration -------------------------------------------------------------------------------------------
def test_enumerate_gives_the_benchmarks_counts():
    micro, macro = MICRO.enumerate(), MACRO.enumerate()
    assert len(micro) == len(set(micro)) == 4_096  # the API's 'micro' search space
    assert len(macro) == len(set(macro)) == 3_256  # the API's 'macro' search space
    assert all(MICRO.canonical(s) == s for s in micro[::97]) and all(MACRO.canonical(s) == s for s in macro[::97])
    assert {len(s.split("-")[1]) for s in macro} == {4, 5, 6}


# -- spec strings ------------------------------------------------------------------------------------------
def test_micro_forms_name_the_same_cell():
    # the README's example: node1 = skip(n0); node2 = none(n0) + conv1x1(n1); node3 = conv3x3 of n0, n1, n2
    spec = "64-41414-1_02_333"
    assert MICRO.parse(spec) == ("skip_connect", "none", "nor_conv_1x1", "nor_conv_3x3", "nor_conv_3x3",
                                 "nor_conv_3x3")
    assert MICRO.canonical("(1, 0, 2, 3, 3, 3)") == spec  # NASLib: '64-41414-{}_{}{}_{}{}{}'.format(*t)
    assert MICRO.canonical("[1, 0, 2, 3, 3, 3]") == spec
    nb201 = "|skip_connect~0|+|none~0|nor_conv_1x1~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"
    assert MICRO.to_nb201(spec) == nb201 and MICRO.canonical(nb201) == spec
    assert MICRO.to_naslib(spec) == "(1, 0, 2, 3, 3, 3)"


def test_macro_forms_name_the_same_network():
    spec = "64-1242-basic"
    assert MACRO.parse(spec) == (1, 2, 4, 2)
    for form in ("(1, 2, 4, 2)", "(1, 2, 4, 2, 0, 0)", "[1, 2, 4, 2]", " 64-1242-basic "):
        assert MACRO.canonical(form) == spec
    assert MACRO.to_naslib(spec) == "(1, 2, 4, 2)" and MACRO.to_naslib(spec, pad=True) == "(1, 2, 4, 2, 0, 0)"
    assert MACRO.canonical("(4, 1, 3, 3, 3, 1)") == "64-413331-basic"


@settings(max_examples=20, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_canonical_round_trip(seed):
    rng = np.random.default_rng(seed)
    for space in (MICRO, MACRO):
        spec = space.sample(rng)
        assert space.format(space.parse(spec)) == spec and space.canonical(spec) == spec
        assert space.canonical(space.to_naslib(spec)) == spec
    assert MACRO.canonical(MACRO.to_naslib(spec, pad=True)) == spec
    micro = MICRO.sample(rng)
    assert MICRO.canonical(MICRO.to_nb201(micro)) == micro


@pytest.mark.parametrize("space, bad, rule", [
    (MICRO, "64-41414-1_02_33", "malformed TransNAS-Bench-101 micro spec"),
    (MICRO, "64-41414-1_02_334", "micro op codes are 0-3"),
    (MICRO, "32-41414-1_02_333", "base width is 64"),
    (MICRO, "64-4141-1_02_333", "skeleton is fixed to 41414"),
    (MICRO, "(1, 0, 2, 3, 3)", "six op ids in 0-3"),
    (MICRO, "(1, 0, 2, 3, 3, 4)", "six op ids in 0-3"),
    (MICRO, "(a, b)", "malformed NASLib"),
    (MICRO, "|avg_pool_3x3~0|+|none~0|none~1|+|none~0|none~1|none~2|", "'avg_pool_3x3' is not in the"),
    (MICRO, "|none~0|+|none~0|", "not a TransNAS-Bench-101 micro cell"),
    (MACRO, "64-123-basic", "4-6 modules"),
    (MACRO, "64-1234567-basic", "4-6 modules"),
    (MACRO, "64-1250-basic", "module codes are 1-4"),
    (MACRO, "64-1212-basic", "downsamples 1-4 times"),
    (MACRO, "64-1313-basic", "doubles its channels 1-3 times"),
    (MACRO, "64-224422-basic", "doubles its channels 1-3 times"),
    (MACRO, "64-33333-basic", "downsamples 1-4 times"),
    (MACRO, "64-3333-basic", "doubles its channels 1-3 times"),
    (MACRO, "64-1234-3_33_333", "ResNet basic block"),
    (MACRO, "16-1234-basic", "base width is 64"),
    (MACRO, "(1, 2, 0, 4)", "module codes are 1-4"),
    (MACRO, "(1, 2)", "4-6 modules"),
    (MACRO, "1234", "malformed TransNAS-Bench-101 macro spec"),
])
def test_bad_specs_name_the_rule(space, bad, rule):
    with pytest.raises(ValueError, match=rule.replace("(", r"\(").replace("|", r"\|")):
        space.parse(bad)
    assert not space.is_valid(bad)


def test_micro_flags_follow_nb201():
    assert MICRO.flags("64-41414-0_00_000") == {"output_unreachable": True, "dead_ops": False}
    assert MICRO.flags("64-41414-3_00_100") == {"output_unreachable": False, "dead_ops": True}


# -- search ------------------------------------------------------------------------------------------------
def test_sample_is_deterministic_and_covers_the_space():
    for space in (MICRO, MACRO):
        a, b = space.sample_many(30, seed=5), space.sample_many(30, seed=5)
        assert a == b and len(set(a)) > 25 and all(space.is_valid(s) for s in a)
        assert space.sample_many(30, seed=6) != a


def test_mutate_is_valid_and_local():
    rng = np.random.default_rng(1)
    for spec in MICRO.sample_many(20, seed=2):
        child = MICRO.mutate(spec, rng)
        assert child != spec and MICRO.canonical(child) == child
        assert sum(x != y for x, y in zip(MICRO.parse(child), MICRO.parse(spec))) == 1
    for spec in MACRO.sample_many(40, seed=2):
        child = MACRO.mutate(spec, rng)
        assert child != spec and MACRO.canonical(child) == child and child in MACRO.neighbours(spec)
        a, b = MACRO.parse(spec), MACRO.parse(child)
        if len(a) == len(b):
            assert sum(x != y for x, y in zip(a, b)) == 1
        else:
            assert abs(len(a) - len(b)) == 1
    assert all(MACRO.neighbours(s) for s in MACRO.enumerate()[::13])


# -- networks ----------------------------------------------------------------------------------------------
# NASLib's zero-cost files (automl/NASLib naslib/data/zc_transbench101_{micro,macro}.json, commit e5a821c)
# record `params` in millions to 6 decimals, i.e. to the parameter, of the benchmark's encoder plus the
# linear decoder built by NASLib's copy of the benchmark code, with NASLib's class counts:
# class_scene 63, class_object 100 (the benchmark's own final5k configs use 47 and 75).
PUBLISHED_MICRO = {
    ("(1, 0, 0, 2, 1, 0)", 63): 0.910687, ("(1, 0, 0, 2, 2, 3)", 63): 9.440607,
    ("(0, 1, 1, 2, 3, 3)", 63): 16.256351, ("(1, 1, 0, 3, 1, 2)", 63): 7.381087,
    ("(3, 1, 0, 0, 2, 2)", 63): 8.064351, ("(2, 1, 3, 1, 2, 1)", 63): 9.614431,
    ("(0, 1, 3, 1, 1, 1)", 63): 8.072287, ("(1, 3, 3, 2, 2, 3)", 63): 23.237983,
    ("(0, 1, 2, 0, 1, 0)", 63): 1.082719, ("(3, 2, 2, 3, 2, 3)", 63): 22.372959,
    ("(3, 0, 3, 1, 2, 1)", 100): 14.899076, ("(3, 2, 2, 3, 2, 3)", 100): 22.39194,
    ("(0, 2, 1, 0, 2, 1)", 100): 1.612932, ("(0, 3, 1, 3, 3, 3)", 100): 27.66554,
    ("(3, 0, 0, 0, 2, 2)", 100): 7.909508, ("(2, 2, 2, 2, 0, 3)", 100): 10.655876,
}
PUBLISHED_MACRO = {
    ("(1, 2, 4, 2, 0, 0)", 63): 11.218783, ("(2, 1, 2, 4, 0, 0)", 63): 11.661663,
    ("(1, 2, 1, 1, 1, 3)", 63): 3.081183, ("(1, 1, 2, 4, 0, 0)", 63): 2.956895,
    ("(4, 1, 3, 3, 3, 1)", 63): 3.557343, ("(3, 4, 4, 3, 0, 0)", 63): 5.240543,
    ("(4, 4, 1, 1, 3, 3)", 63): 12.238431, ("(1, 3, 3, 3, 4, 1)", 63): 1.748575,
    ("(3, 4, 4, 2, 1, 0)", 63): 20.664287, ("(3, 3, 2, 2, 4, 1)", 63): 20.816479,
    ("(1, 3, 3, 1, 4, 1)", 100): 1.749124, ("(1, 2, 2, 1, 3, 0)", 100): 7.607172,
    ("(2, 1, 3, 1, 1, 2)", 100): 5.0505, ("(4, 4, 3, 1, 2, 3)", 100): 25.58298,
    ("(4, 4, 2, 1, 1, 0)", 100): 29.972356, ("(3, 3, 3, 3, 2, 1)", 100): 1.757572,
}


@pytest.mark.parametrize("space, published", [(MICRO, PUBLISHED_MICRO), (MACRO, PUBLISHED_MACRO)])
def test_parameter_counts_match_naslibs_published_counts(space, published):
    paper = space.profile("paper")
    for (key, classes), millions in published.items():
        profile = Profile(f"paper-{classes}", paper.input_shape, classes, paper.options)
        assert round(n_params(space.build(key, profile)) / 1e6, 6) == millions, (key, classes)


def test_paper_profile_is_the_benchmarks_class_object_network():
    for space in (MICRO, MACRO):
        p = space.profile("paper")
        assert p.input_shape == (3, 256, 256) and p.num_classes == 75 and p["task"] == "class_object"
        assert p["base_channels"] == 64 and p["blocks_per_module"] == 2 and p["stem_strides"] == (2, 2)
    net = MICRO.build("64-41414-3_33_333")
    # 256 → stem /4 → 64 → three reductions → 8; widths 64 → 128 → 256 → 512
    assert net.classifier.in_features == 512 and len(net.layers) == 5 and len(net.layers[0]) == 2
    assert MACRO.build("64-1242-basic").classifier.in_features == 512
    assert MACRO.build("64-1321-basic").classifier.in_features == 128


def test_paper_forward_at_the_benchmarks_input_size():
    """One 256×256 image through a micro and a macro network (each takes well under a second on CPU)."""
    x = torch.randn(1, *MICRO.profile("paper").input_shape)
    with torch.no_grad():
        for space, spec in ((MICRO, "64-41414-1_02_333"), (MACRO, "64-1242-basic")):
            assert space.build(spec).eval()(x).shape == (1, 75)


ZOO_CASES = [(MICRO, "64-41414-3_33_333"), (MICRO, "64-41414-1_02_303"), (MICRO, "64-41414-0_00_000"),
             (MACRO, "64-1242-basic"), (MACRO, "64-222333-basic"), (MACRO, "64-44431-basic")]


@pytest.mark.parametrize("space, spec", ZOO_CASES)
def test_zoo_network_forward_and_graph(space, spec):
    net = space.build(spec, "zoo")
    assert net(torch.randn(2, *space.input_shape("zoo")[1:])).shape == (2, 10)
    graph = from_module(net.eval(), space.input_shape("zoo"))
    graph.check()
    assert "oov" not in graph.op_names and graph.params == n_params(net)
    assert n_params(net) <= 80_000 and graph.flops <= 8e6


def test_zoo_sizes_of_typical_networks():
    """Micro: every cell ≤ 2 MFLOPs; macro: most networks (98 % of all 3,256) are."""
    for space in (MICRO, MACRO):
        flops = []
        for spec in space.sample_many(8, seed=11):
            net = space.build(spec, "zoo").eval()
            flops.append(from_module(net, space.input_shape("zoo")).flops)
            assert n_params(net) <= 80_000
        assert (max(flops) if space is MICRO else np.median(flops)) <= 2e6
    # the micro skeleton's three reductions leave 2×2 before the pool at the zoo size
    graph = from_module(MICRO.build("64-41414-3_33_333", "zoo").eval(), MICRO.input_shape("zoo"))
    assert graph.flops <= 2e6 and graph.feature("h_in")[graph.op_names.index("global_pool")] == 2


def test_unknown_profile_is_refused():
    with pytest.raises(ValueError, match="unknown profile"):
        MICRO.build("64-41414-1_02_333", "huge")


# -- the loaders' keys ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind, space, archs", [
    ("micro", MICRO, ["(1, 2, 3, 0, 1, 2)", "(3, 3, 3, 3, 3, 3)", "(0, 0, 0, 0, 0, 0)"]),
    ("macro", MACRO, ["(1, 2, 3, 4)", "(4, 3, 2, 1, 1, 2)", "(3, 1, 1, 4, 2)"]),
])
def test_benchmark_loader_keys_parse(tmp_path, kind, space, archs):
    """NASLib's zen-score zip layout (what ``load_benchmark('tnb101-…')`` reads): every key it returns is
    a spec of this space."""
    name = {"micro": "all_benchmarks_zen.zip", "macro": "tnb101_macro_zen.zip"}[kind]
    with zipfile.ZipFile(tmp_path / name, "w") as zf:
        for task in TNB101_TASKS:
            records = [{"idx": str(i), "arch": a, "zen": {"score": 1.0, "time": 0.1}, "val_accuracy": 50.0}
                       for i, a in enumerate(archs)]
            zf.writestr(f"zen/benchmark--transbench101_{kind}--{task}--0.json", json.dumps(records))
    table = load_benchmark(f"tnb101-{kind}", tmp_path)
    assert set(table["space"]) == {space.name}
    canon = {space.canonical(s) for s in table["spec"]} | {space.canonical(k) for k in table["key"]}
    assert canon == {space.canonical(a) for a in archs}
