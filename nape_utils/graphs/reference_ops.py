"""GENNAPE's reference representation of two ops that nape keeps atomic.

nape makes NB-201's ``none`` one ``zero`` node and its ``avg_pool_3x3`` one ``avgpool`` node. The
authors' TF networks (Ascend-Research/GENNAPE, ``search_space/nb201/operations_tf.py``) build ``none`` as
``identity(x) * 0`` and the cell's average pool as pooling followed by batch norm (``PoolBN``), so
in their graphs these ops are made of more common op types. :func:`reference_ops` rewrites a CG that way:

* every ``zero`` node becomes ``identity`` followed by a new ``mul`` node;
* every stride-1 ``avgpool`` node (same size in and out: NB-201's cell op, not its stride-2
  reduction shortcut) is followed by a new ``batchnorm`` node (2·C parameters, no FLOPs).

A new node is inserted right after the node it follows and takes over that node's out-edges, so the
node order stays a forward order. FLOPs are unchanged. ``encoders.features.reference_ops_batch``
applies the same rewrite to a featurized batch (what GENNAPE's ``op_repr="reference"`` does).
"""
from __future__ import annotations

import numpy as np

from .cg import FEATURE_INDEX, ComputationGraph
from .vocab import OP_ID

#: GENNAPE's op representations: nape's atomic ops, or the reference's compositions (this module)
OP_REPRESENTATIONS = ("atomic", "reference")


def rewrite_targets(ops: np.ndarray, same_size: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(indices of the nodes that get a follower, the op id each keeps, the follower's op id), in
    node order, from op ids and a per-node "output size equals input size" flag."""
    zero = ops == OP_ID["zero"]
    pool = (ops == OP_ID["avgpool"]) & same_size
    index = np.flatnonzero(zero | pool)
    kept = np.where(zero[index], OP_ID["identity"], ops[index])
    follower = np.where(zero[index], OP_ID["mul"], OP_ID["batchnorm"])
    return index, kept, follower


def reference_ops(graph: ComputationGraph) -> ComputationGraph:
    """The CG with ``none`` as identity × 0 and stride-1 average pools as pool + batch norm."""
    f = graph.features
    same = (f[:, FEATURE_INDEX["h_in"]] == f[:, FEATURE_INDEX["h_out"]]) & \
           (f[:, FEATURE_INDEX["w_in"]] == f[:, FEATURE_INDEX["w_out"]])
    index, kept, follower = rewrite_targets(graph.ops, same)
    if not len(index):
        return ComputationGraph(graph.ops.copy(), f.copy(), graph.edges.copy(), graph.names, dict(graph.meta))
    n = graph.n_nodes
    is_target = np.zeros(n, dtype=bool)
    is_target[index] = True
    position = np.arange(n) + np.cumsum(is_target) - is_target  # old node → new index
    inserted = position[index] + 1
    size = n + len(index)
    ops = np.empty(size, dtype=np.int64)
    ops[position] = graph.ops
    ops[position[index]] = kept
    ops[inserted] = follower
    rows = np.zeros((len(index), f.shape[1]), dtype=np.int64)
    c, h, w = (f[index, FEATURE_INDEX[k]] for k in ("c_out", "h_out", "w_out"))
    for key, value in (("stride", 1), ("groups", 1), ("c_in", c), ("c_out", c), ("h_in", h), ("h_out", h),
                       ("w_in", w), ("w_out", w)):
        rows[:, FEATURE_INDEX[key]] = value
    rows[:, FEATURE_INDEX["params"]] = np.where(follower == OP_ID["batchnorm"], 2 * c, 0)
    features = np.empty((size, f.shape[1]), dtype=np.int64)
    features[position] = f
    features[inserted] = rows
    follower_of = np.full(n, -1)
    follower_of[index] = inserted
    src, dst = graph.edges[:, 0], graph.edges[:, 1]
    moved = np.where(is_target[src], follower_of[src], position[src])
    edges = np.concatenate([np.stack([moved, position[dst]], 1), np.stack([position[index], inserted], 1)])
    names = None
    if graph.names is not None:
        names = [""] * size
        for i, name in enumerate(graph.names):
            names[position[i]] = name
        for i, j in zip(index.tolist(), inserted.tolist()):
            names[j] = f"{graph.names[i]}.{'mul' if ops[j] == OP_ID['mul'] else 'bn'}"
    return ComputationGraph(ops, features, edges, names, {**graph.meta, "op_repr": "reference"})
