"""From a ComputationGraph to the tensors GENNAPE's node embedding reads.

Per node: the op id; a resolution vector [H_in, H_out, W_in, W_out, C_in, C_out] with sizes divided
by :data:`SIZE_SCALE` and channels by :data:`CHANNEL_SCALE`; and, for weighted ops (conv, depthwise,
grouped conv, linear), kernel height and width as small ids (1–7, larger clipped to 7) and a has-bias
flag (the op has more parameters than its weight alone). Stride is not a feature: it shows in H_in vs H_out.
"""
from __future__ import annotations

import numpy as np
import torch
from torch_geometric.data import Batch, Data

from ..graphs.cg import FEATURE_INDEX, ComputationGraph
from ..graphs.vocab import OP_ID, OPS, WEIGHTED_OPS

SIZE_SCALE = 32.0      # CIFAR-size inputs map to ≤ 1; GENNAPE divides by 256 or per-family maxima
CHANNEL_SCALE = 512.0  # as GENNAPE
MAX_KERNEL = 7
N_OPS = len(OPS)
_WEIGHTED_IDS = np.array(sorted(OP_ID[op] for op in WEIGHTED_OPS))
_RES = [FEATURE_INDEX[k] for k in ("h_in", "h_out", "w_in", "w_out", "c_in", "c_out")]


def _weight_count(f: np.ndarray, linear: np.ndarray) -> np.ndarray:
    """Weights of a conv/linear without bias, from its kernel, channels and groups."""
    kh, kw, groups = f[:, FEATURE_INDEX["kernel_h"]], f[:, FEATURE_INDEX["kernel_w"]], np.maximum(f[:, FEATURE_INDEX["groups"]], 1)
    c_in, c_out = f[:, FEATURE_INDEX["c_in"]], f[:, FEATURE_INDEX["c_out"]]
    conv = kh * kw * (c_in // groups) * c_out
    return np.where(linear, c_in * c_out, conv)


def featurize(graph: ComputationGraph) -> Data:
    """A PyG ``Data`` with ``op``, ``res`` (float, 6), ``kernel`` (long, 2), ``bias`` (long),
    ``weighted`` (bool) per node and ``edge_index``; graph-level ``flops`` and ``params``."""
    f = graph.features
    weighted = np.isin(graph.ops, _WEIGHTED_IDS)
    linear = graph.ops == OP_ID["linear"]
    res = f[:, _RES].astype(np.float32)
    res[:, :4] /= SIZE_SCALE
    res[:, 4:] /= CHANNEL_SCALE
    kernel = np.clip(f[:, [FEATURE_INDEX["kernel_h"], FEATURE_INDEX["kernel_w"]]], 0, MAX_KERNEL)
    kernel = np.where(linear[:, None], 1, kernel) * weighted[:, None]
    bias = (weighted & (f[:, FEATURE_INDEX["params"]] > _weight_count(f, linear))).astype(np.int64)
    return Data(
        op=torch.from_numpy(graph.ops.copy()), res=torch.from_numpy(res), kernel=torch.from_numpy(kernel.astype(np.int64)),
        bias=torch.from_numpy(bias), weighted=torch.from_numpy(weighted),
        edge_index=torch.from_numpy(graph.edges.T.copy()).long().reshape(2, -1), num_nodes=graph.n_nodes,
        flops=torch.tensor([float(graph.flops)]), params=torch.tensor([float(graph.params)]),
        spec=graph.meta.get("spec", ""),
    )


def collate(items: list[Data]) -> Batch:
    return Batch.from_data_list(items)
