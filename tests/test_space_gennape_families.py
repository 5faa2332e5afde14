"""GENNAPE's new families (HiAML, Two-Path, Inception): specs, sampling, mutation, networks, graphs.

The parameter counts below are derived by hand from the authors' layer definitions
(Ascend-Research/GENNAPE ``model_src/search_space/{hiaml_two_path,inception}/*_tf.py``); neither the
paper nor the code publishes counts for specific architectures of these families.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from nape_utils.graphs import from_module
from nape_utils.spaces import get_space
from nape_utils.spaces.inception import path_widths, stage_widths

FAMILIES = ("hiaml", "two_path", "inception")
seeds = st.integers(0, 2**32 - 1)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def n_params(module) -> int:
    return sum(p.numel() for p in module.parameters())


def compact(obj) -> str:
    return json.dumps(obj, separators=(",", ":"))


HIAML_L20 = compact({"blocks": ["hiaml_l20"] * 4})
TWO_PATH_PLAIN = compact({"path1": [["conv3x3"], ["conv3x3"]], "path1_reduce_inds": [0, 1],
                          "path2": [["conv3x3"], ["conv3x3"]], "path2_reduce_inds": [0, 1]})


def inception_plain(**stage0) -> dict:
    stages = [{"n_blocks": 2, "paths": [{"ops": ["conv3x3"], "C_internal": c, "C_out": c}]} for c in stage_widths()]
    stages[0].update(stage0)
    return {"stages": stages}


INCEPTION_PLAIN = compact(inception_plain())


# -- exact sizes (hand-derived from the authors' layers) -----------------------------------------------
def test_hand_counted_paper_parameters():
    # HiAML: stem conv 3x3/2 (64) + BN; L20 = conv3x3-BN-ReLU → conv1x1-BN → ReLU; widths 64, 128, 128, 256
    stem = 3 * 64 * 9 + 128
    l20 = lambda ci, co: ci * co * 9 + 2 * co + co * co + 2 * co  # noqa: E731
    hiaml = stem + 2 * l20(64, 64) + l20(64, 128) + 3 * l20(128, 128) + l20(128, 256) + l20(256, 256) + 2570
    assert hiaml == 1_688_394
    assert n_params(get_space("hiaml").build(HIAML_L20)) == hiaml
    # Two-Path: stem 3→32, 32→32/2; each path conv3x3 32→64/2, 64→128/2; concat 256 → conv3x3 512; linear
    two_path = (3 * 32 * 9 + 64) + (32 * 32 * 9 + 64) + 2 * ((32 * 64 * 9 + 128) + (64 * 128 * 9 + 256)) \
        + (256 * 512 * 9 + 1024) + 5130
    assert two_path == 1_381_098
    assert n_params(get_space("two_path").build(TWO_PATH_PLAIN)) == two_path
    # Inception: every conv has a bias and BN; stem 32; 2 blocks of one conv3x3 path per stage; head conv 512
    conv = lambda ci, co, k=3: ci * co * k * k + co + 2 * co  # noqa: E731
    inception = conv(3, 32) + 2 * conv(32, 32) + conv(32, 64) + conv(64, 64) + conv(64, 128) + conv(128, 128) \
        + conv(128, 256) + conv(256, 256) + conv(256, 512) + 5130
    assert inception == 2_369_802
    assert n_params(get_space("inception").build(INCEPTION_PLAIN)) == inception


def test_inception_path_widths_follow_the_authors_split():
    assert stage_widths() == [32, 64, 128, 256]
    assert path_widths(32, 4) == [16, 16, 16, 16]  # 8 each, raised to the minimum of 16
    assert path_widths(64, 3) == [32, 16, 16] and path_widths(256, 3) == [128, 64, 64]
    assert path_widths(128, 2) == [64, 64]
    # stage 0 with 4 paths: the concat (64) is mapped back to the block width (32) by a 1x1 conv
    spec = compact(inception_plain(paths=[{"ops": ["conv3x3", "conv1x1"], "C_internal": 16, "C_out": 16}] * 4))
    net = get_space("inception").build(spec)
    first = net.blocks[0]
    assert len(first.paths) == 4 and first.c_proj is not None and first.c_proj[0].in_channels == 64
    assert first.residual and not net.blocks[2].residual  # stage 1 starts with a stride-2 block


def test_hiaml_has_the_authors_14_blocks_and_38416_networks():
    space = get_space("hiaml")
    specs = space.enumerate()
    assert len(specs) == 14**4 == len(set(specs))
    # short names, indices and a bare list (the authors' stored net_config) are accepted
    assert space.canonical('["a22","z",9,"hiaml_t31"]') == compact(
        {"blocks": ["hiaml_a22", "hiaml_z", "hiaml_src0", "hiaml_t31"]})


def test_two_path_accepts_the_authors_state_dict_and_orders_the_paths():
    space = get_space("two_path")
    spec = space.sample(np.random.default_rng(7))
    state = space.to_state_dict(spec)
    assert state["path1"][0]["op_types"] and space.canonical(json.dumps(state)) == spec
    swapped = json.loads(spec)
    for key in ("path{}", "path{}_reduce_inds"):
        swapped[key.format(1)], swapped[key.format(2)] = swapped[key.format(2)], swapped[key.format(1)]
    assert space.canonical(json.dumps(swapped)) == spec


def test_inception_accepts_the_authors_state_dict():
    space = get_space("inception")
    spec = space.sample(np.random.default_rng(11))
    state = space.to_state_dict(spec)
    assert [s["C_out"] for s in state["stages"]] == [32, 64, 128, 256]
    assert space.canonical(json.dumps(state)) == spec
    state["stages"][2]["stride"] = 1
    with pytest.raises(ValueError, match="stride is fixed at 2"):
        space.parse(json.dumps(state))


# -- spec strings ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", FAMILIES)
@settings(max_examples=30, deadline=None)
@given(seed=seeds)
def test_canonical_round_trip(name, seed):
    space = get_space(name)
    spec = space.sample(np.random.default_rng(seed))
    assert space.format(space.parse(spec)) == spec == space.canonical(spec)
    assert compact(json.loads(spec)) == spec
    assert space.canonical(json.dumps(json.loads(spec), indent=2)) == spec  # whitespace is not part of it


@pytest.mark.parametrize("name", FAMILIES)
def test_sample_is_deterministic_per_seed(name):
    space = get_space(name)
    a, b = space.sample_many(12, seed=5), space.sample_many(12, seed=5)
    assert a == b and len(set(a)) >= 10
    assert space.sample_many(12, seed=6) != a


@pytest.mark.parametrize("name", FAMILIES)
@settings(max_examples=20, deadline=None)
@given(seed=seeds)
def test_mutation_is_valid_different_and_local(name, seed):
    space = get_space(name)
    rng = np.random.default_rng(seed)
    spec = space.sample(rng)
    child = space.mutate(spec, rng)
    assert child != spec and space.is_valid(child) and space.canonical(child) == child
    a, b = json.loads(spec), json.loads(child)
    if name == "hiaml":
        assert sum(x != y for x, y in zip(a["blocks"], b["blocks"])) == 1
    elif name == "inception":
        assert sum(x != y for x, y in zip(a["stages"], b["stages"])) == 1
    else:  # one path changed (the canonical form may list the two in the other order)
        paths = lambda o: [(o[f"path{i}"], o[f"path{i}_reduce_inds"]) for i in (1, 2)]  # noqa: E731
        assert any(p in paths(a) for p in paths(b))


def _two_path(**change) -> str:
    obj = json.loads(TWO_PATH_PLAIN)
    obj.update(change)
    return json.dumps(obj)


def _inception(edit) -> str:
    obj = inception_plain()
    edit(obj["stages"])
    return json.dumps(obj)


def _set(stage, **kw):
    def edit(stages):
        stages[stage].update(kw)
    return edit


def _path(stage, **kw):
    def edit(stages):
        stages[stage]["paths"][0].update(kw)
    return edit


BAD = [
    ("hiaml", "blocks: z", "malformed JSON spec for hiaml"),
    ("hiaml", '{"blocks":["hiaml_z","hiaml_z","hiaml_q","hiaml_z"]}',
     "unknown hiaml block 'hiaml_q' at stage 2; allowed blocks: hiaml_z, hiaml_a22"),
    ("hiaml", '{"blocks":["z","z","z"]}', "exactly 4 blocks, one per stage, got 3"),
    ("hiaml", "[0,1,2,14]", "index 14 .* out of range 0-13"),
    ("hiaml", '{"block":["z","z","z","z"]}', "exactly one key, 'blocks'"),
    ("two_path", "{path1:", "malformed JSON spec for two_path"),
    ("two_path", _two_path(path1=[["conv7x7"], ["conv3x3"]]),
     "unknown two_path op 'conv7x7' in block 0 of path1; allowed ops: conv3x3, double3x3"),
    ("two_path", _two_path(path1=[["conv3x3"]] * 5), "path1 must have 2-4 blocks, got 5"),
    ("two_path", _two_path(path2=[["conv3x3"] * 4, ["conv3x3"]]), "block 0 of path2 must have 1-3 ops, got 4"),
    ("two_path", _two_path(path1=[["maxpool3x3"], ["conv3x3"]]), "block 0 of path1 needs at least one conv op"),
    ("two_path", _two_path(path1=[["conv3x3"], ["conv1x1", "conv3x3", "avgpool3x3"]]), "at most one supp op"),
    ("two_path", _two_path(path1_reduce_inds=[1, 1]), "exactly 2 distinct reduction block indices in 0..1"),
    ("two_path", _two_path(path2_reduce_inds=[0, 2]), "exactly 2 distinct reduction block indices"),
    ("two_path", '{"path1":[["conv3x3"],["conv3x3"]],"path1_reduce_inds":[0,1]}', "missing"),
    ("two_path", _two_path(path1=[{"op_names": ["conv3x3"], "op_types": ["supp"]}, ["conv3x3"]]),
     "op_types .* do not match"),
    ("inception", '{"stages": [', "malformed JSON spec for inception"),
    ("inception", _inception(lambda s: s.pop()), "exactly 4 stages, got 3"),
    ("inception", _inception(_set(1, n_blocks=7)), "stage 1: n_blocks must be an integer in 2-6"),
    ("inception", _inception(_set(0, paths=[{"ops": ["conv3x3"], "C_internal": 16, "C_out": 16}] * 5)),
     "a block has 1-4 paths, got 5"),
    ("inception", _inception(_path(2, ops=["conv7x7"])), "unknown inception op 'conv7x7'.*allowed ops: conv3x3"),
    ("inception", _inception(_path(0, ops=["conv3x3"] * 4)), "with 1 paths has at most 3 ops in total, got 4"),
    ("inception", _inception(_set(1, paths=[{"ops": ["conv3x3"], "C_internal": 32, "C_out": 32},
                                            {"ops": ["conv3x3", "conv1x1"], "C_internal": 16, "C_out": 16},
                                            {"ops": ["conv3x3", "conv1x1"], "C_internal": 16, "C_out": 16}])),
     "with 3 paths needs at least 2 ops per path"),
    ("inception", _inception(_path(3, C_out=128, C_internal=128)), "must split the stage width 256 as \\[256\\]"),
    ("inception", _inception(_path(1, ops=["conv3x3", "conv1x1"], C_internal=48)),
     "C_internal must be one of \\[32, 64, 128\\]"),
    ("inception", _inception(_path(1, ops=["conv3x3", "maxpool3x3"], C_internal=32)),
     "C_internal must be one of \\[64\\] \\(a path with fewer than two width-changing ops"),
    ("inception", _inception(_path(0, ops=["avgpool3x3"])), "needs at least one conv op"),
    ("inception", _inception(_path(0, ops=["conv1x1", "conv3x3", "maxpool3x3"])), "at most one supp op"),
]


@pytest.mark.parametrize("name, bad, rule", BAD, ids=[f"{n}-{i}" for i, (n, _, _) in enumerate(BAD)])
def test_bad_specs_name_the_rule(name, bad, rule):
    space = get_space(name)
    with pytest.raises(ValueError, match=rule):
        space.parse(bad)
    assert not space.is_valid(bad)


@pytest.mark.parametrize("name", FAMILIES)
def test_unknown_profile(name):
    space = get_space(name)
    with pytest.raises(ValueError, match="unknown profile"):
        space.build(space.sample(np.random.default_rng(0)), "huge")


# -- networks and graphs ---------------------------------------------------------------------------------
ZOO_SEEDS = {"hiaml": (0, 1, 2), "two_path": (0, 1, 2), "inception": (0, 1)}


@pytest.mark.parametrize("name, seed", [(n, s) for n in FAMILIES for s in ZOO_SEEDS[n]])
def test_zoo_network_runs_and_traces_without_oov(name, seed):
    space = get_space(name)
    spec = space.sample(np.random.default_rng(seed))
    net = space.build(spec, "zoo")
    assert net(torch.randn(2, *space.input_shape("zoo")[1:])).shape == (2, 10)
    graph = from_module(net.eval(), space.input_shape("zoo"))
    graph.check()
    assert "oov" not in graph.op_names
    assert graph.params == n_params(net)
    pool = graph.op_names.index("global_pool")
    # the reductions leave at least 2x2 (1x1 for inception, whose zoo stem has stride 2 to stay cheap)
    assert graph.feature("h_in")[pool] >= (1 if name == "inception" else 2)
    # inception's zoo widths are the paper's ÷4 (÷8 left 2-channel paths that barely learned): more weights
    assert graph.flops <= 6e6 and n_params(net) <= (600_000 if name == "inception" else 250_000)


def test_residual_adds_follow_the_authors_rules():
    tp = get_space("two_path")
    spec = tp.sample(np.random.default_rng(3))
    obj = json.loads(spec)
    graph = from_module(tp.build(spec, "zoo").eval(), tp.input_shape("zoo"))
    # every block that keeps its shape adds its input; 2 blocks per path reduce
    assert graph.op_counts().get("add", 0) == len(obj["path1"]) + len(obj["path2"]) - 4
    inc = get_space("inception")
    graph = from_module(inc.build(INCEPTION_PLAIN, "zoo").eval(), inc.input_shape("zoo"))
    assert graph.op_counts().get("add", 0) == 8 - 3  # all but the first block of stages 1-3


@pytest.mark.parametrize("name", FAMILIES)
def test_paper_network_runs_on_cifar_images(name):
    space = get_space(name)
    spec = space.sample(np.random.default_rng(4))
    net = space.build(spec, "paper").eval()
    with torch.no_grad():
        assert net(torch.randn(1, 3, 32, 32)).shape == (1, 10)
