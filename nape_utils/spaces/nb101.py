"""NAS-Bench-101: a cell of at most 7 vertices and 9 edges, repeated in a 3-stack network.

A cell is a DAG given by an upper-triangular 0/1 adjacency matrix (vertex 0 is the input, the last
vertex the output) and one op per vertex. The canonical spec string is the compact JSON of the
*pruned* cell (vertices off every input→output path removed, as nasbench's ``ModelSpec`` does)::

    {"matrix":[[0,1,1],[0,0,1],[0,0,0]],"ops":["input","conv3x3-bn-relu","output"]}

``parse`` also accepts the same JSON in any whitespace, and the NASLib flat tuple used as keys of
``zc_nasbench101.json``: the flattened n×n matrix followed by n op ids (see :data:`NASLIB_OP_IDS`).

Validity follows nasbench's ``ModelSpec`` and ``NASBench.is_valid``: the vertex limit applies to the
matrix as given, the edge limit and the input→output connection to the pruned cell. Spec strings are
not canonical up to isomorphism: two isomorphic cells (same nasbench hash) may have different strings.

The network (:class:`NB101Network`) rebuilds nasbench's ``model_builder`` in PyTorch, exact to the
parameter: a 3×3 conv stem, stacks of cells with a 2×2 max-pool and channel doubling between stacks,
global average pooling and a linear classifier.
"""
from __future__ import annotations

import json
import re

import numpy as np
import torch
import torch.nn as nn

from .base import ZOO_INPUT_SHAPE, ZOO_NUM_CLASSES, Profile, Space
from .ops import ConvBNReLU

INPUT = "input"
OUTPUT = "output"
CONV3X3 = "conv3x3-bn-relu"
CONV1X1 = "conv1x1-bn-relu"
MAXPOOL3X3 = "maxpool3x3"
#: the ops an interior vertex may hold
OPS = (CONV3X3, CONV1X1, MAXPOOL3X3)
#: op ids of the NASLib flat tuple
NASLIB_OP_IDS = {0: INPUT, 1: OUTPUT, 2: MAXPOOL3X3, 3: CONV1X1, 4: CONV3X3}
MAX_VERTICES = 7
MAX_EDGES = 9

_TUPLE_RE = re.compile(r"^\(\s*\d+(\s*,\s*\d+)*\s*,?\s*\)$")


# -- cell rules ---------------------------------------------------------------------------------
def prune(matrix: np.ndarray, ops: tuple[str, ...]) -> tuple[np.ndarray, tuple[str, ...]] | None:
    """Drop the vertices not on an input→output path, as nasbench's ``ModelSpec._prune``.

    Returns None when the input does not reach the output."""
    n = matrix.shape[0]
    from_input, frontier = {0}, [0]
    while frontier:
        v = frontier.pop()
        for w in np.flatnonzero(matrix[v]):
            if int(w) not in from_input:
                from_input.add(int(w))
                frontier.append(int(w))
    to_output, frontier = {n - 1}, [n - 1]
    while frontier:
        v = frontier.pop()
        for w in np.flatnonzero(matrix[:, v]):
            if int(w) not in to_output:
                to_output.add(int(w))
                frontier.append(int(w))
    keep = sorted(from_input & to_output)
    if 0 not in keep or n - 1 not in keep:
        return None
    return matrix[np.ix_(keep, keep)].copy(), tuple(ops[i] for i in keep)


def _check(matrix: np.ndarray, ops: tuple[str, ...]) -> tuple[np.ndarray, tuple[str, ...]]:
    """Validate a cell and return it pruned; ValueError names the broken rule and the fix."""
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise ValueError(f"nb101: the matrix must be square (n×n), got shape {matrix.shape}; "
                         "give one row per vertex, each with one entry per vertex")
    n = matrix.shape[0]
    if not np.isin(matrix, (0, 1)).all():
        raise ValueError("nb101: matrix entries must be 0 or 1 (1 = an edge from row vertex to column vertex)")
    if n > MAX_VERTICES:
        raise ValueError(f"nb101: a cell has at most {MAX_VERTICES} vertices (input, up to "
                         f"{MAX_VERTICES - 2} interior ops, output), got {n}; remove vertices")
    if n < 2:
        raise ValueError(f"nb101: a cell needs at least 2 vertices (input and output), got {n}")
    if len(ops) != n:
        raise ValueError(f"nb101: the ops list must have one op per vertex: {n} vertices but "
                         f"{len(ops)} ops; give exactly {n} ops")
    if ops[0] != INPUT or ops[-1] != OUTPUT:
        raise ValueError(f"nb101: the first op must be {INPUT!r} and the last {OUTPUT!r}, got "
                         f"{ops[0]!r} and {ops[-1]!r}")
    for op in ops[1:-1]:
        if op not in OPS:
            raise ValueError(f"nb101: unknown interior op {op!r}; allowed ops: {', '.join(OPS)}")
    if np.tril(matrix).any():
        i, j = (int(k) for k in np.argwhere(np.tril(matrix))[0])
        raise ValueError(f"nb101: the matrix must be strictly upper triangular (a DAG with vertices in "
                         f"topological order, no self-loops), but entry [{i}][{j}] is 1; remove that "
                         "edge or renumber the vertices in topological order")
    pruned = prune(matrix, ops)
    if pruned is None:
        raise ValueError("nb101: the cell is disconnected: no path leads from the input to the output; "
                         "add edges that connect them")
    edges = int(pruned[0].sum())
    if edges > MAX_EDGES:
        raise ValueError(f"nb101: a cell has at most {MAX_EDGES} edges (after pruning), got {edges}; "
                         "remove edges")
    return pruned


def _matrix_of(rows) -> np.ndarray:
    if not isinstance(rows, list) or not all(isinstance(r, list) for r in rows):
        raise ValueError("nb101: 'matrix' must be a list of rows, each a list of 0/1 integers")
    if any(len(r) != len(rows) for r in rows):
        raise ValueError(f"nb101: the matrix must be square (n×n): {len(rows)} rows of lengths "
                         f"{[len(r) for r in rows]}")
    if any(type(x) is not int for r in rows for x in r):
        raise ValueError("nb101: matrix entries must be the integers 0 or 1")
    return np.array(rows, dtype=np.int64).reshape(len(rows), len(rows))


def _parse_json(text: str):
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"nb101: malformed JSON spec ({e}); expected "
                         '{"matrix": [[0,1,...],...], "ops": ["input", ..., "output"]}') from None
    if not isinstance(obj, dict) or set(obj) != {"matrix", "ops"}:
        raise ValueError('nb101: a JSON spec must be an object with exactly the keys "matrix" and "ops"')
    ops = obj["ops"]
    if not isinstance(ops, list) or not all(isinstance(o, str) for o in ops):
        raise ValueError("nb101: 'ops' must be a list of op names")
    return _matrix_of(obj["matrix"]), tuple(ops)


def _parse_naslib_tuple(text: str):
    if not _TUPLE_RE.match(text):
        raise ValueError(f"nb101: malformed NASLib tuple {text[:60]!r}; expected '(a, b, ...)' of integers")
    values = [int(v) for v in text.strip("() \t\n").rstrip(",").split(",")]
    n = int(round((-1 + (1 + 4 * len(values)) ** 0.5) / 2))  # len = n*n + n
    if n * n + n != len(values):
        raise ValueError(f"nb101: a NASLib tuple holds n*n matrix entries then n op ids; "
                         f"{len(values)} values fit no n")
    unknown = sorted({v for v in values[n * n:] if v not in NASLIB_OP_IDS})
    if unknown:
        raise ValueError(f"nb101: unknown NASLib op ids {unknown}; allowed: "
                         + ", ".join(f"{k}={v}" for k, v in NASLIB_OP_IDS.items()))
    return np.array(values[: n * n], dtype=np.int64).reshape(n, n), tuple(NASLIB_OP_IDS[v] for v in values[n * n:])


# -- network ------------------------------------------------------------------------------------
def compute_vertex_channels(c_in: int, c_out: int, matrix: np.ndarray) -> list[int]:
    """Channels of each vertex, as nasbench's ``compute_vertex_channels``.

    The output's ``c_out`` channels are split evenly over the vertices feeding it (the first ones
    get one more when it does not divide); every other interior vertex takes the largest channel
    count among its successors, so channels never increase along an edge and truncation works."""
    n = matrix.shape[0]
    channels = [0] * n
    channels[0], channels[-1] = c_in, c_out
    if n == 2:
        return channels
    fan_in = int(matrix[1:, -1].sum())
    base, extra = divmod(c_out, fan_in)
    for v in range(1, n - 1):
        if matrix[v, -1]:
            channels[v] = base + (1 if extra > 0 else 0)
            extra -= 1
    for v in range(n - 3, 0, -1):
        if not matrix[v, -1]:
            channels[v] = max(channels[d] for d in range(v + 1, n - 1) if matrix[v, d])
    return channels


def _vertex_op(op: str, channels: int) -> nn.Module:
    if op == CONV3X3:
        return ConvBNReLU(channels, channels, 3)
    if op == CONV1X1:
        return ConvBNReLU(channels, channels, 1)
    return nn.MaxPool2d(3, stride=1, padding=1)


class NB101Cell(nn.Module):
    """One NB-101 cell (nasbench's ``build_module``); the wiring is fixed in ``__init__``.

    * Each interior vertex sums its inputs and applies its op at its own channel count.
    * The cell input has ``c_in`` channels, unrelated to a vertex's, so every edge from the input
      goes through its own 1×1 ConvBNReLU *projection* to the vertex's channels.
    * An interior vertex has at least as many channels as its successors, so its output is
      *truncated* (``x[:, :c]``, no parameters) to the successor's channels.
    * The output concatenates the vertices feeding it (their channels add up to ``c_out``); if the
      input feeds the output too, a 1×1 projection of the input to ``c_out`` is added to that, and
      if the input is the output's only source, the output is that projection alone.
    """

    def __init__(self, matrix: np.ndarray, ops: tuple[str, ...], c_in: int, c_out: int):
        super().__init__()
        n = matrix.shape[0]
        self.channels = compute_vertex_channels(c_in, c_out, matrix)
        self.vertex_ops = nn.ModuleList(_vertex_op(ops[t], self.channels[t]) for t in range(1, n - 1))
        # projections of the cell input, keyed "v<t>" for vertex t and "out" for the output
        self.projections = nn.ModuleDict()
        # per interior vertex: (source vertex, channels to keep or None) for its interior inputs
        self.wiring: list[list[tuple[int, int | None]]] = []
        for t in range(1, n - 1):
            sources = []
            for s in range(1, t):
                if matrix[s, t]:
                    keep = self.channels[t] if self.channels[s] > self.channels[t] else None
                    sources.append((s, keep))
            self.wiring.append(sources)
            if matrix[0, t]:
                self.projections[f"v{t}"] = ConvBNReLU(c_in, self.channels[t], 1)
        self.concat = [t for t in range(1, n - 1) if matrix[t, -1]]
        if matrix[0, -1]:
            self.projections["out"] = ConvBNReLU(c_in, c_out, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        values = [x]
        for t, sources in enumerate(self.wiring, start=1):
            total = None
            for s, keep in sources:
                y = values[s] if keep is None else values[s][:, :keep]
                total = y if total is None else total + y
            if f"v{t}" in self.projections:
                y = self.projections[f"v{t}"](x)
                total = y if total is None else total + y
            values.append(self.vertex_ops[t - 1](total))
        if not self.concat:
            return self.projections["out"](x)
        out = values[self.concat[0]] if len(self.concat) == 1 else torch.cat([values[t] for t in self.concat], dim=1)
        if "out" in self.projections:
            out = out + self.projections["out"](x)
        return out


class NB101Network(nn.Module):
    """Stem → stacks of cells (2×2 max-pool and channel doubling before each stack but the first)
    → global average pool → linear classifier, as nasbench's ``model_builder``."""

    def __init__(self, matrix: np.ndarray, ops: tuple[str, ...], in_channels: int, num_classes: int,
                 stem_channels: int, num_stacks: int, cells_per_stack: int):
        super().__init__()
        self.stem = ConvBNReLU(in_channels, stem_channels, 3)
        layers: list[nn.Module] = []
        c_in = c = stem_channels
        for stack in range(num_stacks):
            if stack > 0:
                layers.append(nn.MaxPool2d(2, stride=2))
                c *= 2
            for _ in range(cells_per_stack):
                layers.append(NB101Cell(matrix, ops, c_in, c))
                c_in = c
        self.cells = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.cells(self.stem(x))
        return self.classifier(torch.flatten(self.pool(x), 1))


# -- the space ----------------------------------------------------------------------------------
class NB101Space(Space):
    """NAS-Bench-101. Parsed form: ``(matrix, ops)``, the pruned cell (int 0/1 array, tuple of names)."""

    name = "nb101"
    profiles = {
        "paper": Profile("paper", (3, 32, 32), 10,
                         {"stem_channels": 128, "num_stacks": 3, "cells_per_stack": 3}),
        "zoo": Profile("zoo", ZOO_INPUT_SHAPE, ZOO_NUM_CLASSES,
                       {"stem_channels": 8, "num_stacks": 3, "cells_per_stack": 1}),
    }

    def parse(self, text: str) -> tuple[np.ndarray, tuple[str, ...]]:
        if not isinstance(text, str):
            raise ValueError(f"nb101: a spec must be a string, got {type(text).__name__}")
        s = text.strip()
        if s.startswith("("):
            matrix, ops = _parse_naslib_tuple(s)
        elif s.startswith("{"):
            matrix, ops = _parse_json(s)
        else:
            raise ValueError(f"nb101: cannot read spec {text[:60]!r}; give JSON "
                             '{"matrix": [[...]], "ops": [...]} or a NASLib tuple "(0, 1, ..., 1)"')
        return _check(matrix, ops)

    def format(self, parsed) -> str:
        matrix, ops = _check(np.asarray(parsed[0], dtype=np.int64), tuple(parsed[1]))
        return json.dumps({"matrix": matrix.tolist(), "ops": list(ops)}, separators=(",", ":"))

    def sample(self, rng: np.random.Generator) -> str:
        """nasbench's random spec: each upper-triangular edge on with p=0.5 and a random op per
        interior vertex on 7 vertices, redrawn until valid; returned pruned."""
        while True:
            matrix = np.triu(rng.integers(0, 2, size=(MAX_VERTICES, MAX_VERTICES)), 1)
            ops = (INPUT, *(OPS[i] for i in rng.integers(0, len(OPS), size=MAX_VERTICES - 2)), OUTPUT)
            try:
                return self.format((matrix, ops))
            except ValueError:
                continue

    def mutate(self, text: str, rng: np.random.Generator) -> str:
        """NASLib's mutation on the cell padded back to 7 vertices: flip each edge with probability
        1/7, change each interior op to another with probability 1/7; redrawn until the result is
        valid and its canonical string differs from the parent's."""
        matrix, ops = self.parse(text)
        original = self.format((matrix, ops))
        matrix, ops = _pad(matrix, ops)
        n = MAX_VERTICES
        for _ in range(100_000):
            new = matrix.copy()
            flips = np.triu(rng.random((n, n)) < 1 / n, 1)
            new[flips] = 1 - new[flips]
            new_ops = list(ops)
            for t in range(1, n - 1):
                if rng.random() < 1 / n:
                    choices = [o for o in OPS if o != new_ops[t]]
                    new_ops[t] = choices[int(rng.integers(len(choices)))]
            try:
                child = self.format((new, tuple(new_ops)))
            except ValueError:
                continue
            if child != original:
                return child
        raise RuntimeError(f"nb101: found no valid mutation of {text!r}")  # pragma: no cover

    def build(self, text: str, profile: str = "paper") -> nn.Module:
        matrix, ops = self.parse(text)
        p = self.profile(profile)
        return NB101Network(matrix, ops, p.input_shape[0], p.num_classes,
                            p["stem_channels"], p["num_stacks"], p["cells_per_stack"])


def _pad(matrix: np.ndarray, ops: tuple[str, ...]) -> tuple[np.ndarray, tuple[str, ...]]:
    """A pruned cell back on 7 vertices: unconnected conv3x3 vertices inserted before the output
    (NASLib's ``convert_to_cell``), so mutation can grow it again."""
    n = matrix.shape[0]
    padded = np.zeros((MAX_VERTICES, MAX_VERTICES), dtype=np.int64)
    padded[: n - 1, : n - 1] = matrix[: n - 1, : n - 1]
    padded[: n - 1, -1] = matrix[: n - 1, -1]
    return padded, (*ops[:-1], *(CONV3X3,) * (MAX_VERTICES - n), OUTPUT)
