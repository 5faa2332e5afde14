"""OFA-MobileNetV3 at width 1.0 (profile ``paper_w1.0``) and DyNAS-T's search logs (``ofa-mbv3-dynast``).

The exactness check: DyNAS-T measured its sub-networks (Nov 2022, ``ofa_interface.validate_macs_params``)
with fvcore's ``FlopCountAnalysis`` on OFA's ``get_active_subnet()`` after ``rm_bn_from_net`` at a
1×3×224×224 input (one per multiply-add of convs and linear layers; biases, BatchNorm, activations,
SE's pool and product count nothing) and summed every parameter (BatchNorm's included). At
``paper_w1.0`` nape's parameter count and half its FLOPs (``FlopCounterMode``, 2 per multiply-add, same
ops) must equal them for every row.
"""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import pandas as pd
import pytest
import torch
import torch.nn as nn
from torch.utils.flop_counter import FlopCounterMode

from nape_utils.data import benchmarks, download
from nape_utils.data.benchmarks import BenchmarkFormatError, load_benchmark
from nape_utils.graphs import graph_of
from nape_utils.spaces import get_space
from nape_utils.spaces.ofa_common import make_divisible
from nape_utils.spaces.ofa_mbv3 import widths_of

MBV3 = get_space("ofa_mbv3")
DEV_FILE = "mbnv3w10_linasga_acc.csv"
RUNS = ("evoga_acc", "evonsga2_acc_macs", "evounsga3_acc_macs_params", "linasga_acc", "linasnsga2_acc_macs")
# the first row of the development file
ROW0 = ("{'wid': None, 'ks': [7, 3, 3, 7, 5, 3, 3, 3, 7, 3, 7, 7, 7, 3, 7, 5, 3, 3, 3, 3], "
        "'e': [3, 6, 6, 3, 6, 3, 6, 6, 6, 6, 4, 3, 4, 6, 4, 3, 3, 6, 4, 4], 'd': [3, 2, 2, 3, 2], 'r': [224]}")
HEADER = "Sub-network,Date,Model Parameters,Latency (ms),MACs,Top-1 Acc (%)\n"


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def flops(net: nn.Module, shape) -> int:
    """nape's FLOPs: ``FlopCounterMode``'s count (2 per multiply-add)."""
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        net.eval()(torch.zeros(shape))
    return counter.get_total_flops()


def fvcore_macs(net: nn.Module, shape) -> int:
    """fvcore's count of DyNAS-T's network, written out: per conv, output elements × input channels per
    group × kernel area; per linear layer, input × output features; nothing else (a third of the cost of
    ``FlopCounterMode``, which agrees with it on these networks: see the test below)."""
    total = 0

    def conv(m: nn.Conv2d, inputs, out):
        nonlocal total
        total += out.numel() * (m.in_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1]

    def linear(m: nn.Linear, inputs, out):
        nonlocal total
        total += out.numel() * m.in_features

    hooks = [m.register_forward_hook(conv if isinstance(m, nn.Conv2d) else linear)
             for m in net.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    with torch.no_grad():
        net.eval()(torch.zeros(shape))
    for hook in hooks:
        hook.remove()
    return total


def dev_file(shared_data: Path) -> Path:
    return shared_data / "ofa_mbv3" / DEV_FILE


def row(sub: str, params=4536768, macs=244945104, acc=74.69, date="2022-11-01 05:40:08.389353") -> str:
    return f'"{sub}",{date},{params},0,{macs},{acc}\n'


# -- the width-1.0 profile -------------------------------------------------------------------------------
def test_profiles_and_widths():
    assert set(MBV3.profiles) == {"paper", "paper_w1.0", "zoo"}
    assert widths_of(MBV3.profile("paper_w1.0")) == [16, 16, 24, 40, 80, 112, 160, 960, 1280]
    assert widths_of(MBV3.profile("paper")) == [24, 24, 32, 48, 96, 136, 192, 1152, 1536]  # unchanged
    # the zoo labels were built at this profile: it must not move
    zoo = MBV3.profile("zoo")
    assert zoo.options == {"base_widths": (16, 16, 16, 16, 20, 24, 32, 96, 128), "width_mult": 1.0, "divisor": 1,
                           "first_stride": 1, "stage_strides": (2, 2, 2, 1, 1), "bn_eps": 1e-5,
                           "resolution_scale": 16 / 224, "channels_last": True, "zero_init_residual": True}
    assert zoo.input_shape == (3, 16, 16) and zoo.num_classes == 10
    # every choice still gives its own channels at width 1.0, so the canonical strings stay one per network
    for c_in in widths_of(MBV3.profile("paper_w1.0"))[1:-2]:
        assert len({make_divisible(round(c_in * e), 8) for e in (3, 4, 6)}) == 3


def test_w10_network_structure():
    spec = json.dumps({"ks": [7] * 20, "e": [6] * 20, "d": [4] * 5})
    net = MBV3.build(spec, "paper_w1.0")
    blocks = list(net.blocks)
    assert net.first_conv.conv.out_channels == 16 and net.first_conv.conv.stride == (2, 2)
    assert blocks[0].inverted_bottleneck is None and blocks[0].shortcut  # expand 1, 16 → 16
    assert [b.point_linear.conv.out_channels for b in blocks[1::4]] == [24, 40, 80, 112, 160]
    assert [b.use_se for b in blocks[1:]] == [False] * 4 + [True] * 4 + [False] * 4 + [True] * 8
    assert [type(b.depth_conv.act).__name__ for b in blocks[1:]] == ["ReLU"] * 8 + ["Hardswish"] * 12
    # SE middle width make_divisible(mid // 4, 8): stage 1's first block has mid 24 * 6 = 144 → 36 → 40
    assert blocks[5].inverted_bottleneck.conv.out_channels == 144
    assert blocks[5].depth_conv.se.reduce.out_channels == 40
    assert net.final_expand_layer.conv.out_channels == 960 and net.feature_mix_layer.conv.out_channels == 1280
    assert net.classifier.in_features == 1280 and net.classifier.out_features == 1000
    assert MBV3.input_shape_of(MBV3.canonical(spec), "paper_w1.0") == (1, 3, 224, 224)
    # the same spec at width 1.2 is a different, larger network
    assert n_params(net) < n_params(MBV3.build(spec, "paper"))


def test_dynast_dict_parses_into_the_canonical_spec():
    spec = MBV3.canonical(benchmarks._dynast_spec(ROW0, "test"))
    cfg = MBV3.parse(spec)
    assert cfg.r == 224 and cfg.d == (3, 2, 2, 3, 2)
    # only the first d[i] of each stage's four slots are used; the others are 0 in the canonical string
    assert cfg.ks == (7, 3, 3, 0, 5, 3, 0, 0, 7, 3, 0, 0, 7, 3, 7, 0, 3, 3, 0, 0)
    assert cfg.e == (3, 6, 6, 0, 6, 3, 0, 0, 6, 6, 0, 0, 4, 6, 4, 0, 3, 6, 0, 0)
    other_unused = ROW0.replace("'ks': [7, 3, 3, 7,", "'ks': [7, 3, 3, 5,")
    assert benchmarks._dynast_spec(other_unused, "test") == spec


# -- exactness on every development row --------------------------------------------------------------------
def test_every_dev_row_has_dynast_params_and_macs(shared_data):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a file given alone is read without a warning
        table = load_benchmark("ofa-mbv3-dynast", dev_file(shared_data))
    assert len(table) == 361 and set(table["profile"]) == {"paper_w1.0"}
    params_ok = macs_ok = 0
    for spec, params, macs in zip(table["spec"], table["Model Parameters"], table["MACs"]):
        shape = MBV3.input_shape_of(spec, "paper_w1.0")
        assert shape == (1, 3, 224, 224)  # DyNAS-T measured at 224 whatever r; every row has r = 224
        net = MBV3.build(spec, "paper_w1.0")
        params_ok += n_params(net) == params
        macs_ok += fvcore_macs(net, shape) == macs
    assert (params_ok, macs_ok) == (361, 361)


def test_nape_flops_are_twice_dynast_macs(shared_data):
    table = load_benchmark("ofa-mbv3-dynast", dev_file(shared_data))
    for spec, macs in zip(table["spec"][::30], table["MACs"][::30]):  # 13 rows
        assert flops(MBV3.build(spec, "paper_w1.0"), (1, 3, 224, 224)) == 2 * macs
    first = table.iloc[0]  # and the computation graph's node sums
    graph = graph_of(MBV3, first["spec"], "paper_w1.0")
    assert graph.flops == 2 * first["MACs"] == 2 * 244_945_104
    assert graph.params == first["Model Parameters"] == 4_536_768


# -- the loader -------------------------------------------------------------------------------------------------
def test_dev_table(shared_data):
    table = load_benchmark("ofa-mbv3-dynast", dev_file(shared_data))
    assert list(table.columns) == ["space", "spec", "dataset", "key", "val_accuracy", "Date", "Model Parameters",
                                   "Latency (ms)", "MACs", "search_run", "search_runs", "profile"]
    assert set(table["space"]) == {"ofa_mbv3"} and set(table["dataset"]) == {"imagenet"}
    assert set(table["search_run"]) == set(table["search_runs"]) == {"linasga_acc"}
    assert table["spec"].is_unique and all(MBV3.canonical(s) == s for s in table["spec"])
    raw = pd.read_csv(dev_file(shared_data))
    assert table["key"].tolist() == raw["Sub-network"].tolist()  # no repeats in this run
    assert table["val_accuracy"].tolist() == raw["Top-1 Acc (%)"].tolist()
    assert table["val_accuracy"].between(70, 78).all() and (table["Latency (ms)"] == 0).all()
    first = table.iloc[0]
    assert first["key"] == ROW0 and first["val_accuracy"] == 74.69 and first["MACs"] == 244_945_104
    assert table.attrs["search_runs"] == ["linasga_acc"]


def test_a_folder_with_some_files_reads_them_and_warns(shared_data, tmp_path, monkeypatch):
    with pytest.warns(UserWarning, match=r"read 1 of its 5 files .* missing mbnv3w10_evoga_acc.csv, "
                                         r".*nape data fetch ofa-mbv3-dynast"):
        table = load_benchmark("ofa-mbv3-dynast", shared_data)  # found one folder down
    assert len(table) == 361
    monkeypatch.setenv("NAPE_CACHE", str(tmp_path))
    with pytest.raises(FileNotFoundError, match=r"ofa-mbv3-dynast: none of mbnv3w10_evoga_acc.csv, .* found in "
                                                r".*nape data fetch ofa-mbv3-dynast"):
        load_benchmark("ofa-mbv3-dynast")


def test_download_missing_fetches_only_the_missing_files(shared_data, tmp_path, monkeypatch):
    (tmp_path / "ofa").mkdir()
    (tmp_path / "ofa" / DEV_FILE).write_bytes(dev_file(shared_data).read_bytes())
    fetched = []

    def fake_fetch(name, dest_dir=None, **options):  # the network is not needed: write an empty run
        entry = download.remote_file(name)
        fetched.append((name, Path(dest_dir)))
        (Path(dest_dir) / entry.filename).write_text(HEADER)
        return Path(dest_dir) / entry.filename

    monkeypatch.setattr(download, "fetch", fake_fetch)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        table = load_benchmark("ofa-mbv3-dynast", tmp_path, download_missing=True)
    missing = [run for run in RUNS if run != "linasga_acc"]
    assert [name for name, _ in fetched] == [f"ofa-mbv3-dynast-{run.split('_')[0]}" for run in missing]
    assert {dest for _, dest in fetched} == {tmp_path / "ofa"}  # beside the file that was there
    assert len(table) == 361 and table.attrs["search_runs"] == list(RUNS)


def test_repeats_are_dropped_and_their_runs_kept(tmp_path):
    unused = ROW0.replace("'ks': [7, 3, 3, 7,", "'ks': [7, 3, 3, 3,")  # same sub-network, other unused slot
    other = ROW0.replace("'d': [3, 2, 2, 3, 2]", "'d': [4, 2, 2, 3, 2]")
    (tmp_path / "mbnv3w10_evoga_acc.csv").write_text(HEADER + row(ROW0) + row(unused) + row(other, acc=75.0))
    (tmp_path / "mbnv3w10_linasga_acc.csv").write_text(HEADER + row(ROW0, acc=74.7) + row(ROW0, acc=74.7))
    for name in ("mbnv3w10_evonsga2_acc_macs.csv", "mbnv3w10_evounsga3_acc_macs_params.csv",
                 "mbnv3w10_linasnsga2_acc_macs.csv"):
        (tmp_path / name).write_text(HEADER)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # all five present: no warning
        table = load_benchmark("ofa-mbv3-dynast", tmp_path)
    assert len(table) == 2 and table.attrs["search_runs"] == list(RUNS)
    first = table.iloc[0]
    assert first["key"] == ROW0 and first["val_accuracy"] == 74.69  # the first evaluation is kept
    assert first["search_run"] == "evoga_acc" and first["search_runs"] == "evoga_acc,linasga_acc"
    assert table.iloc[1]["val_accuracy"] == 75.0 and json.loads(table.iloc[1]["spec"])["d"][0] == 4


@pytest.mark.parametrize("cell, pattern", [
    ("__import__('os').remove('{victim}')", r"row 0: Sub-network .* is not a Python literal \(ValueError\)"),
    ("[1, 2, 3]", r"row 0: Sub-network .* is not a dict"),
    ("{'ks': [3, 3", r"is not a Python literal \(SyntaxError\)"),
    (ROW0.replace("'ks': [7,", "'ks': [9,"), r"row 0: .* is not an ofa_mbv3 sub-network \(kernel not in \{3,5,7\}"),
    (ROW0.replace("'d': [3, 2, 2, 3, 2]", "'d': [3, 2, 2, 3]"), r"'d' must have 5 entries"),
])
def test_bad_sub_networks_are_refused(tmp_path, cell, pattern):
    victim = tmp_path / "victim.txt"
    victim.write_text("still here")
    path = tmp_path / DEV_FILE
    path.write_text(HEADER + row(cell.replace("{victim}", str(victim))))
    with pytest.raises(BenchmarkFormatError, match=pattern):
        load_benchmark("ofa-mbv3-dynast", path)
    assert victim.read_text() == "still here"  # literal_eval never runs a call


def test_bad_files_are_refused(tmp_path):
    path = tmp_path / DEV_FILE
    path.write_text("net,acc\n1,2\n")
    with pytest.raises(BenchmarkFormatError, match=r"missing column\(s\) \['Sub-network', 'Top-1 Acc \(%\)'\]; "
                                                   r"expected DyNAS-T's search log"):
        load_benchmark("ofa-mbv3-dynast", path)
    path.write_text(HEADER + row(ROW0, acc="abc"))
    with pytest.raises(BenchmarkFormatError, match=r"row 0: Top-1 Acc \(%\) is 'abc', not a number"):
        load_benchmark("ofa-mbv3-dynast", path)


# -- the downloader ------------------------------------------------------------------------------------------------
README_SHA256 = {
    "mbnv3w10_evoga_acc.csv": "460efa9d68388f0523248c68996738a4cf1580115299c5223386acefd01c2904",
    "mbnv3w10_evonsga2_acc_macs.csv": "26382008e3311c93cbb1f8de3310ac69a37c650c9692e032c90e04805e523cbe",
    "mbnv3w10_evounsga3_acc_macs_params.csv": "b24f148a72d2f1bb1b3422a2f7f8a1f21e59bf5d47f033c0945840ac5d78384c",
    "mbnv3w10_linasga_acc.csv": "63f986501c47e44f3c7426acbcbf8787662a8aa93683d95461a6f6bb659765f7",
    "mbnv3w10_linasnsga2_acc_macs.csv": "cc49278a179df47e6a8f5906e0bd32a6d2f4d29c0d0424ab0ac14eb4a10f8962",
}


def test_download_entries(shared_data):
    entries = download.remote_files("ofa-mbv3-dynast")
    assert [e.name for e in entries] == [f"ofa-mbv3-dynast-{run.split('_')[0]}" for run in RUNS]
    assert {e.filename: e.sha256 for e in entries} == README_SHA256
    base = ("https://raw.githubusercontent.com/IntelLabs/DyNAS-T/251cb5e0083077522eb554691f480ba750e63246"
            "/notebooks/data/")
    assert all(e.url == base + e.filename for e in entries)
    bench = benchmarks.get_benchmark("ofa-mbv3-dynast")
    assert (bench.filename, *bench.more_files) == tuple(README_SHA256)
    entry = download.remote_file(DEV_FILE)
    assert download.file_status(entry, shared_data / "ofa_mbv3") == (dev_file(shared_data), "ok")
    rows = [r for r in benchmarks.data_status(shared_data / "ofa_mbv3") if r["name"] == "ofa-mbv3-dynast"]
    assert [r["file"] for r in rows] == list(README_SHA256)
    assert [r["status"] for r in rows] == ["missing"] * 3 + ["ok", "missing"]
