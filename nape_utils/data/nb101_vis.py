"""NAS-Bench-101 at scale: the column-oriented JSON tables of tiga1231/nasbench-vis.

Each file is one JSON object of equally long columns, one entry per cell::

    {"key": ["00005c14…", …], "4_final_validation_accuracy": [0.36, …], "12_…": […], "36_…": […],
     "108_final_validation_accuracy": […], "final_training_time": […], "trainable_parameters": […]}

``key`` is the benchmark's module hash; accuracies are fractions; ``final_training_time`` is in
seconds (108 epochs); ``trainable_parameters`` is the network's count at the benchmark's size.
The accuracies are those of **one** of the benchmark's three training runs (the source does not say
which), not their mean. ``data-1k.json`` also has ``adjacency`` (7×7, floats 0/1) and ``operations``
(ids -1 input, -2 output, 0 conv3x3-bn-relu, 1 conv1x1-bn-relu, 2 maxpool3x3, -3 padding after the
output of a cell with fewer than 7 vertices) and a 2-D ``embedding`` of the visualisation (dropped).

The cell of a hash comes from :mod:`.nb101_index` (every NB-101 cell enumerated and hashed as the
benchmark does, cached); where a file gives the cell too, it must hash to its key. A key that is
not the hash of any NB-101 cell cannot be given a spec: its row is left out, and never silently —
an :class:`UnknownHashWarning` gives the count and the first keys, and ``table.attrs["unknown_hashes"]``
lists them all.
"""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from . import nb101_index
from .benchmarks import BenchmarkFormatError, _read_json, _tidy

#: the files of ``nb101-30k``: 1,000 cells with adjacency (all also in data-20k), 10,000 and 20,001 by hash
FILES_30K = ("data-1k.json", "data-10k.json", "data-20k.json")
FILE_FULL = "data-full.json"
EPOCH_COLUMNS = tuple(f"{e}_final_validation_accuracy" for e in (4, 12, 36, 108))
COLUMNS = ("key", *EPOCH_COLUMNS, "final_training_time", "trainable_parameters")
CELL_COLUMNS = ("adjacency", "operations")
#: ``operations`` ids of nasbench-vis → op names (-3 pads a cell of fewer than 7 vertices)
OP_IDS = {-1: "input", -2: "output", 0: "conv3x3-bn-relu", 1: "conv1x1-bn-relu", 2: "maxpool3x3"}
PADDING_ID = -3
LAYOUT = ('nasbench-vis\'s column-oriented JSON {"key": [hash, …], "4_final_validation_accuracy": […], '
          '"12_…", "36_…", "108_final_validation_accuracy": […], "final_training_time": […], '
          '"trainable_parameters": […]} (optionally "adjacency" and "operations")')


class UnknownHashWarning(UserWarning):
    """Keys of a benchmark file that are not the hash of any NB-101 cell (their rows are left out)."""


# -- readers ---------------------------------------------------------------------------------------------
def read_nb101_30k(path: Path) -> pd.DataFrame:
    """``data-1k.json``, ``data-10k.json`` and ``data-20k.json``, all from ``path``'s folder, as one table
    (30,001 cells; the 1,000 cells of data-1k are also in data-20k, with the same values)."""
    folder = Path(path).parent
    missing = [name for name in FILES_30K if not (folder / name).is_file()]
    if missing:
        raise FileNotFoundError(f"nb101-30k: {', '.join(missing)} not found in {folder}; the benchmark reads "
                                f"{', '.join(FILES_30K)} from one folder (`nape data fetch nb101-30k` gets them)")
    frames = [read_columns(folder / name) for name in FILES_30K]
    return vis_table(merge_files(frames, FILES_30K), str(folder / "data-*.json"))


def read_nb101_full(path: Path) -> pd.DataFrame:
    """``data-full.json``: every NB-101 cell (423,624), in the same layout."""
    return vis_table(read_columns(Path(path)), str(path))


def read_columns(path: Path) -> pd.DataFrame:
    """One nasbench-vis file as a DataFrame of its known columns, checked."""
    data = _read_json(path, str(path), LAYOUT)
    if not isinstance(data, dict) or not all(isinstance(v, list) for v in data.values()):
        raise BenchmarkFormatError(f"{path}: expected a JSON object of columns (lists); expected {LAYOUT}")
    missing = [c for c in COLUMNS if c not in data]
    if missing:
        raise BenchmarkFormatError(f"{path}: missing column(s) {missing}; found {sorted(data)}; expected {LAYOUT}")
    wanted = [c for c in (*COLUMNS, *CELL_COLUMNS) if c in data]
    lengths = {c: len(data[c]) for c in wanted}
    if len(set(lengths.values())) != 1:
        raise BenchmarkFormatError(f"{path}: columns of different lengths {lengths}; every column needs one "
                                   "entry per cell")
    frame = pd.DataFrame({c: data[c] for c in wanted})
    frame["key"] = frame["key"].astype(str)
    for column in COLUMNS[1:]:
        numbers = pd.to_numeric(frame[column], errors="coerce")
        if numbers.isna().any():
            row = int(np.flatnonzero(numbers.isna())[0])
            raise BenchmarkFormatError(f"{path}: {column}[{row}] is {data[column][row]!r}, not a number; "
                                       f"expected {LAYOUT}")
        frame[column] = numbers
    if (frame["trainable_parameters"] % 1 != 0).any():
        raise BenchmarkFormatError(f"{path}: trainable_parameters must be whole counts; expected {LAYOUT}")
    if frame["key"].duplicated().any():
        raise BenchmarkFormatError(f"{path}: key {frame['key'][frame['key'].duplicated()].iloc[0]!r} appears twice")
    return frame


def merge_files(frames: list[pd.DataFrame], names: tuple[str, ...]) -> pd.DataFrame:
    """The files' rows, one per key (file order, first occurrence); a key found in two files must have
    the same values there, else a format error names it."""
    merged = pd.concat(frames, ignore_index=True)
    repeat = merged["key"].duplicated()
    first = merged[~repeat].set_index("key")
    again = merged.loc[repeat, list(COLUMNS)].set_index("key")
    differs = (again != first.loc[again.index, list(COLUMNS[1:])]).any(axis=1)
    if differs.any():
        key = differs.index[differs][0]
        files = [name for name, f in zip(names, frames) if key in set(f["key"])]
        raise BenchmarkFormatError(f"key {key!r} has different values in {files}: "
                                   f"{again.loc[[key]].to_dict('records')} against "
                                   f"{first.loc[[key], list(COLUMNS[1:])].to_dict('records')}")
    table = merged.loc[~repeat, list(COLUMNS)].reset_index(drop=True)
    for column in CELL_COLUMNS:  # a cell given by any file travels with its key
        if column in merged:
            table[column] = _first_given(frames, column, table["key"])
    return table


def _first_given(frames: list[pd.DataFrame], column: str, keys: pd.Series) -> list:
    given: dict[str, object] = {}
    for frame in frames:
        if column in frame:
            for key, value in zip(frame["key"], frame[column]):
                given.setdefault(key, value)
    return [given.get(key) for key in keys]


def vis_table(frame: pd.DataFrame, where: str) -> pd.DataFrame:
    """Tidy NB-101 table of nasbench-vis rows: spec from the hash index; own cells checked."""
    check_own_cells(frame, where)
    index = nb101_index.load_index()
    positions = index.find(frame["key"])
    unknown = frame["key"][positions < 0].tolist()
    if unknown:
        warnings.warn(UnknownHashWarning(
            f"{where}: {len(unknown)} of {len(frame)} keys are not the hash of any NB-101 cell and were left "
            f"out (first: {unknown[:5]}); table.attrs['unknown_hashes'] lists them all"), stacklevel=2)
    known = positions >= 0
    frame = frame[known].reset_index(drop=True)
    metrics = frame[list(COLUMNS[1:])].copy()
    metrics["trainable_parameters"] = metrics["trainable_parameters"].astype(np.int64)
    metrics.insert(0, "val_accuracy", 100 * metrics["108_final_validation_accuracy"])
    table = _tidy(metrics, "nb101", index.specs(positions[known]), "cifar10", frame["key"])
    table.attrs["unknown_hashes"] = unknown
    return table


def check_own_cells(frame: pd.DataFrame, where: str) -> None:
    """Rows that carry ``adjacency`` and ``operations`` must hash to their key (a format error otherwise)."""
    if "adjacency" not in frame or "operations" not in frame:
        return
    for key, adjacency, operations in zip(frame["key"], frame["adjacency"], frame["operations"]):
        if adjacency is None or operations is None:
            continue
        matrix, labels = own_cell(adjacency, operations, f"{where}: key {key}")
        if nb101_index.module_hash(*_pruned(matrix, labels)) != key:
            raise BenchmarkFormatError(f"{where}: the cell given for key {key} (ops {list(operations)}) does not "
                                       "hash to that key; the file's adjacency or operations are not the benchmark's")


def own_cell(adjacency, operations, where: str) -> tuple[np.ndarray, list[int]]:
    """A file's padded cell → (adjacency, labels) without the trailing padding vertices."""
    try:
        matrix = np.asarray(adjacency, dtype=float)
        ids = [int(op) for op in operations]
    except (TypeError, ValueError) as err:
        raise BenchmarkFormatError(f"{where}: adjacency and operations must be numbers ({err})") from None
    size = len(ids) - sum(1 for op in ids if op == PADDING_ID)
    ok_shape = matrix.shape == (len(ids), len(ids)) and np.isin(matrix, (0, 1)).all()
    if not ok_shape or PADDING_ID in ids[:size] or matrix[size:].any() or matrix[:, size:].any() \
            or any(op not in OP_IDS for op in ids[:size]):
        raise BenchmarkFormatError(f"{where}: expected an n×n 0/1 adjacency and n operation ids ({OP_IDS}, "
                                   f"then {PADDING_ID} for unconnected padding vertices), got {ids}")
    return matrix[:size, :size].astype(np.int64), ids[:size]


def _pruned(matrix: np.ndarray, labels: list[int]) -> tuple[np.ndarray, list[int]]:
    """The cell as the benchmark hashes it: vertices off every input→output path removed."""
    from ..spaces.nb101 import prune

    pruned = prune(matrix, tuple(labels))
    if pruned is None:
        return matrix, labels  # not a valid cell; its hash will not match the key
    return pruned[0], list(pruned[1])


def own_spec(adjacency, operations) -> str:
    """nape's canonical spec of a cell as a nasbench-vis file gives it."""
    from ..spaces import get_space

    matrix, ids = own_cell(adjacency, operations, "cell")
    return get_space("nb101").canonical(json.dumps({"matrix": matrix.tolist(), "ops": [OP_IDS[i] for i in ids]}))
