"""NB-101 at scale: the module hash, the hash → cell index of all 423,624 cells, the nasbench-vis
loaders (nb101-30k, nb101-full) and their pinned downloads (SHA-256, or a git blob id).

The index is built once per test module into a temporary cache (about 25 s of CPU); the checks that
read the development copies in ../shared/data skip without them; nothing here needs the network."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from nape_utils.cli import main
from nape_utils.data import download, nb101_index, nb101_vis
from nape_utils.data.benchmarks import BenchmarkFormatError, data_status, load_benchmark, safe_unpickle
from nape_utils.spaces import get_space

VIS = ("nb101", "nasbench_vis")
N_30K = 30_001


@pytest.fixture(scope="module")
def index_cache(tmp_path_factory):
    """A cache folder holding the full index, built here once; ``$NAPE_CACHE`` points at it."""
    folder = tmp_path_factory.mktemp("nape-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("NAPE_CACHE", str(folder))
        nb101_index.load_index(progress=False)
        yield folder


@pytest.fixture(scope="module")
def index(index_cache):
    return nb101_index.load_index(index_cache)


@pytest.fixture(scope="module")
def table_30k(shared_data, index_cache):
    return load_benchmark("nb101-30k", shared_data)


def vis_file(shared_data: Path, name: str) -> Path:
    return shared_data.joinpath(*VIS, name)


def paper_parameters(spec: str) -> int:
    """Trainable parameters of nape's ``paper`` network, counted on the meta device (no memory, no init)."""
    with torch.device("meta"):
        net = get_space("nb101").build(spec, "paper")
    return sum(p.numel() for p in net.parameters() if p.requires_grad)


# -- the hash and the enumeration ------------------------------------------------------------------------
def test_small_spaces_have_the_published_sizes():
    """generate_graphs.py's log: up to 4 vertices 91 cells, up to 5 vertices 2,532 (fast: no 6-7 vertices)."""
    small = nb101_index.build_index(5, progress=False)
    counts = small.count_by_vertices()
    assert counts == {2: 1, 3: 6, 4: 84, 5: 2441}
    assert sum(counts[n] for n in (2, 3, 4)) == 91 and len(small) == 2532
    assert len(np.unique(small.hashes)) == len(small)
    assert len(nb101_index.full_dag_bitmasks(7)) == 4793  # 7-vertex matrices, every vertex on a path, <= 9 edges


def test_worker_processes_give_the_same_hashes():
    cells = nb101_index.enumerate_cells(5)
    assert (nb101_index.hash_cells(cells, workers=2, progress=False)
            == nb101_index.hash_cells(cells, progress=False)).all()


def test_hash_matches_the_official_records(shared_data):
    """The 30 cells of the nasbench record file: adjacency and ops hash to their record key."""
    records = safe_unpickle(shared_data / "nb101" / "nb101_dummy.pkl", "nasbench records")
    for key, (fixed, _) in records.items():
        ops = list(fixed["module_operations"])
        assert nb101_index.module_hash(fixed["module_adjacency"], nb101_index.labels_of(ops)) == key
        spec = get_space("nb101").format((fixed["module_adjacency"], tuple(ops)))
        assert nb101_index.spec_hash(spec) == key


def test_hash_rejects_bad_labels():
    with pytest.raises(ValueError, match="unknown op"):
        nb101_index.labels_of(["input", "conv5x5", "output"])
    with pytest.raises(ValueError, match="3 vertices need 3 labels"):
        nb101_index.module_hash(np.eye(3, k=1, dtype=int), [-1, -2])


def test_full_index(index_cache, index):
    """423,624 cells, 91 of up to 4 and 2,532 of up to 5 vertices; cached atomically, read back as is."""
    assert len(index) == nb101_index.NUM_CELLS == 423_624
    counts = index.count_by_vertices()
    assert counts == {2: 1, 3: 6, 4: 84, 5: 2441, 6: 62010, 7: 359082}
    assert sum(counts[n] for n in (2, 3, 4)) == 91 and sum(counts[n] for n in (2, 3, 4, 5)) == 2532
    assert os.listdir(index_cache) == [nb101_index.INDEX_FILE]  # no temporary file left behind
    again = nb101_index.load_index(index_cache)
    assert (again.hashes == index.hashes).all() and (again.labels == index.labels).all()
    rng = np.random.default_rng(0)
    for position in rng.choice(len(index), 50, replace=False):  # a stored cell hashes to its key
        matrix, ops = index.cell(position)
        assert nb101_index.module_hash(matrix, nb101_index.labels_of(ops)) == index.hashes[position].decode()
        assert get_space("nb101").format((matrix, ops)) == index.spec(position)


def test_damaged_index_is_rebuilt(index, tmp_path, monkeypatch):
    path = tmp_path / nb101_index.INDEX_FILE
    path.write_bytes(b"not an npz file")
    monkeypatch.setattr(nb101_index, "build_index", lambda **options: index)  # no second 25 s build
    with pytest.warns(UserWarning, match="not a readable index.*rebuilding"):
        rebuilt = nb101_index.load_index(tmp_path)
    assert len(rebuilt) == len(index) and nb101_index.load_index(tmp_path).hashes[0] == index.hashes[0]


def test_find_reports_unknown_keys(index):
    known = index.hashes[[0, 7]].astype(str).tolist()
    positions = index.find([known[1], "0" * 32, "not a hash", known[0].upper()])
    assert positions.tolist() == [7, -1, -1, 0]


# -- data-1k: the oracle ----------------------------------------------------------------------------------
def test_data_1k_cells_hash_to_their_keys(shared_data, index):
    """Each row's own adjacency and ops (ids as the benchmark's labels) hash to its key, and the cell the
    index recovers from that key is nape's canonical spec of the row's own cell, for all 1,000 rows."""
    data = json.loads(vis_file(shared_data, "data-1k.json").read_bytes())
    positions = index.find(data["key"])
    assert (positions >= 0).all()
    recovered = index.specs(positions)
    for key, adjacency, operations, spec in zip(data["key"], data["adjacency"], data["operations"], recovered):
        own = nb101_vis.own_spec(adjacency, operations)
        assert nb101_index.spec_hash(own) == key
        assert own == spec


def test_op_ids_by_parameter_count(shared_data):
    """ids 0/1/2 = conv3x3/conv1x1/maxpool: nape's paper network of the row's own cell has the file's count."""
    data = json.loads(vis_file(shared_data, "data-1k.json").read_bytes())
    rows = np.random.default_rng(1).choice(len(data["key"]), 100, replace=False)
    for row in rows:
        spec = nb101_vis.own_spec(data["adjacency"][row], data["operations"][row])
        assert paper_parameters(spec) == data["trainable_parameters"][row]


# -- the loaders ----------------------------------------------------------------------------------------
def test_nb101_30k(table_30k):
    table = table_30k
    assert list(table.columns) == ["space", "spec", "dataset", "key", "val_accuracy", *nb101_vis.EPOCH_COLUMNS,
                                   "final_training_time", "trainable_parameters"]
    assert len(table) == N_30K and table["key"].is_unique and table["spec"].nunique() == N_30K
    assert set(table["space"]) == {"nb101"} and set(table["dataset"]) == {"cifar10"}
    assert table.attrs["unknown_hashes"] == []
    np.testing.assert_allclose(table["val_accuracy"], 100 * table["108_final_validation_accuracy"])
    assert table["val_accuracy"].between(5, 96).all() and table["trainable_parameters"].dtype == np.int64
    first = table.iloc[0]
    assert first["key"] == "00005c142e6f48ac74fdcf73e3439874" and first["trainable_parameters"] == 8_555_530
    assert first["val_accuracy"] == pytest.approx(93.04887652397156)
    sample = table["spec"].sample(300, random_state=0)
    assert all(get_space("nb101").canonical(s) == s for s in sample)


def test_nb101_30k_parameters(table_30k):
    """nape's paper network has the benchmark's parameter count for a seeded random 1,000 cells."""
    sample = table_30k.sample(1000, random_state=0)
    counts = [paper_parameters(spec) for spec in sample["spec"]]
    assert counts == sample["trainable_parameters"].tolist()


def test_nb101_30k_joins_nb101_zc_by_hash(table_30k, shared_data):
    """110 of NASLib's 500 keys are cells of the 30k (the data README's count) when matched by hash;
    nape's spec strings are not isomorphism-canonical, so matching them finds only 100."""
    zc = load_benchmark("nb101-zc", shared_data)
    hashes = zc["spec"].map(nb101_index.spec_hash)
    assert hashes.isin(set(table_30k["key"])).sum() == 110
    assert zc["spec"].isin(set(table_30k["spec"])).sum() == 100


# -- small files written here (no shared data needed) ---------------------------------------------------------
def write_vis(folder: Path, name: str, keys: list[str], cells: list | None = None, accuracy: float = 0.9) -> None:
    columns = {"key": keys, **{c: [accuracy] * len(keys) for c in nb101_vis.EPOCH_COLUMNS},
               "final_training_time": [1000.0] * len(keys), "trainable_parameters": [123] * len(keys)}
    if cells is not None:
        columns["adjacency"] = [c[0] for c in cells]
        columns["operations"] = [c[1] for c in cells]
    (folder / name).write_text(json.dumps(columns))


def padded_cell(index, position: int) -> tuple[list, list]:
    """A cell as data-1k gives it: 7×7 floats, op ids, -3 after the output for missing vertices."""
    matrix, ops = index.cell(position)
    n = len(ops)
    padded = np.zeros((7, 7))
    padded[:n, :n] = matrix
    ids = {name: i for i, name in nb101_vis.OP_IDS.items()}
    return padded.tolist(), [ids[op] for op in ops] + [nb101_vis.PADDING_ID] * (7 - n)


def test_unknown_hashes_are_reported(index, index_cache, tmp_path):
    keys = index.hashes[[3, 100, 200_000]].astype(str).tolist()
    fake = "f" * 32
    write_vis(tmp_path, "data-1k.json", keys[:1], [padded_cell(index, 3)])
    write_vis(tmp_path, "data-20k.json", keys[:2])
    write_vis(tmp_path, "data-10k.json", [keys[2], fake])
    with pytest.warns(nb101_vis.UnknownHashWarning, match=r"1 of 4 keys are not the hash.*ffff"):
        table = load_benchmark("nb101-30k", tmp_path)
    assert table["key"].tolist() == [keys[0], keys[2], keys[1]]  # file order, each key once
    assert table.attrs["unknown_hashes"] == [fake]
    assert table["spec"].tolist() == index.specs([3, 200_000, 100])


def test_format_errors(index, index_cache, tmp_path):
    keys = index.hashes[[3, 100]].astype(str).tolist()
    write_vis(tmp_path, "data-10k.json", [])
    write_vis(tmp_path, "data-20k.json", keys[:1], accuracy=0.5)
    write_vis(tmp_path, "data-1k.json", keys[:1], [padded_cell(index, 3)])
    with pytest.raises(BenchmarkFormatError, match="different values in"):
        load_benchmark("nb101-30k", tmp_path)
    write_vis(tmp_path, "data-20k.json", [])
    write_vis(tmp_path, "data-1k.json", keys[:1], [padded_cell(index, 100)])
    with pytest.raises(BenchmarkFormatError, match="does not hash to that key"):
        load_benchmark("nb101-30k", tmp_path)
    (tmp_path / "data-1k.json").write_text(json.dumps({"key": keys}))
    with pytest.raises(BenchmarkFormatError, match=r"missing column\(s\).*4_final_validation_accuracy"):
        load_benchmark("nb101-30k", tmp_path)


def test_missing_files_say_how_to_get_them(tmp_path, shared_data):
    shutil.copy(vis_file(shared_data, "data-1k.json"), tmp_path)
    with pytest.raises(FileNotFoundError, match=r"data-1k.json with data-10k.json, data-20k.json not found.*"
                                                r"nape data fetch nb101-30k"):
        load_benchmark("nb101-30k", tmp_path)
    with pytest.raises(FileNotFoundError, match="data-10k.json, data-20k.json not found"):
        load_benchmark("nb101-30k", tmp_path / "data-1k.json")


def test_nb101_full_reads_the_same_layout(index, index_cache, tmp_path):
    keys = index.hashes[[5, 6]].astype(str).tolist()
    write_vis(tmp_path, "data-full.json", keys)
    table = load_benchmark("nb101-full", tmp_path)
    assert table["key"].tolist() == keys and table["val_accuracy"].tolist() == [90.0, 90.0]


# -- downloads ------------------------------------------------------------------------------------------
README_PINS = {"data-1k.json": "97508235d7b6e1e4cee998629e87ec661d9a27ca882cc31f1503126340d6f1f2",
               "data-10k.json": "2c4c46e44c8ed252f7118d7a73304137ea0a6fa26377e6795baf985369ff3c09",
               "data-20k.json": "7eaca9658aebf16443d3df5b38e61fe75d85787abc485cfc9a2088328443c3e9"}


def test_registry_pins():
    entries = download.remote_files("nb101-30k")
    assert {e.filename: e.sha256 for e in entries} == README_PINS
    full = download.remote_file("nb101-full")
    assert full.filename == "data-full.json" and full.sha256 == ""
    assert full.checksum == ("git blob id", "ae53312061c6482953fcb2dc6b5716a3228ce3ee")
    assert all("tiga1231/nasbench-vis/" in e.url for e in [*entries, full])
    with pytest.raises(ValueError, match="several files.*fetch_all"):
        download.remote_file("nb101-30k")


def test_dev_copies_match_their_pins(shared_data):
    for entry in download.remote_files("nb101-30k"):
        assert download.file_status(entry, shared_data.joinpath(*VIS))[1] == "ok"


def test_git_blob_id_check(shared_data, tmp_path):
    """The blob-id verifier on the 20k file: accepts the file, rejects a one-byte change."""
    original = vis_file(shared_data, "data-20k.json")
    content = original.read_bytes()
    blob = hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()
    assert download.git_blob_id(original) == blob
    entry = replace(download.REGISTRY["nb101-30k-20k"], sha256="", blob_id=blob)
    assert download.is_verified(entry, original)
    changed = tmp_path / "changed" / "data-20k.json"
    changed.parent.mkdir()
    changed.write_bytes(content[:-2] + b"0" + content[-1:])
    assert not download.is_verified(entry, changed)
    assert download.file_status(entry, changed.parent)[1] == "checksum mismatch"


def test_fetch_verifies_a_blob_id(shared_data, tmp_path, monkeypatch):
    """fetch() with a blob-id pin (file:// URL, no network): the right bytes land, other bytes do not."""
    original = vis_file(shared_data, "data-20k.json")
    entry = replace(download.REGISTRY["nb101-30k-20k"], url=original.as_uri(), sha256="",
                    blob_id=download.git_blob_id(original))
    monkeypatch.setitem(download.REGISTRY, entry.name, entry)
    assert download.fetch(entry.name, tmp_path / "ok").read_bytes() == original.read_bytes()
    changed = tmp_path / "data-20k.json"
    changed.write_bytes(original.read_bytes() + b" ")
    monkeypatch.setitem(download.REGISTRY, entry.name, replace(entry, url=changed.as_uri()))
    with pytest.raises(download.ChecksumError, match="expected git blob id"):
        download.fetch(entry.name, tmp_path / "bad")
    assert os.listdir(tmp_path / "bad") == []


def test_cli_fetches_all_three_files(shared_data, tmp_path, monkeypatch, capsys):
    for entry in download.remote_files("nb101-30k"):
        local = replace(entry, url=vis_file(shared_data, entry.filename).as_uri())
        monkeypatch.setitem(download.REGISTRY, entry.name, local)
    assert main(["data", "fetch", "nb101-30k", "--dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out.split()
    assert out == [str(tmp_path / name) for name in nb101_vis.FILES_30K]
    rows = [r for r in data_status(tmp_path) if r["name"] == "nb101-30k"]
    assert [(r["file"], r["status"]) for r in rows] == [(name, "ok") for name in nb101_vis.FILES_30K]
    assert main(["data", "list", "--dir", str(tmp_path)]) == 0
    listed = [line.split() for line in capsys.readouterr().out.splitlines() if line.startswith("nb101-")]
    assert ["nb101-full", "data-full.json", "-", "missing"] in listed
    assert sum(line[0] == "nb101-30k" and line[-1] == "ok" for line in listed) == 3
