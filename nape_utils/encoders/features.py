"""From a ComputationGraph to the tensors GENNAPE's node embedding reads.

Per node: the op id; a resolution vector [H_in, H_out, W_in, W_out, C_in, C_out] with sizes divided
by :data:`SIZE_SCALE` and channels by :data:`CHANNEL_SCALE`; and, for weighted ops (conv, depthwise,
grouped conv, linear), kernel height and width as small ids (1–7, larger clipped to 7) and a has-bias
flag (the op has more parameters than its weight alone). Stride is not a feature: it shows in H_in vs H_out.

Every node feature depends on its own row only, so :func:`batch_graphs` featurizes many graphs in one
vectorised pass over their concatenated rows; :func:`featurize` + :func:`collate` give the same batch
one graph at a time (for training, where graphs are reshuffled into new batches every epoch).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch_geometric.data import Batch, Data

from ..graphs.cg import FEATURE_INDEX, ComputationGraph
from ..graphs.vocab import OP_ID, OPS, WEIGHTED_OPS

SIZE_SCALE = 32.0      # CIFAR-size inputs map to ≤ 1; GENNAPE divides by 256 or per-family maxima
CHANNEL_SCALE = 512.0  # as GENNAPE
MAX_KERNEL = 7
N_OPS = len(OPS)
#: per-node fields of a featurized graph, in the order collate concatenates them
NODE_FIELDS = ("op", "res", "kernel", "bias", "weighted")
_WEIGHTED_IDS = np.array(sorted(OP_ID[op] for op in WEIGHTED_OPS))
_RES = [FEATURE_INDEX[k] for k in ("h_in", "h_out", "w_in", "w_out", "c_in", "c_out")]
_FLOPS, _PARAMS = FEATURE_INDEX["flops"], FEATURE_INDEX["params"]


def _weight_count(f: np.ndarray, linear: np.ndarray) -> np.ndarray:
    """Weights of a conv/linear without bias, from its kernel, channels and groups."""
    kh, kw, groups = f[:, FEATURE_INDEX["kernel_h"]], f[:, FEATURE_INDEX["kernel_w"]], np.maximum(f[:, FEATURE_INDEX["groups"]], 1)
    c_in, c_out = f[:, FEATURE_INDEX["c_in"]], f[:, FEATURE_INDEX["c_out"]]
    conv = kh * kw * (c_in // groups) * c_out
    return np.where(linear, c_in * c_out, conv)


def node_features(ops: np.ndarray, f: np.ndarray) -> dict[str, torch.Tensor]:
    """:data:`NODE_FIELDS` as tensors, from op ids and raw CG feature rows (of one graph or many)."""
    weighted = np.isin(ops, _WEIGHTED_IDS)
    linear = ops == OP_ID["linear"]
    res = f[:, _RES].astype(np.float32)
    res[:, :4] /= SIZE_SCALE
    res[:, 4:] /= CHANNEL_SCALE
    kernel = np.clip(f[:, [FEATURE_INDEX["kernel_h"], FEATURE_INDEX["kernel_w"]]], 0, MAX_KERNEL)
    kernel = np.where(linear[:, None], 1, kernel) * weighted[:, None]
    bias = (weighted & (f[:, _PARAMS] > _weight_count(f, linear))).astype(np.int64)
    return {"op": torch.from_numpy(np.array(ops, dtype=np.int64)), "res": torch.from_numpy(res),
            "kernel": torch.from_numpy(kernel.astype(np.int64)), "bias": torch.from_numpy(bias),
            "weighted": torch.from_numpy(weighted)}


def featurize(graph: ComputationGraph) -> Data:
    """A PyG ``Data`` with ``op``, ``res`` (float, 6), ``kernel`` (long, 2), ``bias`` (long),
    ``weighted`` (bool) per node and ``edge_index``; graph-level ``flops`` and ``params``."""
    return Data(
        **node_features(graph.ops, graph.features),
        edge_index=torch.from_numpy(graph.edges.T.copy()).long().reshape(2, -1), num_nodes=graph.n_nodes,
        flops=torch.tensor([float(graph.flops)]), params=torch.tensor([float(graph.params)]),
        spec=graph.meta.get("spec", ""),
    )


def collate(items: Sequence[Data]) -> Batch:
    """One ``Batch`` of featurized graphs, as ``Batch.from_data_list`` makes it (node fields and
    shifted edges concatenated, ``batch``, ``ptr``), ≈ 1.5× faster: it knows the fields instead of
    inspecting every attribute of every graph."""
    if not items:
        raise ValueError("cannot collate an empty list of graphs")
    sizes = [int(d.num_nodes) for d in items]
    starts = np.cumsum([0, *sizes[:-1]]).tolist()
    edge_index = torch.cat([d.edge_index + s for d, s in zip(items, starts)], dim=1)
    nodes = {k: torch.cat([d[k] for d in items]) for k in NODE_FIELDS}
    return _batch(nodes, edge_index, torch.tensor(sizes), torch.cat([d.flops for d in items]),
                  torch.cat([d.params for d in items]), [d.spec for d in items])


def batch_graphs(graphs: Sequence[ComputationGraph]) -> Batch:
    """The batch ``collate([featurize(g) for g in graphs])`` gives, built from all graphs' rows at once."""
    if not graphs:
        raise ValueError("cannot batch an empty list of graphs")
    sizes = np.array([g.n_nodes for g in graphs])
    starts = np.cumsum(sizes) - sizes
    f = np.concatenate([g.features for g in graphs])
    edges = np.concatenate([g.edges + s for g, s in zip(graphs, starts.tolist())])
    # per-graph sums from a running total: exact in int64, as ComputationGraph.flops; then float32, as featurize
    totals = np.concatenate([np.zeros((1, 2), np.int64), np.cumsum(f[:, [_FLOPS, _PARAMS]], axis=0)])
    per_graph = (totals[starts + sizes] - totals[starts]).astype(np.float32)
    return _batch(node_features(np.concatenate([g.ops for g in graphs]), f), torch.from_numpy(edges.T.copy()),
                  torch.from_numpy(sizes), torch.from_numpy(per_graph[:, 0].copy()),
                  torch.from_numpy(per_graph[:, 1].copy()), [g.meta.get("spec", "") for g in graphs])


def _batch(nodes: dict, edge_index: torch.Tensor, sizes: torch.Tensor, flops, params, specs: list) -> Batch:
    sizes = sizes.long()
    ptr = torch.cat([torch.zeros(1, dtype=torch.long), sizes.cumsum(0)])
    batch = torch.repeat_interleave(torch.arange(len(sizes)), sizes)
    return Batch(**nodes, edge_index=edge_index.long().reshape(2, -1), batch=batch, ptr=ptr,
                 num_nodes=int(ptr[-1]), flops=flops, params=params, spec=specs)


def reference_ops_batch(batch: Batch) -> Batch:
    """:func:`nape_utils.graphs.reference_ops.reference_ops` on a featurized batch (any device): ``zero``
    nodes read as ``identity`` followed by a new ``mul`` node, stride-1 ``avgpool`` nodes are followed
    by a new ``batchnorm`` node, each inserted right after its node. Node fields, edges and ``ptr``
    equal those of the rewritten CGs batched; graph-level FLOPs and parameters are kept as they were."""
    from ..graphs.reference_ops import rewrite_targets

    op, res = batch.op, batch.res
    same = (res[:, 0] == res[:, 1]) & (res[:, 2] == res[:, 3])
    index, kept, follower = rewrite_targets(op.cpu().numpy(), same.cpu().numpy())
    if not len(index):
        return batch
    device = op.device
    index, kept, follower = (torch.from_numpy(a).to(device) for a in (index, kept, follower))
    n, size = len(op), len(op) + len(index)
    is_target = torch.zeros(n, dtype=torch.bool, device=device)
    is_target[index] = True
    position = torch.arange(n, device=device) + torch.cumsum(is_target.long(), 0) - is_target.long()
    inserted = position[index] + 1

    def place(old: torch.Tensor, new_rows: torch.Tensor) -> torch.Tensor:
        out = old.new_empty((size, *old.shape[1:]))
        out[position] = old
        out[inserted] = new_rows
        return out

    new_op = place(op, follower)
    new_op[position[index]] = kept
    r = res[index]
    graph_of_node = batch.batch if getattr(batch, "batch", None) is not None else torch.zeros(n, dtype=torch.long, device=device)
    follower_of = torch.full((n,), -1, dtype=torch.long, device=device)
    follower_of[index] = inserted
    src, dst = batch.edge_index
    moved = torch.where(is_target[src], follower_of[src], position[src])
    edge_index = torch.cat([torch.stack([moved, position[dst]]), torch.stack([position[index], inserted])], dim=1)
    new_batch = place(graph_of_node, graph_of_node[index])
    n_graphs = int(batch.num_graphs) if getattr(batch, "ptr", None) is not None else int(new_batch.max()) + 1
    sizes = torch.bincount(new_batch, minlength=n_graphs)
    ptr = torch.cat([torch.zeros(1, dtype=torch.long, device=device), sizes.cumsum(0)])
    return Batch(op=new_op, res=place(res, torch.stack([r[:, 1], r[:, 1], r[:, 3], r[:, 3], r[:, 5], r[:, 5]], 1)),
                 kernel=place(batch.kernel, torch.zeros_like(batch.kernel[index])),
                 bias=place(batch.bias, torch.zeros_like(batch.bias[index])),
                 weighted=place(batch.weighted, torch.zeros_like(batch.weighted[index])),
                 edge_index=edge_index, batch=new_batch, ptr=ptr, num_nodes=size, flops=batch.flops,
                 params=batch.params, spec=getattr(batch, "spec", None))
