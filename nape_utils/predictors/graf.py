"""GRAF, neural graph features (Kadlecová et al., ICML 2024), and the regressors trained on them.

GRAF describes a cell by a few interpretable graph statistics, each computed for every subset of the
space's operations (a feature "restricted to" a subset sees only the edges or nodes whose op is in it):

* ``op_count[op]``: how many times ``op`` occurs;
* ``min_path_len[S]``: the fewest edges on an input→output path that uses only ops in ``S``;
  no such path gives a sentinel (below);
* ``max_op_on_path[S]``: the most ops on an input→output path that uses only ops in ``S``;
* node degrees counting only ops in ``S``: the input's out-degree, the output's in-degree, and the
  mean in- and out-degree over all nodes.

The exact feature sets follow the authors' library ``gabikadlecova/GRAF`` (``graf_nas/features/
base.py``, ``nasbench201.py``, ``nasbench101.py``, ``darts.py``; configs ``graf_nas/configs/
{nb201,nb101,darts}.json``: every non-empty subset, in ``itertools.combinations`` order by size),
which refactors the paper's code ``gabikadlecova/zc_combine`` (``zc_combine/features/``):

``nb201`` (191 features; ops on the 6 edges of a 4-node cell, authors' op order skip_connect, none,
    nor_conv_3x3, nor_conv_1x1, avg_pool_3x3; ``none`` is an op like the others):
    5 op counts + 31 ``min_path_len`` + 31 ``max_op_on_path`` + 31 × 4 degrees. ``min_path_len``
    over the 31 allowed subsets equals zc_combine's over banned subsets of size 0–4 (the complements).
    No path: ``min_path_len`` = 6 (the number of edges, GRAF's ``max_val``; zc_combine used 5, the
    output index + 1 — the same ranks for a tree model) and ``max_op_on_path`` = 0. Every degree
    counts edges whose op is allowed; the mean in- and out-degree over the 4 nodes are equal (both
    are allowed edges / 4), kept as the authors do.
``nb101`` (47 features; ops on the nodes of the pruned cell): 5 op counts (input, output,
    maxpool3x3, conv1x1-bn-relu, conv3x3-bn-relu; input and output are always 1) + 7 ``min_path_len``
    + 7 ``max_op_on_path`` + 7 × 4 degrees over the subsets of the 3 cell ops. A path may pass only
    through allowed nodes (input and output always are); its length counts edges, ``max_op_on_path``
    counts the cell ops on it. No path: ``min_path_len`` = the number of nodes (GRAF's ``max_val``)
    and ``max_op_on_path`` = -1 (GRAF's ``max_num_on_path_opnodes`` returns len(path) − 4, i.e. ours
    − 2, and −4 without a path: a double subtraction; we keep its order, no path below every path).
    Degrees count allowed neighbours: the input's allowed successors, the output's allowed
    predecessors, and their means over all nodes (these two differ on NB-101).
``nb301`` (1,540 features; DARTS cells, normal and reduce; nodes c_{k-2}, c_{k-1}, 4 intermediate
    nodes and c_{k}; an ``out`` edge joins each concatenated node to c_{k}): per cell 8 op counts
    (``out`` and the 7 ops), then for each of the 127 op subsets: ``max_op_on_path`` from each input
    to c_{k} (``out`` edges always allowed and not counted; 0 without a path), and 4 degrees (each
    input's allowed out-degree, the mean allowed in- and out-degree over the cell's nodes). Order as
    GRAF: counts (normal, reduce), paths per subset (normal in0, in1, reduce in0, in1), degrees per
    subset (normal 4, reduce 4). GRAF has no ``min_path_len`` for DARTS.

``nb201`` is vectorised: every cell's features come from its 6 op ids with numpy over the whole batch
(a 4-node cell has only 4 input→output paths: 0→3, 0→1→3, 0→2→3, 0→1→2→3), so all 15,625 cells take
a fraction of a second (``nape bench graf``). :func:`nb201_features_reference` is an independent
per-cell implementation (path enumeration with networkx) the tests compare it with.

Generic GRAF (:func:`cg_features`, any :class:`~nape_utils.graphs.ComputationGraph`, so any family):
ops sit on nodes, so it follows the NB-101 definitions, with the vocabulary grouped into
:data:`OP_GROUPS` (conv, pool, norm, act, merge, identity, shape) so that the subsets stay tractable:
``op_count[op]`` for every vocabulary op, ``group_count[g]`` for every group, then for each of the 127
non-empty group subsets ``min_path_len`` (edges; no path → number of nodes), ``max_op_on_path``
(nodes between input and output on the longest allowed path; no path → −1) and the 4 degrees.
805 features; input and output nodes are always allowed on a path and never counted in a degree.

Regressors: :class:`GRAFRegressor` (``model="rf"``: scikit-learn's random forest with its defaults,
as the authors; ``"gb"``: gradient boosting; ``"hgb"``: histogram gradient boosting, for large
training sets), fitted on spec strings or on a feature matrix, with optional extra columns
(zero-cost proxies, FLOPs, parameters).
"""
from __future__ import annotations

import itertools
import pickle
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..checks import is_whole
from ..graphs.cg import ComputationGraph
from ..graphs.vocab import OP_ID, OPS as VOCAB
from ..spaces import Space, get_space

# ---------------------------------------------------------------------------------------------------
# op sets (the authors' orders)
# ---------------------------------------------------------------------------------------------------
#: NB-201 ops in the authors' (NASLib) order
NB201_OPS: tuple[str, ...] = ("skip_connect", "none", "nor_conv_3x3", "nor_conv_1x1", "avg_pool_3x3")
#: NB-101 node ops in the authors' order (``op_count`` covers all five; subsets the last three)
NB101_OPS: tuple[str, ...] = ("input", "output", "maxpool3x3", "conv1x1-bn-relu", "conv3x3-bn-relu")
NB101_CELL_OPS = NB101_OPS[2:]
#: NB-301 edge ops in the authors' order; ``out`` joins an intermediate node to the cell output
NB301_OPS: tuple[str, ...] = ("out", "max_pool_3x3", "avg_pool_3x3", "skip_connect", "sep_conv_3x3",
                              "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5")
NB301_CELL_OPS = NB301_OPS[1:]

#: op groups of the generic GRAF over computation graphs (every vocabulary op but input/output)
OP_GROUPS: dict[str, tuple[str, ...]] = {
    "conv": ("conv", "depthwise", "group_conv", "linear", "matmul"),
    "pool": ("maxpool", "avgpool", "global_pool", "mean"),
    "norm": ("batchnorm", "layernorm", "groupnorm"),
    "act": ("relu", "relu6", "sigmoid", "tanh", "hardswish", "hardsigmoid", "silu", "gelu", "softmax"),
    "merge": ("add", "mul", "concat"),
    "identity": ("identity", "zero", "dropout"),
    "shape": ("flatten", "reshape", "slice", "split", "pad", "upsample", "oov"),
}

#: the degree features of one subset, in the authors' order (in_degree, out_degree, avg_in, avg_out)
DEGREES = ("input_out_degree", "output_in_degree", "mean_in_degree", "mean_out_degree")
#: "no path" value of ``min_path_len`` on NB-201: the number of edges (GRAF's ``max_val``)
NB201_NO_PATH = 6
#: spaces with the authors' own feature set; any other space gets the generic CG features
SPACES = ("nb201", "nb101", "nb301")


def subsets(items: Sequence[str]) -> list[tuple[str, ...]]:
    """Every non-empty subset, by size then in ``itertools.combinations`` order (as GRAF's configs)."""
    return [c for k in range(1, len(items) + 1) for c in itertools.combinations(items, k)]


def _tag(subset: Sequence[str]) -> str:
    return ",".join(subset)


def _masks(subset_list: list[tuple[str, ...]], items: Sequence[str]) -> np.ndarray:
    """(n_subsets, n_items) booleans: item j belongs to subset i."""
    masks = np.array([[item in s for item in items] for s in subset_list], dtype=bool)
    return masks.reshape(len(subset_list), len(items))


# ---------------------------------------------------------------------------------------------------
# feature names
# ---------------------------------------------------------------------------------------------------
def _nb201_names() -> list[str]:
    subs = [_tag(s) for s in subsets(NB201_OPS)]
    return ([f"op_count[{op}]" for op in NB201_OPS] + [f"min_path_len[{s}]" for s in subs]
            + [f"max_op_on_path[{s}]" for s in subs] + [f"{d}[{s}]" for s in subs for d in DEGREES])


def _nb101_names() -> list[str]:
    subs = [_tag(s) for s in subsets(NB101_CELL_OPS)]
    return ([f"op_count[{op}]" for op in NB101_OPS] + [f"min_path_len[{s}]" for s in subs]
            + [f"max_op_on_path[{s}]" for s in subs] + [f"{d}[{s}]" for s in subs for d in DEGREES])


_NB301_DEGREES = ("in0_out_degree", "in1_out_degree", "mean_in_degree", "mean_out_degree")


def _nb301_names() -> list[str]:
    subs = [_tag(s) for s in subsets(NB301_CELL_OPS)]
    cells = ("normal", "reduce")
    return ([f"{c}.op_count[{op}]" for c in cells for op in NB301_OPS]
            + [f"{c}.max_op_on_path_in{i}[{s}]" for s in subs for c in cells for i in (0, 1)]
            + [f"{c}.{d}[{s}]" for s in subs for c in cells for d in _NB301_DEGREES])


def _cg_names() -> list[str]:
    subs = [_tag(s) for s in subsets(tuple(OP_GROUPS))]
    return ([f"op_count[{op}]" for op in VOCAB] + [f"group_count[{g}]" for g in OP_GROUPS]
            + [f"min_path_len[{s}]" for s in subs] + [f"max_op_on_path[{s}]" for s in subs]
            + [f"{d}[{s}]" for s in subs for d in DEGREES])


_NAMES = {"nb201": _nb201_names(), "nb101": _nb101_names(), "nb301": _nb301_names(), "cg": _cg_names()}


def feature_names(space: str | Space | None = None, *, generic: bool = False) -> list[str]:
    """The feature columns of a space (its own GRAF set for nb201/nb101/nb301, else the generic one);
    ``space=None`` or ``generic=True`` gives the generic computation-graph columns."""
    if space is None or generic:
        return list(_NAMES["cg"])
    name = get_space(space).name
    return list(_NAMES[name] if name in SPACES else _NAMES["cg"])


# ---------------------------------------------------------------------------------------------------
# NB-201: vectorised over cells
# ---------------------------------------------------------------------------------------------------
_NB201_INDEX = {op: i for i, op in enumerate(NB201_OPS)}
_NB201_MASKS = _masks(subsets(NB201_OPS), NB201_OPS)  # (31, 5)


def nb201_op_ids(specs: Sequence[str]) -> np.ndarray:
    """(n, 6) op ids (indices into :data:`NB201_OPS`) of NB-201 specs, edges in arch-string order
    (0→1, 0→2, 1→2, 0→3, 1→3, 2→3)."""
    space = get_space("nb201")
    ids = np.empty((len(specs), 6), dtype=np.int64)
    for i, spec in enumerate(specs):
        try:
            ops = space.parse(spec)
        except ValueError as err:
            raise ValueError(f"architecture {i + 1}: {err}") from None
        ids[i] = [_NB201_INDEX[op] for op in ops]
    return ids


def nb201_features_from_ids(ids: np.ndarray) -> np.ndarray:
    """GRAF's 191 NB-201 features of every row of ``ids`` ((n, 6) op ids, see :func:`nb201_op_ids`),
    as a float (n, 191) array, computed with numpy over the whole batch."""
    ids = np.asarray(ids)
    if ids.ndim != 2 or ids.shape[1] != 6:
        raise ValueError(f"NB-201 op ids must have shape (n, 6), got {ids.shape}")
    if ids.size and (ids.min() < 0 or ids.max() >= len(NB201_OPS)):
        raise ValueError(f"NB-201 op ids must lie in 0..{len(NB201_OPS) - 1}")
    n = len(ids)
    allowed = _NB201_MASKS[:, ids]  # (31, n, 6): edge k of cell i has an allowed op under subset s
    e01, e02, e12, e03, e13, e23 = (allowed[..., k] for k in range(6))
    direct = e03                                  # 0→3
    double = (e01 & e13) | (e02 & e23)            # 0→1→3, 0→2→3
    triple = e01 & e12 & e23                      # 0→1→2→3
    min_len = np.where(direct, 1, np.where(double, 2, np.where(triple, 3, NB201_NO_PATH)))
    max_ops = np.where(triple, 3, np.where(double, 2, np.where(direct, 1, 0)))
    total = allowed.sum(-1) / 4.0
    degrees = np.stack([e01.astype(int) + e02 + e03, e03.astype(int) + e13 + e23, total, total], axis=-1)
    counts = (ids[:, :, None] == np.arange(len(NB201_OPS))).sum(1)
    return np.concatenate([counts, min_len.T, max_ops.T, degrees.transpose(1, 0, 2).reshape(n, -1)],
                          axis=1).astype(float)


def nb201_features(specs: Sequence[str]) -> np.ndarray:
    """GRAF's 191 NB-201 features of each spec (arch strings or NASLib tuples), (n, 191) floats."""
    return nb201_features_from_ids(nb201_op_ids(specs))


def nb201_features_reference(spec: str) -> dict[str, float]:
    """The NB-201 features of one cell by a direct, unvectorised route: enumerate the input→output
    paths with networkx and test each against each op subset (used to check the vectorised code)."""
    import networkx as nx

    from ..spaces.nb201 import EDGES

    ops = get_space("nb201").parse(spec)
    edge_op = dict(zip(EDGES, ops))
    graph = nx.DiGraph(list(EDGES))
    paths = [list(zip(p, p[1:])) for p in nx.all_simple_paths(graph, 0, 3)]
    out: dict[str, float] = {f"op_count[{op}]": float(ops.count(op)) for op in NB201_OPS}
    for s in subsets(NB201_OPS):
        ok = [len(p) for p in paths if all(edge_op[e] in s for e in p)]
        out[f"min_path_len[{_tag(s)}]"] = float(min(ok) if ok else NB201_NO_PATH)
    for s in subsets(NB201_OPS):
        ok = [len(p) for p in paths if all(edge_op[e] in s for e in p)]
        out[f"max_op_on_path[{_tag(s)}]"] = float(max(ok) if ok else 0)
    for s in subsets(NB201_OPS):
        live = [e for e in EDGES if edge_op[e] in s]
        out[f"input_out_degree[{_tag(s)}]"] = float(sum(src == 0 for src, _ in live))
        out[f"output_in_degree[{_tag(s)}]"] = float(sum(dst == 3 for _, dst in live))
        out[f"mean_in_degree[{_tag(s)}]"] = float(np.mean([sum(d == v for _, d in live) for v in range(4)]))
        out[f"mean_out_degree[{_tag(s)}]"] = float(np.mean([sum(src == v for src, _ in live) for v in range(4)]))
    return {name: out[name] for name in _NAMES["nb201"]}


# ---------------------------------------------------------------------------------------------------
# DAG paths, vectorised over op subsets
# ---------------------------------------------------------------------------------------------------
def _topological_order(n: int, edges: np.ndarray) -> np.ndarray:
    """Position of every node in a topological order (Kahn); ValueError on a cycle."""
    indegree = np.bincount(edges[:, 1], minlength=n) if len(edges) else np.zeros(n, dtype=np.int64)
    successors: list[list[int]] = [[] for _ in range(n)]
    for s, d in edges.tolist():
        successors[s].append(d)
    indegree = indegree.tolist()
    stack = [v for v in range(n) if indegree[v] == 0]
    position = np.full(n, -1, dtype=np.int64)
    k = 0
    while stack:
        v = stack.pop()
        position[v] = k
        k += 1
        for w in successors[v]:
            indegree[w] -= 1
            if indegree[w] == 0:
                stack.append(w)
    if k != n:
        raise ValueError("GRAF needs a directed acyclic graph, but this graph has a cycle")
    return position


def _dag_paths(n: int, edges: np.ndarray, edge_ok: np.ndarray, source: int, target: int,
               position: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Shortest and longest source→target path (in edges) using only the edges allowed under each
    subset (``edge_ok``: (n_subsets, n_edges) booleans); -1 where no such path exists."""
    if position is None:
        position = _topological_order(n, edges)
    n_sub = edge_ok.shape[0]
    big = np.iinfo(np.int64).max // 4
    shortest = np.full((n_sub, n), big, dtype=np.int64)
    longest = np.full((n_sub, n), -1, dtype=np.int64)
    shortest[:, source] = 0
    longest[:, source] = 0
    # an edge is processed after every edge into its source: sort by the target's topological position
    for k in (np.argsort(position[edges[:, 1]], kind="stable") if len(edges) else []):
        s, d = edges[k]
        ok = edge_ok[:, k] & (longest[:, s] >= 0)
        if not ok.any():
            continue
        shortest[:, d] = np.where(ok, np.minimum(shortest[:, d], shortest[:, s] + 1), shortest[:, d])
        longest[:, d] = np.where(ok, np.maximum(longest[:, d], longest[:, s] + 1), longest[:, d])
    reached = longest[:, target] >= 0
    return np.where(reached, shortest[:, target], -1), longest[:, target]


def _opnode_features(ops: np.ndarray, edges: np.ndarray, member: np.ndarray, source: int, target: int) -> np.ndarray:
    """Path and degree features of a graph with ops on nodes, for every subset.

    ``ops``: (n,) op kind per node; ``member``: (n_subsets, n_kinds) booleans (kind in subset). A path
    may use a node when its kind is in the subset or it is the source or target; degrees count only
    neighbours whose kind is in the subset. Returns (n_subsets, 6): min_path_len, max_op_on_path and
    the 4 :data:`DEGREES`, with GRAF's no-path values (number of nodes; -1)."""
    n = len(ops)
    in_subset = member[:, ops]                   # (S, n)
    on_path = in_subset.copy()
    on_path[:, [source, target]] = True
    src, dst = (edges[:, 0], edges[:, 1]) if len(edges) else (np.zeros(0, int), np.zeros(0, int))
    shortest, longest = _dag_paths(n, edges, on_path[:, src] & on_path[:, dst], source, target)
    min_len = np.where(shortest >= 0, shortest, n)
    max_ops = np.where(longest >= 0, longest - 1, -1)
    from_allowed = in_subset[:, src]             # edge counts towards its target's in-degree
    to_allowed = in_subset[:, dst]               # edge counts towards its source's out-degree
    input_out = to_allowed[:, src == source].sum(1)
    output_in = from_allowed[:, dst == target].sum(1)
    return np.stack([min_len, max_ops, input_out, output_in, from_allowed.sum(1) / n, to_allowed.sum(1) / n],
                    axis=1).astype(float)


# ---------------------------------------------------------------------------------------------------
# NB-101
# ---------------------------------------------------------------------------------------------------
_NB101_MASKS = _masks(subsets(NB101_CELL_OPS), NB101_OPS)  # (7, 5): input/output never members


def nb101_features_one(spec: str) -> np.ndarray:
    """GRAF's 47 NB-101 features of one (pruned) cell."""
    matrix, ops = get_space("nb101").parse(spec)
    kinds = np.array([NB101_OPS.index(op) for op in ops])
    edges = np.argwhere(np.asarray(matrix) == 1).astype(np.int64).reshape(-1, 2)
    counts = np.bincount(kinds, minlength=len(NB101_OPS)).astype(float)
    block = _opnode_features(kinds, edges, _NB101_MASKS, 0, len(ops) - 1)  # (7, 6)
    return np.concatenate([counts, block[:, 0], block[:, 1], block[:, 2:].reshape(-1)])


# ---------------------------------------------------------------------------------------------------
# NB-301 (DARTS)
# ---------------------------------------------------------------------------------------------------
_NB301_MASKS = _masks(subsets(NB301_CELL_OPS), NB301_OPS)  # (127, 8): 'out' never a member
_NB301_MASKS_OUT = _NB301_MASKS.copy()
_NB301_MASKS_OUT[:, 0] = True                                # paths always pass 'out' edges


def _darts_cell(pairs, concat) -> tuple[np.ndarray, np.ndarray]:
    """Edges and their op kinds of one DARTS cell: nodes 0 = c_{k-2}, 1 = c_{k-1}, 2..5 the
    intermediate nodes, 6 = c_{k}."""
    edges = [(inp, 2 + i // 2) for i, (_, inp) in enumerate(pairs)] + [(int(c), 6) for c in concat]
    kinds = [NB301_OPS.index(op) for op, _ in pairs] + [0] * len(concat)
    return np.array(edges, dtype=np.int64), np.array(kinds, dtype=np.int64)


def _darts_cell_features(pairs, concat) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    edges, kinds = _darts_cell(pairs, concat)
    counts = np.bincount(kinds, minlength=len(NB301_OPS)).astype(float)
    position = _topological_order(7, edges)
    paths = []
    for source in (0, 1):
        _, longest = _dag_paths(7, edges, _NB301_MASKS_OUT[:, kinds], source, 6, position)
        paths.append(np.where(longest > 0, longest - 1, 0))    # drop the final 'out' edge
    allowed = _NB301_MASKS[:, kinds]                             # (127, E)
    n_nodes = len(np.unique(edges))
    total = allowed.sum(1) / n_nodes
    degrees = np.stack([allowed[:, edges[:, 0] == 0].sum(1), allowed[:, edges[:, 0] == 1].sum(1), total, total], 1)
    return counts, np.stack(paths, 1).astype(float), degrees.astype(float)


def nb301_features_one(spec: str) -> np.ndarray:
    """GRAF's 1,540 NB-301 features of one genotype (normal and reduce cell)."""
    g = get_space("nb301").parse(spec)
    normal = _darts_cell_features(g.normal, g.normal_concat)
    reduce = _darts_cell_features(g.reduce, g.reduce_concat)
    return np.concatenate([normal[0], reduce[0],
                           np.concatenate([normal[1], reduce[1]], 1).reshape(-1),
                           np.concatenate([normal[2], reduce[2]], 1).reshape(-1)])


# ---------------------------------------------------------------------------------------------------
# generic: any computation graph
# ---------------------------------------------------------------------------------------------------
_GROUP_OF = {op: g for g, ops in OP_GROUPS.items() for op in ops}
_GROUP_NAMES = tuple(OP_GROUPS)
#: (n_vocab,) group index of each vocabulary op, -1 for input/output
_VOCAB_GROUP = np.array([_GROUP_NAMES.index(_GROUP_OF[op]) if op in _GROUP_OF else -1 for op in VOCAB])
_GROUP_SUBSETS = subsets(_GROUP_NAMES)
_CG_MASKS = np.array([[(_VOCAB_GROUP[v] >= 0) and (_GROUP_NAMES[_VOCAB_GROUP[v]] in s) for v in range(len(VOCAB))]
                      for s in _GROUP_SUBSETS], dtype=bool)  # (127, n_vocab)


def cg_features(graph: ComputationGraph) -> np.ndarray:
    """The generic GRAF features (805) of any computation graph: see the module docstring."""
    ops = np.asarray(graph.ops, dtype=np.int64)
    roles = {role: np.flatnonzero(ops == OP_ID[role]) for role in ("input", "output")}
    for role, where in roles.items():
        if len(where) != 1:
            raise ValueError(f"GRAF needs a computation graph with exactly one {role} node, found {len(where)}")
    counts = np.bincount(ops, minlength=len(VOCAB)).astype(float)
    groups = np.array([counts[_VOCAB_GROUP == g].sum() for g in range(len(_GROUP_NAMES))])
    block = _opnode_features(ops, np.asarray(graph.edges, dtype=np.int64).reshape(-1, 2), _CG_MASKS,
                             int(roles["input"][0]), int(roles["output"][0]))
    return np.concatenate([counts, groups, block[:, 0], block[:, 1], block[:, 2:].reshape(-1)])


# ---------------------------------------------------------------------------------------------------
# tables
# ---------------------------------------------------------------------------------------------------
def _per_spec(func, specs: Sequence[str], width: int) -> np.ndarray:
    out = np.empty((len(specs), width))
    for i, spec in enumerate(specs):
        try:
            out[i] = func(spec)
        except ValueError as err:
            raise ValueError(f"architecture {i + 1}: {err}") from None
    return out


def graf_features(space: str | Space, specs: Sequence[str], *, profile: str = "paper", generic: bool = False):
    """A pandas DataFrame of GRAF features, one row per spec, columns :func:`feature_names`.

    nb201, nb101 and nb301 get the authors' feature sets; every other space (or ``generic=True``)
    the generic features of the spec's computation graph at ``profile``. Counts, path lengths and
    the input/output degrees are integers, mean degrees floats."""
    import pandas as pd

    space = get_space(space)
    specs = [str(s) for s in specs]
    if not specs:
        raise ValueError("no architectures given")
    names = feature_names(space, generic=generic)
    space.profile(profile)  # a bad profile name fails here, even where the features do not use it
    if generic or space.name not in SPACES:
        from ..graphs import graph_of

        values = _per_spec(lambda s: cg_features(graph_of(space, s, profile)), specs, len(names))
    elif space.name == "nb201":
        values = nb201_features(specs)
    elif space.name == "nb101":
        values = _per_spec(nb101_features_one, specs, len(names))
    else:
        values = _per_spec(nb301_features_one, specs, len(names))
    is_mean = np.array([".mean_" in c or c.startswith("mean_") for c in names])
    blocks = [pd.DataFrame(values[:, ~is_mean].astype(np.int64), columns=[c for c, m in zip(names, is_mean) if not m]),
              pd.DataFrame(values[:, is_mean], columns=[c for c, m in zip(names, is_mean) if m])]
    return pd.concat(blocks, axis=1)[names]


def graf_table(space: str | Space, specs: Sequence[str], *, profile: str = "paper", generic: bool = False):
    """:func:`graf_features` with the canonical spec as the first column (what ``nape graf`` writes)."""
    import pandas as pd

    space, specs = get_space(space), list(specs)
    table = graf_features(space, specs, profile=profile, generic=generic)
    return pd.concat([pd.DataFrame({"spec": [space.canonical(s) for s in specs]}), table], axis=1)


# ---------------------------------------------------------------------------------------------------
# regressors
# ---------------------------------------------------------------------------------------------------
#: model name → scikit-learn class (module, name); all used with their defaults and a seed
MODELS = {"rf": ("sklearn.ensemble", "RandomForestRegressor"),
          "gb": ("sklearn.ensemble", "GradientBoostingRegressor"),
          "hgb": ("sklearn.ensemble", "HistGradientBoostingRegressor")}
#: models that accept NaN features (treated as missing)
NAN_MODELS = ("rf", "hgb")


def _is_spec_list(x: Any) -> bool:
    if isinstance(x, str):
        return False
    if isinstance(x, np.ndarray):
        return x.ndim == 1 and x.dtype.kind in "OUS"
    try:
        import pandas as pd

        if isinstance(x, pd.Series):
            return x.dtype == object or x.dtype.kind in "OUS"
    except ImportError:  # pragma: no cover
        pass
    return isinstance(x, (list, tuple)) and len(x) > 0 and all(isinstance(v, str) for v in x)


def _matrix(x: Any, what: str, prefix: str) -> tuple[np.ndarray, list[str]]:
    """A float 2-D matrix and column names from a DataFrame, a dict of columns or an array."""
    import pandas as pd

    if isinstance(x, dict):
        x = pd.DataFrame(x)
    if isinstance(x, pd.Series):
        x = x.to_frame()
    if isinstance(x, pd.DataFrame):
        names = [str(c) for c in x.columns]
        try:
            values = x.to_numpy(dtype=float)
        except (TypeError, ValueError):
            raise ValueError(f"{what} must be numeric; non-numeric columns: "
                             f"{[c for c in x.columns if x[c].dtype.kind not in 'biuf']}") from None
    else:
        try:
            values = np.asarray(x, dtype=float)
        except (TypeError, ValueError):
            raise ValueError(f"{what} must be numeric (a 2-D array or a DataFrame)") from None
        if values.ndim == 1:
            values = values[:, None]
        names = [f"{prefix}{i}" for i in range(values.shape[1] if values.ndim == 2 else 0)]
    if values.ndim != 2:
        raise ValueError(f"{what} must be 2-D (rows = architectures), got shape {values.shape}")
    if np.isinf(values).any():
        raise ValueError(f"{what} holds inf values; replace them (NaN is allowed and treated as missing)")
    return values, names


class GRAFRegressor:
    """GRAF features → a scikit-learn regressor, scikit-learn style.

    ``fit(X, y, extra=None)`` and ``predict(X, extra=None)`` take ``X`` as spec strings of ``space``
    (GRAF features are computed) or as a ready feature matrix (DataFrame or 2-D array); ``extra``
    appends columns (zero-cost proxies, FLOPs, parameters), the same ones at fit and predict. NaN
    features (a failed proxy) are treated as missing by ``rf`` and ``hgb`` and refused by ``gb``;
    NaN or inf labels are an error.

    ``model="rf"``: ``RandomForestRegressor`` with scikit-learn's defaults (the GRAF authors'
    choice); ``"gb"``: ``GradientBoostingRegressor``; ``"hgb"``: ``HistGradientBoostingRegressor``
    (its default ``min_samples_leaf=20`` leaves it constant on a few dozen cells: use it for
    hundreds or more). ``seed`` seeds each; ``model_params`` override their defaults."""

    def __init__(self, space: str | None = None, model: str = "rf", *, seed: int = 0, profile: str = "paper",
                 generic: bool = False, **model_params):
        if model not in MODELS:
            raise ValueError(f"unknown GRAF model {model!r}; choose one of {', '.join(MODELS)}")
        if not is_whole(seed):
            raise ValueError(f"seed must be an integer, got {seed!r}")
        self.space = get_space(space).name if space is not None else None
        self.model = model
        self.seed = seed
        self.profile = profile
        self.generic = generic
        self.model_params = model_params
        self.estimator_ = None
        self.feature_names_: list[str] | None = None
        self.n_extra_ = 0

    # -- inputs ------------------------------------------------------------------------------------
    def features(self, X) -> tuple[np.ndarray, list[str]]:
        """The feature matrix of ``X`` (spec strings or a feature matrix) and its column names."""
        if X is None or (hasattr(X, "__len__") and len(X) == 0):
            raise ValueError("no architectures given (X is empty)")
        if _is_spec_list(X):
            if self.space is None:
                raise ValueError("X holds spec strings: give GRAFRegressor(space=...) so GRAF features can "
                                 "be computed, or pass a feature matrix")
            table = graf_features(self.space, list(X), profile=self.profile, generic=self.generic)
            return table.to_numpy(dtype=float), list(table.columns)
        return _matrix(X, "X", "x")

    def _design(self, X, extra) -> tuple[np.ndarray, list[str], int]:
        values, names = self.features(X)
        n_extra = 0
        if extra is not None:
            more, more_names = _matrix(extra, "extra", "extra")
            if len(more) != len(values):
                raise ValueError(f"extra has {len(more)} rows but X has {len(values)} architectures")
            values, names, n_extra = np.hstack([values, more]), names + more_names, more.shape[1]
        if self.model not in NAN_MODELS and np.isnan(values).any():
            raise ValueError(f"model {self.model!r} does not accept NaN features "
                             f"({int(np.isnan(values).any(1).sum())} rows have some); use model='rf' or 'hgb', "
                             "or fill them")
        return values, names, n_extra

    # -- estimator ---------------------------------------------------------------------------------
    def _make(self):
        import importlib

        module, name = MODELS[self.model]
        return getattr(importlib.import_module(module), name)(**{"random_state": int(self.seed), **self.model_params})

    def fit(self, X, y, extra=None) -> "GRAFRegressor":
        values, names, n_extra = self._design(X, extra)
        y = np.asarray(y, dtype=float)
        if y.ndim != 1:
            y = y.ravel() if y.ndim == 2 and 1 in y.shape else y
        if y.ndim != 1:
            raise ValueError(f"y must be 1-D (one label per architecture), got shape {y.shape}")
        if len(y) != len(values):
            raise ValueError(f"{len(values)} architectures but {len(y)} labels")
        bad = ~np.isfinite(y)
        if bad.any():
            raise ValueError(f"y holds {int(bad.sum())} NaN or inf labels (first at position {int(np.argmax(bad))}); "
                             "drop those architectures before fitting")
        if len(y) < 2:
            raise ValueError("fitting needs at least 2 labelled architectures")
        self.estimator_ = self._make().fit(values, y)
        self.feature_names_, self.n_extra_ = names, n_extra
        return self

    def predict(self, X, extra=None) -> np.ndarray:
        if self.estimator_ is None:
            raise RuntimeError("this GRAFRegressor is not fitted yet; call fit(X, y) first")
        values, names, n_extra = self._design(X, extra)
        if n_extra != self.n_extra_:
            raise ValueError(f"fitted with {self.n_extra_} extra columns, but predict got {n_extra}; "
                             "pass the same extra columns as at fit")
        if len(names) != len(self.feature_names_):
            raise ValueError(f"fitted on {len(self.feature_names_)} columns, predict got {len(names)}")
        return self.estimator_.predict(values)

    def feature_importances(self):
        """Impurity importances of the random forest, a pandas Series sorted high to low."""
        import pandas as pd

        if self.estimator_ is None:
            raise RuntimeError("this GRAFRegressor is not fitted yet")
        if not hasattr(self.estimator_, "feature_importances_"):
            raise ValueError(f"model {self.model!r} has no impurity importances (use model='rf', or "
                             "sklearn.inspection.permutation_importance)")
        return pd.Series(self.estimator_.feature_importances_, index=self.feature_names_).sort_values(ascending=False)

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_bytes(pickle.dumps(self))
        return path

    @classmethod
    def load(cls, path: str | Path) -> "GRAFRegressor":
        obj = pickle.loads(Path(path).read_bytes())
        if not isinstance(obj, cls):
            raise ValueError(f"{path} does not hold a GRAFRegressor")
        return obj

    def __repr__(self) -> str:
        return f"GRAFRegressor(space={self.space!r}, model={self.model!r}, seed={self.seed})"
