"""The MnasNet space of Accel-NASBench: spec strings, search, the networks at both profiles, the exact
published counts of every development record, and the benchmark loader (including malicious archives)."""
from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from nape_utils.data.benchmarks import BenchmarkFormatError, UnsafeArchiveError, load_benchmark
from nape_utils.graphs import from_module, graph_of
from nape_utils.spaces import get_space
from nape_utils.spaces.mnasnet import ANB_KEYS, LAYERS, MBConv, MnasNetSpace, thop_counts

SPACE = get_space("mnasnet")
DEV_ARCHIVE = Path("mnasnet") / "anb_dataset_jsons_dev.tar.gz"
# EfficientNet-B0's choices, Accel-NASBench's reference network (searchables.efficientnet_b0_conf)
B0 = {"e": [1, 6, 6, 6, 6, 6, 6], "k": [3, 3, 5, 3, 5, 5, 3], "l": [1, 2, 2, 3, 3, 4, 1], "se": [True] * 7}
B0_SPEC = ('{"e":[1,6,6,6,6,6,6],"k":[3,3,5,3,5,5,3],"l":[1,2,2,3,3,4,1],'
           '"se":[true,true,true,true,true,true,true]}')
# the first record of the development archive (result_1025.json), as published
RECORD_1025 = {"block0_e": 6, "block0_k": 5, "block0_l": 2, "block0_se": False, "block1_e": 6, "block1_k": 5,
               "block1_l": 1, "block1_se": False, "block2_e": 6, "block2_k": 3, "block2_l": 1, "block2_se": False,
               "block3_e": 1, "block3_k": 3, "block3_l": 1, "block3_se": False, "block4_e": 1, "block4_k": 3,
               "block4_l": 1, "block4_se": False, "block5_e": 4, "block5_k": 3, "block5_l": 3, "block5_se": False,
               "block6_e": 6, "block6_k": 5, "block6_l": 2, "block6_se": False}


# -- spec strings ------------------------------------------------------------------------------------------
def test_registry_and_profiles():
    assert isinstance(SPACE, MnasNetSpace) and SPACE.name == "mnasnet"
    assert set(SPACE.profiles) == {"paper", "zoo"}
    assert SPACE.input_shape("paper") == (1, 3, 224, 224) and SPACE.profile("paper").num_classes == 1000
    assert SPACE.input_shape("zoo") == (1, 3, 16, 16) and SPACE.profile("zoo").num_classes == 10


def test_parse_format_round_trip_and_accepted_forms():
    assert SPACE.canonical(json.dumps(B0)) == B0_SPEC
    assert SPACE.format(SPACE.parse(B0_SPEC)) == B0_SPEC
    # Accel-NASBench's flat configuration dict and its manual_sample list name the same network
    flat = {f"block{b}_{f}": B0[f][b] for b in range(7) for f in ("e", "k", "l", "se")}
    assert SPACE.canonical(json.dumps(flat)) == B0_SPEC
    assert SPACE.canonical(json.dumps([B0["e"], B0["k"], B0["l"], B0["se"]])) == B0_SPEC
    assert SPACE.canonical(json.dumps({**B0, "se": [1] * 7})) == B0_SPEC  # 0/1 flags
    assert SPACE.to_anb(B0_SPEC) == flat and list(SPACE.to_anb(B0_SPEC)) == list(ANB_KEYS)
    assert SPACE.canonical(json.dumps(RECORD_1025)) == (
        '{"e":[6,6,6,1,1,4,6],"k":[5,5,3,3,3,3,5],"l":[2,1,1,1,1,3,2],'
        '"se":[false,false,false,false,false,false,false]}')
    for spec in SPACE.sample_many(20, seed=3):
        assert SPACE.canonical(spec) == spec and SPACE.format(SPACE.parse(spec)) == spec


@pytest.mark.parametrize("bad, message", [
    ("not json", "malformed JSON in mnasnet spec"),
    ("[1, 2]", "Accel-NASBench's \\[\\[e x7\\]"),
    ("42", "a mnasnet spec is a JSON object"),
    (json.dumps({**B0, "x": 1}), "unknown key\\(s\\) 'x'"),
    (json.dumps({k: v for k, v in B0.items() if k != "l"}), "misses key 'l'"),
    (json.dumps({**B0, "e": [6] * 6}), "wrong list length: .*'e' must have 7 entries"),
    (json.dumps({**B0, "e": 6}), "'e' must be a list of 7"),
    (json.dumps({**B0, "e": [1, 6, 6, 3, 6, 6, 6]}), "expansion ratio not allowed: e\\[3\\] = 3 .*allowed: 1, 4, 6"),
    (json.dumps({**B0, "k": [3, 3, 5, 3, 5, 5, 7]}), "kernel size not allowed: k\\[6\\] = 7"),
    (json.dumps({**B0, "l": [1, 2, 2, 3, 4, 4, 1]}), "layer count not allowed: l\\[4\\] = 4 .*allowed: 1, 2, 3$"),
    (json.dumps({**B0, "l": [1, 2, 2, 3, 3, 5, 1]}), "l\\[5\\] = 5 .*allowed: 1, 2, 3, 4"),
    (json.dumps({**B0, "l": [1, 2, 2.0, 3, 3, 4, 1]}), "l\\[2\\] = 2.0"),
    (json.dumps({**B0, "e": [True, 6, 6, 6, 6, 6, 6]}), "e\\[0\\] = True"),
    (json.dumps({**B0, "se": [True] * 6 + ["yes"]}), "squeeze-excite flag not allowed: se\\[6\\] = 'yes'"),
    (json.dumps({**B0, "se": [True] * 6 + [2]}), "se\\[6\\] = 2"),
    (json.dumps({**RECORD_1025, "block7_e": 1}), "unknown key\\(s\\) 'block7_e'"),
    (json.dumps({k: v for k, v in RECORD_1025.items() if k != "block3_k"}), "misses key\\(s\\) block3_k"),
])
def test_bad_specs_say_what_is_wrong(bad, message):
    with pytest.raises(ValueError, match=message):
        SPACE.parse(bad)
    assert not SPACE.is_valid(bad)


def test_sample_covers_the_choices_and_mutate_changes_one():
    specs = SPACE.sample_many(400, seed=0)
    parsed = [SPACE.parse(s) for s in specs]
    assert {c.l[5] for c in parsed} == set(LAYERS[5]) and {c.l[0] for c in parsed} == {1, 2, 3}
    assert {c.e[2] for c in parsed} == {1, 4, 6} and {c.k[4] for c in parsed} == {3, 5}
    assert {c.se[6] for c in parsed} == {False, True}
    assert len(set(specs)) == len(specs)
    rng = np.random.default_rng(1)
    for spec in specs[:50]:
        child = SPACE.mutate(spec, rng)
        assert SPACE.is_valid(child) and SPACE.canonical(child) == child
        a, b = SPACE.to_anb(spec), SPACE.to_anb(child)
        assert sum(a[k] != b[k] for k in ANB_KEYS) == 1


# -- networks ----------------------------------------------------------------------------------------------
def test_paper_network_follows_the_benchmark_skeleton():
    net = SPACE.build(B0_SPEC, "paper")
    assert [len(block) for block in net.blocks] == B0["l"]
    first = net.blocks[0][0]
    assert first.expand_conv is None and not first.shortcut  # e = 1; 32 -> 16 channels
    assert first.se.reduce.out_channels == 8  # max(1, c_in // 4) of the layer's input width (32)
    second = net.blocks[1][1]  # 24 -> 24, stride 1: expand to 144, SE squeeze 24 // 4
    assert second.shortcut and second.expand_conv.conv.out_channels == 144 and second.se.reduce.out_channels == 6
    assert net.head.conv.out_channels == 1280 and net.classifier.in_features == 1280
    assert net.dropout.p == 0.2
    out = net.eval()(torch.zeros(1, 3, 224, 224))
    assert out.shape == (1, 1000)


def test_thop_counts_of_efficientnet_b0_style_network():
    """The B0 choices give EfficientNet-B0's layout with ReLU and a hard-sigmoid SE gate."""
    params, macs = SPACE.published_counts(B0_SPEC)
    # hand check of the stem's share: conv 3x3 3->32 at 112x112, BN over 32x112x112 (4 per element)
    stem = torch.nn.Sequential(SPACE.build(B0_SPEC, "paper").stem)
    assert thop_counts(stem, (1, 3, 224, 224)) == (32 * 112 * 112 * 27 + 4 * 32 * 112 * 112, 32 * 27 + 64)
    assert params == sum(p.numel() for p in SPACE.build(B0_SPEC, "paper").parameters())
    # torchvision's efficientnet_b0 has 5,288,548 parameters: the same widths and SE widths, other activations
    assert params == 5_288_548
    assert macs == 415_145_024  # nape's count (thop's rules, BN included), kept against regressions


def test_zoo_network_forward_shape_and_graph():
    for spec in SPACE.sample_many(3, seed=5) + [B0_SPEC]:
        net = SPACE.build(spec, "zoo")
        fmt = SPACE.profile("zoo").memory_format
        assert fmt == torch.channels_last
        out = net.to(memory_format=fmt)(torch.randn(4, 3, 16, 16).to(memory_format=fmt))
        assert out.shape == (4, 10)
        graph = graph_of(SPACE, spec, "zoo")
        graph.check()
        assert graph.params == sum(p.numel() for p in net.parameters())
        assert graph.op_names[0] == "input" and graph.op_names[-1] == "output"
    # zero_init_residual: every residual branch starts as the identity; the others keep the benchmark's init
    layers = [m for m in SPACE.build(B0_SPEC, "zoo").modules() if isinstance(m, MBConv)]
    assert any(m.shortcut for m in layers)
    for m in layers:
        assert bool((m.project.bn.weight == 0).all()) == m.shortcut
    # the topology does not depend on the profile: same ops, same number of nodes
    paper = from_module(SPACE.build(B0_SPEC, "paper").eval(), SPACE.input_shape("paper"))
    zoo = graph_of(SPACE, B0_SPEC, "zoo")
    assert paper.op_names == zoo.op_names


# -- the benchmark's own counts ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def dev_records(shared_data) -> list[dict]:
    path = shared_data / DEV_ARCHIVE
    if not path.is_file():
        pytest.skip(f"{path} not found")
    with tarfile.open(path) as archive:
        return [json.load(archive.extractfile(m)) for m in archive.getmembers()
                if m.isfile() and m.name.endswith(".json")]


def test_paper_params_and_macs_equal_the_published_counts_for_every_dev_record(dev_records):
    """Accel-NASBench prints params and MACs in millions with 6 decimals: whole counts, compared exactly."""
    assert len(dev_records) == 300
    params_ok = macs_ok = 0
    wrong = []
    for record in dev_records:
        params, macs = SPACE.published_counts(json.dumps(record["architecture"]))
        p_ok = params == round(record["model_info"]["params"] * 1e6)
        m_ok = macs == round(record["model_info"]["macs"] * 1e6)
        params_ok += p_ok
        macs_ok += m_ok
        if not (p_ok and m_ok):
            wrong.append((record["architecture"], params, macs, record["model_info"]))
    assert (params_ok, macs_ok) == (300, 300), wrong[:3]


# -- the loader ------------------------------------------------------------------------------------------
def test_loader_reads_the_dev_archive(shared_data):
    table = load_benchmark("accel-nasbench", shared_data / DEV_ARCHIVE)
    assert list(table.columns[:5]) == ["space", "spec", "dataset", "key", "val_accuracy"]
    assert len(table) == 300 and table["key"].is_unique and set(table["space"]) == {"mnasnet"}
    assert set(table["dataset"]) == {"imagenet"}
    assert (table["val_accuracy"] == table["val_top1"]).all() and table["val_top5"].gt(table["val_top1"]).all()
    perf = {f"throughput_{d}" for d in ("a100", "3090", "tpuv2", "tpuv3", "zcu102", "vck190")}
    perf |= {"latency_zcu102", "latency_vck190"}
    assert perf | {f"{c}_std" for c in perf} | {"val_top5", "train_time", "macs", "params"} <= set(table.columns)
    assert table["throughput_a100_std"].notna().all() and table["latency_zcu102_std"].isna().all()
    row = table[table["key"] == "result_1025"].iloc[0]
    assert row["spec"] == SPACE.canonical(json.dumps(RECORD_1025))
    assert row["val_accuracy"] == pytest.approx(60.289997) and row["val_top5"] == pytest.approx(82.874)
    assert row["macs"] == pytest.approx(510.192928) and row["params"] == pytest.approx(4.408448)
    assert row["latency_zcu102"] == pytest.approx(8.243799209594727)
    assert row["throughput_a100"] == pytest.approx(6101.498304055764)
    assert row["throughput_a100_std"] == pytest.approx(3.3690166360133844)
    assert all(SPACE.canonical(s) == s for s in table["spec"].unique())
    numbers = [int(k.split("_")[1]) for k in table["key"]]
    assert numbers == sorted(numbers)


def _tar(path: Path, members: dict[str, bytes], links: dict[str, str] | None = None) -> Path:
    """A .tar.gz with these members (names written as given, unchecked) and symbolic links."""
    with tarfile.open(path, "w:gz") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            archive.addfile(info)
    return path


RECORD = json.dumps({"architecture": RECORD_1025, "metrics": {"val_top1": 60.0, "val_top5": 82.0},
                     "model_info": {"macs": 510.192928, "params": 4.408448},
                     "platform_perf": {"latency_vck190": {"latency_mean": 5.0, "latency_std": None}}}).encode()


def test_loader_reads_a_built_archive_without_extracting(tmp_path, monkeypatch):
    path = _tar(tmp_path / "anb_dataset_jsons.tar.gz",
                {"anb_dataset_jsons/result_7.json": RECORD, "anb_dataset_jsons/result_2.json": RECORD,
                 "anb_dataset_jsons/README": b"ignored"})
    monkeypatch.chdir(tmp_path)
    table = load_benchmark("accel-nasbench", tmp_path)
    assert table["key"].tolist() == ["result_2", "result_7"] and table["latency_vck190"].tolist() == [5.0, 5.0]
    assert table["latency_vck190_std"].isna().all()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["anb_dataset_jsons.tar.gz"]  # nothing extracted


@pytest.mark.parametrize("name", ["/tmp/anb_dataset_jsons/result_1.json", "../anb_dataset_jsons/result_1.json",
                                  "anb_dataset_jsons/../../result_1.json", "anb_dataset_jsons/../evil.sh"])
def test_malicious_archive_members_are_refused(tmp_path, name):
    path = _tar(tmp_path / "anb_dataset_jsons.tar.gz", {"anb_dataset_jsons/result_0.json": RECORD, name: RECORD})
    with pytest.raises(UnsafeArchiveError, match="refusing archive member .*(absolute path|'\\.\\.' component)"):
        load_benchmark("accel-nasbench", path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["anb_dataset_jsons.tar.gz"]


def test_links_in_an_archive_are_refused(tmp_path):
    escaping = _tar(tmp_path / "a.tar.gz", {"anb_dataset_jsons/result_0.json": RECORD},
                    links={"anb_dataset_jsons/x": "../../etc/passwd"})
    with pytest.raises(UnsafeArchiveError, match="link target '../../etc/passwd' is a '..' component"):
        load_benchmark("accel-nasbench", escaping)
    record_link = _tar(tmp_path / "b.tar.gz", {"anb_dataset_jsons/result_0.json": RECORD},
                       links={"anb_dataset_jsons/result_1.json": "result_0.json"})
    with pytest.raises(UnsafeArchiveError, match="must be a regular file, not a link"):
        load_benchmark("accel-nasbench", record_link)


def test_bad_archives_say_what_was_expected(tmp_path):
    not_tar = tmp_path / "anb_dataset_jsons.tar.gz"
    not_tar.write_bytes(b"plain text")
    with pytest.raises(BenchmarkFormatError, match="not a readable tar archive.*result_<N>.json"):
        load_benchmark("accel-nasbench", not_tar)
    empty = _tar(tmp_path / "empty.tar.gz", {"anb_dataset_jsons/notes.txt": b"x"})
    with pytest.raises(BenchmarkFormatError, match="no result_<N>.json member"):
        load_benchmark("accel-nasbench", empty)
    bad_json = _tar(tmp_path / "bad.tar.gz", {"anb_dataset_jsons/result_0.json": b"{not json"})
    with pytest.raises(BenchmarkFormatError, match="result_0.json: not a JSON file"):
        load_benchmark("accel-nasbench", bad_json)
    no_acc = _tar(tmp_path / "noacc.tar.gz", {"anb_dataset_jsons/result_0.json": json.dumps(
        {"architecture": RECORD_1025, "metrics": {}}).encode()})
    with pytest.raises(BenchmarkFormatError, match="needs 'architecture' and 'metrics' with 'val_top1'"):
        load_benchmark("accel-nasbench", no_acc)
    bad_arch = _tar(tmp_path / "arch.tar.gz", {"anb_dataset_jsons/result_0.json": json.dumps(
        {"architecture": {**RECORD_1025, "block2_k": 7}, "metrics": {"val_top1": 1.0}}).encode()})
    with pytest.raises(BenchmarkFormatError,
                       match="member anb_dataset_jsons/result_0.json: .*is not a mnasnet architecture .*k\\[2\\] = 7"):
        load_benchmark("accel-nasbench", bad_arch)
    truncated = tmp_path / "cut.tar.gz"
    truncated.write_bytes((tmp_path / "bad.tar.gz").read_bytes()[:40])
    with pytest.raises(BenchmarkFormatError, match="tar archive"):
        load_benchmark("accel-nasbench", truncated)


def test_download_entry_is_pinned():
    from nape_utils.data import download

    entry = download.REGISTRY["accel-nasbench"]
    assert entry.filename == "anb_dataset_jsons.tar.gz"
    assert entry.url.endswith("/42603572d530310e6bac7191d00cf45625a6b197/anb_dataset/anb_dataset_jsons.tar.gz")
    assert entry.sha256 == "3520992d42e368b7c08c99fc3f6612855b5b366bf98668a7f19d49f3131aa4ae"
