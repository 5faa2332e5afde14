"""NAS-Bench-101's module hash, and the index from hash to cell over all 423,624 cells.

The benchmark keys every cell by an MD5 "module hash" that is invariant under isomorphism
(google-research/nasbench, ``lib/graph_util.hash_module``; reimplemented here from its description):

* the labels are ``-1`` for the input, ``-2`` for the output and, for an interior vertex, the
  op's position in the benchmark's ``available_ops``: 0 = ``conv3x3-bn-relu``, 1 = ``conv1x1-bn-relu``,
  2 = ``maxpool3x3`` (``model_spec.hash_spec``); the hashed matrix is the *pruned* cell;
* each vertex v starts as ``md5(str((out_degree, in_degree, label)))`` (hex digest; Python's
  ``str`` of a tuple of ints, e.g. ``"(2, 0, -1)"``);
* then, n times for an n-vertex cell, every vertex becomes
  ``md5("".join(sorted(in-neighbour hashes)) + "|" + "".join(sorted(out-neighbour hashes)) + "|" + own)``;
* the cell's hash is ``md5(str(sorted(vertex hashes)))``: Python's ``str`` of the sorted list of hex strings.

The benchmark's cells (``scripts/generate_graphs.py``) are every labelled upper-triangular matrix of
2-7 vertices and at most 9 edges in which every vertex lies on an input→output path (no zero row
but the output's, no zero column but the input's), three ops per interior vertex; of each hash,
the *first* cell met keeps it. The order is: vertex count ascending; the matrix's bitmask
ascending, bit ``x + y(y-1)/2`` being the edge x→y; then the labelings in ``itertools.product``
order (the first interior vertex slowest). That is 1,293,208 labelled graphs and 423,624 hashes.

:func:`build_index` finds the same first cells without hashing all 1.3 M graphs. The hash is a
complete invariant on this space (the benchmark's script verified that no two non-isomorphic cells
share one), so "first cell of each hash" is "first cell of each isomorphism class". The class of a
cell is told by its canonical key: the least of ``adjacency code × 3^(n-2) + label code`` over the
(n-2)! permutations of the interior vertices (input and output carry unique labels, so every
isomorphism fixes them), computed for all matrices and labelings at once with numpy. Only the
423,624 first members are then hashed. Building costs about 23 s of CPU on one core (under 1 s to
enumerate, the rest MD5; ``workers`` spreads the hashing over processes); it is done once and cached
as ``nb101_hash_index.npz`` in the download cache (numpy arrays only, loaded without pickle).
"""
from __future__ import annotations

import hashlib
import itertools
import json
import operator
import os
import tempfile
import warnings
import zipfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

#: op name → the benchmark's hash label (its ``available_ops`` order)
OP_LABELS = {"conv3x3-bn-relu": 0, "conv1x1-bn-relu": 1, "maxpool3x3": 2}
OP_NAMES = tuple(OP_LABELS)
INPUT_LABEL, OUTPUT_LABEL = -1, -2
MAX_VERTICES = 7
MAX_EDGES = 9
#: cells of the whole space (distinct module hashes, ``generate_graphs.py``)
NUM_CELLS = 423_624
INDEX_FILE = "nb101_hash_index.npz"
INDEX_VERSION = 1


# -- the module hash ------------------------------------------------------------------------------------
def _md5_hex(text: str) -> str:
    return hashlib.md5(text.encode("utf-8")).hexdigest()


@lru_cache(maxsize=None)
def _initial_hash(out_degree: int, in_degree: int, label: int) -> str:
    """A vertex's starting hash, ``md5(str((out, in, label)))``; memoised (few distinct triples)."""
    return _md5_hex(str((out_degree, in_degree, label)))


def _neighbour_getter(indices: list[int]) -> Callable[[list[str]], tuple[str, ...]]:
    if not indices:
        return lambda hashes: ()
    if len(indices) == 1:
        only = indices[0]
        return lambda hashes: (hashes[only],)
    return operator.itemgetter(*indices)


def module_hasher(matrix) -> Callable[[Sequence[int]], str]:
    """The benchmark's module hash for one 0/1 adjacency matrix, as a function of the labels.

    The wiring is read once, so hashing many labelings of one matrix is cheap per labeling."""
    matrix = np.asarray(matrix).astype(bool)
    n = matrix.shape[0]
    ins = [np.flatnonzero(matrix[:, v]).tolist() for v in range(n)]
    outs = [np.flatnonzero(matrix[v]).tolist() for v in range(n)]
    degrees = [(len(outs[v]), len(ins[v])) for v in range(n)]
    plan = [(_neighbour_getter(ins[v]), _neighbour_getter(outs[v]), v) for v in range(n)]
    join = "".join

    def hash_labels(labels: Sequence[int]) -> str:
        if len(labels) != n:
            raise ValueError(f"nb101 hash: {n} vertices need {n} labels, got {len(labels)}")
        hashes = [_initial_hash(out, inn, int(label)) for (out, inn), label in zip(degrees, labels)]
        for _ in range(n):
            hashes = [_md5_hex(f"{join(sorted(in_of(hashes)))}|{join(sorted(out_of(hashes)))}|{hashes[v]}")
                      for in_of, out_of, v in plan]
        return _md5_hex(str(sorted(hashes)))

    return hash_labels


def module_hash(matrix, labels: Sequence[int]) -> str:
    """``graph_util.hash_module``: the MD5 module hash of an adjacency matrix and its int labels."""
    return module_hasher(matrix)(labels)


def labels_of(ops: Sequence[str]) -> list[int]:
    """Op names (``input``, interior ops, ``output``) → the hash labels ``[-1, 0/1/2…, -2]``."""
    unknown = [op for op in ops[1:-1] if op not in OP_LABELS]
    if unknown:
        raise ValueError(f"nb101 hash: unknown op(s) {unknown}; interior ops are {', '.join(OP_LABELS)}")
    return [INPUT_LABEL, *(OP_LABELS[op] for op in ops[1:-1]), OUTPUT_LABEL]


def spec_hash(spec: str) -> str:
    """The benchmark's hash of an NB-101 spec (any form nape's ``nb101`` space parses; pruned first)."""
    from ..spaces import get_space

    matrix, ops = get_space("nb101").parse(spec)
    return module_hash(matrix, labels_of(ops))


# -- enumeration ---------------------------------------------------------------------------------------
def edge_pairs(vertices: int) -> list[tuple[int, int]]:
    """The upper-triangular entries (x, y), x < y, in bit order: bit ``x + y(y-1)/2`` is edge x→y."""
    return [(x, y) for y in range(vertices) for x in range(y)]


def full_dag_bitmasks(vertices: int, max_edges: int = MAX_EDGES) -> np.ndarray:
    """The bitmasks, ascending, of the n-vertex matrices with at most ``max_edges`` edges whose every
    vertex lies on an input→output path (every row but the last and every column but the first has an edge)."""
    pairs = edge_pairs(vertices)
    masks = np.arange(1 << len(pairs), dtype=np.int64)
    keep = np.ones(masks.shape, dtype=bool)
    edges = np.zeros(masks.shape, dtype=np.int64)
    for bit in range(len(pairs)):
        edges += (masks >> bit) & 1
    for v in range(vertices):
        row = sum(1 << bit for bit, (x, _) in enumerate(pairs) if x == v)
        column = sum(1 << bit for bit, (_, y) in enumerate(pairs) if y == v)
        if v < vertices - 1:
            keep &= (masks & row) != 0
        if v > 0:
            keep &= (masks & column) != 0
    return masks[keep & (edges <= max_edges)]


def matrices_of(bitmasks: np.ndarray, vertices: int) -> np.ndarray:
    """Bitmasks → 0/1 adjacency matrices, shape ``(len(bitmasks), n, n)``, int8."""
    bitmasks = np.asarray(bitmasks, dtype=np.int64)
    matrices = np.zeros((len(bitmasks), vertices, vertices), dtype=np.int8)
    for bit, (x, y) in enumerate(edge_pairs(vertices)):
        matrices[:, x, y] = (bitmasks >> bit) & 1
    return matrices


@lru_cache(maxsize=None)
def interior_labelings(vertices: int) -> np.ndarray:
    """All interior labelings in ``itertools.product`` order, shape ``(3^(n-2), n-2)``; row i has code i
    (read-only: the array is shared between calls)."""
    rows = list(itertools.product(range(len(OP_LABELS)), repeat=vertices - 2))
    table = np.array(rows, dtype=np.int64).reshape(len(rows), vertices - 2)
    table.flags.writeable = False
    return table


def _interior_permutations(vertices: int) -> np.ndarray:
    """Vertex permutations that fix the input (0) and the output (n-1), shape ``((n-2)!, n)``."""
    middle = itertools.permutations(range(1, vertices - 1))
    return np.array([(0, *p, vertices - 1) for p in middle], dtype=np.int64).reshape(-1, vertices)


def first_of_each_class(matrices: np.ndarray, labelings: np.ndarray, chunk_cells: int = 1 << 22) -> np.ndarray:
    """Flat indices ``matrix * len(labelings) + labeling`` of the first cell of each isomorphism class,
    in enumeration order (matrix-major, labelings in order).

    The class key of a cell is ``min over interior permutations p of A(p) × 3^(n-2) + L(p)``, where
    A(p) is the bit code of the permuted matrix ``M[p][:, p]`` and L(p) the base-3 code of the
    permuted labels ``labels[p]``."""
    count, n = matrices.shape[0], matrices.shape[1]
    perms = _interior_permutations(n)
    num_labelings = len(labelings)
    weights = np.int64(1) << np.arange(n * n, dtype=np.int64)
    powers = 3 ** np.arange(n - 3, -1, -1, dtype=np.int64)
    adjacency = np.stack([(matrices[:, p][:, :, p].reshape(count, -1) * weights).sum(1) for p in perms], 1)
    label_codes = np.stack([labelings[:, p[1:-1] - 1] @ powers for p in perms], 1)
    keys = np.empty((count, num_labelings), dtype=np.int64)
    step = max(1, chunk_cells // (num_labelings * len(perms)))
    for start in range(0, count, step):
        block = adjacency[start:start + step, None, :] * num_labelings + label_codes[None, :, :]
        keys[start:start + step] = block.min(axis=2)
    _, first = np.unique(keys.ravel(), return_index=True)
    return np.sort(first)


@dataclass(frozen=True)
class Cells:
    """Cells as arrays: vertex count, matrix bitmask, interior-label code (row of ``interior_labelings``)."""

    vertices: np.ndarray
    bitmasks: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.vertices)


def enumerate_cells(max_vertices: int = MAX_VERTICES, max_edges: int = MAX_EDGES) -> Cells:
    """The first cell of each isomorphism class, in the benchmark's enumeration order (no hashing)."""
    if not 2 <= max_vertices <= MAX_VERTICES:
        raise ValueError(f"nb101: max_vertices must be 2..{MAX_VERTICES}, got {max_vertices}")
    parts = []
    for n in range(2, max_vertices + 1):
        bitmasks = full_dag_bitmasks(n, max_edges)
        labelings = interior_labelings(n)
        first = first_of_each_class(matrices_of(bitmasks, n), labelings)
        parts.append((np.full(len(first), n), bitmasks[first // len(labelings)], first % len(labelings)))
    vertices, bitmasks, labels = (np.concatenate(arrays) for arrays in zip(*parts))
    return Cells(vertices.astype(np.uint8), bitmasks.astype(np.uint32), labels.astype(np.uint8))


def hash_cells(cells: Cells, *, workers: int = 1, progress: bool = True) -> np.ndarray:
    """The module hash of every cell (ASCII hex, dtype S32), in order; ``workers`` > 1 uses processes."""
    from tqdm.auto import tqdm

    groups = _matrix_groups(cells)
    hashes: list[str] = []
    with tqdm(total=len(cells), desc="NB-101 hash index", unit="cell", disable=not progress) as bar:
        for part in _map(_hash_group, groups, workers):
            hashes.extend(part)
            bar.update(len(part))
    return np.array(hashes, dtype="S32")


def _matrix_groups(cells: Cells, batch: int = 2000) -> list[list[tuple[int, int, list[int]]]]:
    """Tasks of about ``batch`` cells: lists of (vertices, bitmask, label codes) of consecutive cells
    of one matrix each (the enumeration keeps a matrix's cells together)."""
    tasks, current, size = [], [], 0
    boundaries = np.flatnonzero((np.diff(cells.vertices.astype(np.int64)) != 0)
                                | (np.diff(cells.bitmasks.astype(np.int64)) != 0)) + 1
    for start, stop in zip([0, *boundaries.tolist()], [*boundaries.tolist(), len(cells)]):
        current.append((int(cells.vertices[start]), int(cells.bitmasks[start]), cells.labels[start:stop].tolist()))
        size += stop - start
        if size >= batch:
            tasks.append(current)
            current, size = [], 0
    if current:
        tasks.append(current)
    return tasks


def _hash_group(task: list[tuple[int, int, list[int]]]) -> list[str]:
    """Hashes of the cells of a task (module level, so worker processes can run it)."""
    out = []
    for vertices, bitmask, codes in task:
        hasher = module_hasher(matrices_of(np.array([bitmask]), vertices)[0])
        interior = interior_labelings(vertices)
        out.extend(hasher([INPUT_LABEL, *interior[code].tolist(), OUTPUT_LABEL]) for code in codes)
    return out


def _map(function, tasks: list, workers: int) -> Iterable:
    if workers <= 1:
        return map(function, tasks)
    import multiprocessing

    pool = multiprocessing.get_context("spawn").Pool(workers)
    return _closing(pool, pool.imap(function, tasks))


def _closing(pool, results: Iterable) -> Iterable:
    try:
        yield from results
    finally:
        pool.terminate()
        pool.join()


# -- the index -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class HashIndex:
    """Module hash → cell, sorted by hash: ``hashes`` (S32 hex), ``vertices``, ``bitmasks``, ``labels``."""

    hashes: np.ndarray
    vertices: np.ndarray
    bitmasks: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.hashes)

    def find(self, keys: Iterable[str]) -> np.ndarray:
        """Positions of ``keys`` in the index; -1 for a key that is not a hash of the index."""
        texts = [str(k).strip().lower() for k in keys]
        plausible = np.array([len(t) == 32 and t.isascii() for t in texts], dtype=bool)
        wanted = np.array([t.encode("ascii") if ok else b"" for t, ok in zip(texts, plausible)], dtype="S32")
        where = np.minimum(np.searchsorted(self.hashes, wanted), len(self) - 1)
        found = plausible & (self.hashes[where] == wanted)
        return np.where(found, where, -1)

    def cell(self, position: int) -> tuple[np.ndarray, tuple[str, ...]]:
        """The cell at ``position``: its adjacency matrix (int64) and op names."""
        n = int(self.vertices[position])
        matrix = matrices_of(np.array([self.bitmasks[position]]), n)[0].astype(np.int64)
        interior = interior_labelings(n)[int(self.labels[position])]
        return matrix, ("input", *(OP_NAMES[i] for i in interior), "output")

    def spec(self, position: int) -> str:
        """The cell at ``position`` as nape's canonical ``nb101`` spec string."""
        return self.specs([position])[0]

    def specs(self, positions: Sequence[int]) -> list[str]:
        """The cells at ``positions`` as nape's canonical specs: the compact JSON that
        ``NB101Space.format`` writes (an indexed cell is a full DAG, so its pruned form is itself)."""
        positions = np.asarray(positions, dtype=np.int64)
        if len(positions) and (positions.min() < 0 or positions.max() >= len(self)):
            raise IndexError(f"nb101 hash index: positions must be 0..{len(self) - 1} (-1 marks an unknown hash)")
        out: list[str] = [""] * len(positions)
        vertices = self.vertices[positions]
        for n in np.unique(vertices).tolist():
            rows = np.flatnonzero(vertices == n)
            matrices = matrices_of(self.bitmasks[positions[rows]], n).tolist()
            labelings = interior_labelings(n)[self.labels[positions[rows]]].tolist()
            for row, matrix, labels in zip(rows.tolist(), matrices, labelings):
                ops = ["input", *(OP_NAMES[i] for i in labels), "output"]
                out[row] = json.dumps({"matrix": matrix, "ops": ops}, separators=(",", ":"))
        return out

    def count_by_vertices(self) -> dict[int, int]:
        values, counts = np.unique(self.vertices, return_counts=True)
        return {int(v): int(c) for v, c in zip(values, counts)}


def build_index(max_vertices: int = MAX_VERTICES, *, workers: int = 1, progress: bool = True) -> HashIndex:
    """Enumerate the cells of up to ``max_vertices`` vertices and hash them (see the module docstring)."""
    cells = enumerate_cells(max_vertices)
    hashes = hash_cells(cells, workers=workers, progress=progress)
    order = np.argsort(hashes, kind="stable")
    if len(np.unique(hashes)) != len(hashes):
        raise RuntimeError("nb101 hash index: two non-isomorphic cells share a hash; the hash reimplementation "
                           "differs from the benchmark's")
    return HashIndex(hashes[order], cells.vertices[order], cells.bitmasks[order], cells.labels[order])


def index_path(directory: str | os.PathLike | None = None) -> Path:
    from .download import cache_dir

    return Path(directory).expanduser() / INDEX_FILE if directory is not None else cache_dir() / INDEX_FILE


def load_index(directory: str | os.PathLike | None = None, *, workers: int = 1, progress: bool = True) -> HashIndex:
    """The full index, read from ``directory`` (default: the download cache), else built and saved
    there atomically (temporary file, then ``os.replace``). A damaged or outdated file is rebuilt."""
    path = index_path(directory)
    if path.is_file():
        try:
            return _read_index(path)
        except ValueError as err:
            warnings.warn(f"{path}: {err}; rebuilding the NB-101 hash index", stacklevel=2)
    index = build_index(workers=workers, progress=progress)
    save_index(index, path)
    return index


def save_index(index: HashIndex, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", suffix=".part", delete=False)
    tmp = Path(handle.name)
    try:
        with handle:
            np.savez(handle, version=np.int64(INDEX_VERSION), hashes=index.hashes, vertices=index.vertices,
                     bitmasks=index.bitmasks, labels=index.labels)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _read_index(path: Path) -> HashIndex:
    """A cached index, checked; ValueError says what is wrong with the file."""
    names = ("version", "hashes", "vertices", "bitmasks", "labels")
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in names}
    except (OSError, ValueError, KeyError, EOFError, AttributeError, zipfile.BadZipFile) as err:
        raise ValueError(f"not a readable index ({type(err).__name__}: {err})") from None
    version = arrays.pop("version")
    if version.shape != () or int(version) != INDEX_VERSION:
        raise ValueError(f"index version {version}, expected {INDEX_VERSION}")
    hashes = arrays["hashes"]
    if hashes.dtype != np.dtype("S32") or any(len(a) != NUM_CELLS for a in arrays.values()):
        raise ValueError(f"expected {NUM_CELLS} hashes (S32) with as many cells, got "
                         f"{ {n: (a.dtype.str, len(a)) for n, a in arrays.items()} }")
    if not (hashes[1:] > hashes[:-1]).all():
        raise ValueError("hashes are not sorted and distinct")
    return HashIndex(**arrays)
