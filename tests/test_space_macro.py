"""NAS-Bench-Macro: specs, the collapse of keys, sampling, mutation, networks exact to the benchmark's
``params`` and ``flops`` (every record of the development file), the loader and its errors."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from nape_utils.data import download
from nape_utils.data.benchmarks import BenchmarkFormatError, load_benchmark
from nape_utils.graphs import from_module, graph_of
from nape_utils.spaces import get_space

SPACE = get_space("macro")
DEV_FILE = "macro/nas-bench-macro_cifar10_dev.json"


def n_params(module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def macs(module, shape) -> int:
    """Multiply-accumulates: torch's FlopCounterMode counts 2 FLOPs per MAC (convs and linear)."""
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        module.eval()(torch.randn(shape))
    flops = counter.get_total_flops()
    assert flops % 2 == 0
    return flops // 2


@pytest.fixture(scope="module")
def dev_table(shared_data):
    return load_benchmark("nasbench-macro", shared_data / DEV_FILE)


# -- exactness -------------------------------------------------------------------------------------------
def test_hand_counted_all_identity_network():
    # stem conv3x3 3→32 + BN; three 1x1 stride-2 downsamples + BN (32→64→128→256); head 1x1 to 1280 + BN; linear
    params = (27 * 32 + 64) + (32 * 64 + 128) + (64 * 128 + 256) + (128 * 256 + 512) + (256 * 1280 + 2560) + 12810
    assert params == 387_882 and n_params(SPACE.build("00000000")) == params
    mac = 27 * 32 * 32 * 32 + 32 * 64 * 16 * 16 + 64 * 128 * 8 * 8 + 128 * 256 * 4 * 4 + 256 * 1280 * 4 * 4 + 12800
    assert macs(SPACE.build("00000000"), SPACE.input_shape("paper")) == mac


def test_paper_matches_params_and_flops_of_every_dev_record(dev_table):
    assert len(dev_table) == 300
    shape = SPACE.input_shape("paper")
    wrong = []
    for spec, params, flops in zip(dev_table["spec"], dev_table["params"], dev_table["flops"]):
        net = SPACE.build(spec, "paper")
        got = (n_params(net), macs(net, shape))
        if got != (params, flops):
            wrong.append((spec, got, (params, flops)))
    assert not wrong, f"{len(wrong)} of 300 differ, e.g. {wrong[:3]}"


def test_graph_counts_equal_the_file(dev_table):
    for _, row in dev_table.head(3).iterrows():
        graph = graph_of(SPACE, row["spec"], "paper")
        graph.check()
        assert graph.params == row["params"] and graph.flops == 2 * row["flops"]


# -- network layout ----------------------------------------------------------------------------------------
def test_identity_opening_a_stage_is_a_strided_projection_and_elsewhere_nothing():
    net = SPACE.build("00000000")
    assert len(net.features) == 3  # the three stage openers; the other identities add no module
    for block, (c_in, c_out) in zip(net.features, [(32, 64), (64, 128), (128, 256)]):
        conv, bn = block
        assert (conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride) == (c_in, c_out, (1, 1), (2, 2))
        assert isinstance(bn, torch.nn.BatchNorm2d) and conv.bias is None


def test_inverted_residuals_have_the_reference_widths_and_shortcuts():
    net = SPACE.build("21200000")
    first, second = net.features[0], net.features[1]
    assert [m.out_channels for m in first.conv if isinstance(m, torch.nn.Conv2d)] == [192, 192, 64]
    assert first.conv[3].kernel_size == (5, 5) and first.conv[3].stride == (2, 2) and first.conv[3].groups == 192
    assert not first.use_shortcut and second.use_shortcut
    assert [m.out_channels for m in second.conv if isinstance(m, torch.nn.Conv2d)] == [192, 192, 64]
    assert not any(isinstance(m, (torch.nn.ReLU6, torch.nn.Hardswish)) for m in net.modules())


def test_collapsed_keys_build_the_same_network():
    assert SPACE.trained_key("01201120") == "01210120"
    assert SPACE.trained_key("00000102") == "00000120" and SPACE.trained_key("22102121") == "22120121"
    a, b = (graph_of(SPACE, s, "zoo") for s in ("01201120", "01210120"))
    assert a.equals(b), a.difference(b)
    assert SPACE.flags("01201120") == {"duplicate_key": True} and SPACE.flags("01210120") == {"duplicate_key": False}
    keys = SPACE.enumerate()
    assert len(keys) == 3**8 == len(set(keys)) and keys[0] == "00000000" and keys[-1] == "22222222"
    assert len({SPACE.trained_key(k) for k in keys}) == 9 * 21 * 21 == 3969


def test_zoo_profile_is_a_quarter_wide_on_16px():
    net = SPACE.build("22222222", "zoo")
    out = net(torch.randn(2, *SPACE.profile("zoo").input_shape))
    assert out.shape == (2, 10) and SPACE.profile("zoo").memory_format == torch.channels_last
    assert net.stem[0].out_channels == 8 and net.out[0].out_channels == 320
    assert net.features[-1].conv[-1].num_features == 64
    graph = from_module(net, SPACE.input_shape("zoo"))
    assert graph.params == n_params(net)


# -- spec strings ------------------------------------------------------------------------------------------
def test_parse_format_round_trip_and_the_list_form():
    for spec in ("01201120", "00000000", "22222222"):
        assert SPACE.format(SPACE.parse(spec)) == spec == SPACE.canonical(spec)
    assert SPACE.canonical(" 01201120\n") == "01201120"
    assert SPACE.canonical("[0, 1, 2, 0, 1, 1, 2, 0]") == "01201120"


@pytest.mark.parametrize("bad, message", [
    ("0120112", "exactly 8 layers"), ("012011200", "exactly 8 layers"), ("01231120", "layer 3 .* is 3"),
    ("0120x120", "digits 0-2 only"), ("", "digits 0-2 only"), ("[0, 1, 2]", "exactly 8 layers"),
    ("[0, 1, 2, 0, 1, 1, 2, 0.5]", "list of integers"), ("[0, 1,", "malformed JSON"),
    ("{\"arch\": \"01201120\"}", "digits 0-2 only"), ("０１２０１１２０", "digits 0-2 only"),
])
def test_bad_specs_say_what_is_wrong(bad, message):
    with pytest.raises(ValueError, match=message):
        SPACE.parse(bad)
    assert not SPACE.is_valid(bad)


def test_non_string_spec_is_refused():
    with pytest.raises(ValueError, match="must be a string"):
        SPACE.parse(1201120)


# -- search ------------------------------------------------------------------------------------------------
def test_sample_is_uniform_over_the_keys_and_mutate_changes_one_layer():
    rng = np.random.default_rng(0)
    specs = [SPACE.sample(rng) for _ in range(3000)]
    assert all(SPACE.canonical(s) == s for s in specs)
    counts = np.bincount([int(ch) for s in specs for ch in s], minlength=3) / (8 * len(specs))
    assert np.allclose(counts, 1 / 3, atol=0.02)
    for spec in specs[:200]:
        child = SPACE.mutate(spec, rng)
        assert sum(a != b for a, b in zip(spec, child)) == 1
        assert SPACE.trained_key(child) != SPACE.trained_key(spec)


# -- the loader --------------------------------------------------------------------------------------------
def test_loader_reads_the_dev_file(dev_table):
    assert list(dev_table.columns) == ["space", "spec", "dataset", "key", "val_accuracy", "test_acc_0", "test_acc_1",
                                       "test_acc_2", "std", "params", "flops", "trained_key"]
    assert set(dev_table["space"]) == {"macro"} and set(dev_table["dataset"]) == {"cifar10"}
    assert (dev_table["spec"] == dev_table["key"]).all() and dev_table["key"].is_unique
    first = dev_table.iloc[0]
    assert first["key"] == "00000102" and first["trained_key"] == "00000120"
    assert first["val_accuracy"] == pytest.approx(80.7633285522461) and first["params"] == 1_339_050
    accs = dev_table[["test_acc_0", "test_acc_1", "test_acc_2"]].to_numpy()
    np.testing.assert_allclose(dev_table["val_accuracy"], accs.mean(axis=1), rtol=0, atol=1e-9)
    np.testing.assert_allclose(dev_table["std"], accs.std(axis=1), rtol=0, atol=1e-9)
    # keys that collapse to one network share its record
    metrics = ["val_accuracy", "test_acc_0", "test_acc_1", "test_acc_2", "std", "params", "flops"]
    shared = dev_table.groupby("trained_key").filter(lambda g: len(g) > 1)
    assert len(shared) >= 2 and (shared.groupby("trained_key")[metrics].nunique() == 1).all().all()


def test_downloader_pins_the_full_file():
    entry = download.REGISTRY["nasbench-macro"]
    assert entry.filename == "nas-bench-macro_cifar10.json" and entry.url.endswith("/data/nas-bench-macro_cifar10.json")
    assert "61a2bfc2ca0dce04d0997e6cf498047c27d6acf2" in entry.url
    assert entry.sha256 == "686dee8363cc21cca8c1f321ad5749454f2d9b9ca5972682e137e539bc522297"


def _write(tmp_path, obj) -> str:
    path = tmp_path / "nas-bench-macro_cifar10.json"
    path.write_text(json.dumps(obj))
    return str(tmp_path)


RECORD = {"test_acc": [90.0, 91.0, 92.0], "mean_acc": 91.0, "std": 0.8, "params": 1, "flops": 2}


def test_loader_finds_the_file_in_a_folder(tmp_path):
    table = load_benchmark("nasbench-macro", _write(tmp_path, {"01201120": RECORD}))
    assert table["spec"].tolist() == ["01201120"] and table["trained_key"].tolist() == ["01210120"]


@pytest.mark.parametrize("obj, message", [
    ([RECORD], "unexpected JSON layout"),
    ({"0120112": RECORD}, "not a macro architecture .*exactly 8 layers"),
    ({"01201120": {k: v for k, v in RECORD.items() if k != "std"}}, r"a record needs .*'std'"),
    ({"01201120": {**RECORD, "test_acc": "90"}}, "test_acc must be a list"),
])
def test_loader_format_errors(tmp_path, obj, message):
    with pytest.raises(BenchmarkFormatError, match=message):
        load_benchmark("nasbench-macro", _write(tmp_path, obj))


def test_loader_names_the_missing_file_and_how_to_get_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="nape data fetch nasbench-macro"):
        load_benchmark("nasbench-macro", tmp_path)
