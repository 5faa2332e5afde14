"""GENNAPE's graph encoder: a node embedding of CG features and a k-GNN over the CG.

Node embedding (32 wide, as the authors' code): a regular node is op embedding (24) ‖ Linear(6→8)
of its resolution vector; a weighted node is op embedding (14) ‖ Linear(6→8) of resolution ‖ kernel
height and width embeddings (4 + 4) ‖ Linear(2→2) of the has-bias one-hot.

Encoder: L message-passing layers (default 6 × PyG ``GraphConv``, sum aggregation, i.e. a k-GNN:
h'_i = W₁ h_i + W₂ Σ_{j→i} h_j), tanh after each, then mean pooling over nodes → one vector per graph.

Sum-aggregating layers (GraphConv, GIN) read a sparse CSR adjacency built once per batch and
aggregate with one sparse-dense product per layer instead of PyG's gather + scatter_add, which
dominated inference (≈ 4× slower on CPU, far worse with a second thread on a busy machine).
Attention (GAT) and degree-normalised (GCN) layers read ``edge_index`` as before, and so do all layers
on a GPU (torch's sum-reduce CSR kernel is CPU-only; the sums are the same).
"""
from __future__ import annotations

import math
import warnings

import numpy as np
import torch
import torch.nn as nn
from torch_geometric.nn import GATConv, GCNConv, GINConv, GraphConv, global_mean_pool
from torch_geometric.utils import scatter

from .features import CHANNEL_SCALE, MAX_KERNEL, N_OPS

GNN_TYPES = ("graphconv", "gin", "gat", "gcn")
#: layers whose aggregation is a plain sum over in-edges, i.e. a product with the adjacency matrix
SPARSE_TYPES = ("graphconv", "gin")


def adjacency(edge_index: torch.Tensor, num_nodes: int) -> torch.Tensor:
    """Sparse CSR ``A`` [dst, src] with a 1 per edge (PyG's ``adj_t``): ``A @ h`` sums every node's
    in-neighbours, repeated edges counted, as the edge-wise aggregation does."""
    src, dst = edge_index
    order = torch.argsort(dst, stable=True)
    crow = torch.zeros(num_nodes + 1, dtype=torch.long, device=edge_index.device)
    torch.cumsum(torch.bincount(dst, minlength=num_nodes), 0, out=crow[1:])
    with warnings.catch_warnings():  # torch warns, once, that sparse CSR support is in beta
        warnings.filterwarnings("ignore", "Sparse CSR tensor support is in beta")
        return torch.sparse_csr_tensor(crow, src[order], torch.ones(len(order), device=edge_index.device),
                                       (num_nodes, num_nodes), check_invariants=False)


def graph_conv(conv: GraphConv, h: torch.Tensor, adj: torch.Tensor) -> torch.Tensor:
    """``conv(h, edge_index)`` of a sum-aggregating GraphConv, from the CSR adjacency: lin_rel(A h) +
    lin_root(h), with torch's sum-reduce sparse kernel (1.5–2× PyG's default sparse path on CPU) and
    the two linears fused into one addmm."""
    out = torch.addmm(conv.lin_rel.bias, torch.sparse.mm(adj, h, "sum"), conv.lin_rel.weight.t())
    return out.addmm_(h, conv.lin_root.weight.t())


def _tanh(h: torch.Tensor) -> torch.Tensor:
    """tanh; in place through numpy when no gradient is needed: torch 2.13's CPU tanh measured ~7×
    slower than numpy's (x86, AVX-512) and was the costliest op of inference; they differ by an ulp."""
    if h.requires_grad or h.device.type != "cpu" or not h.is_contiguous():
        return torch.tanh(h)
    np.tanh(h.numpy(), out=h.numpy())
    return h


#: how the channel entries of the resolution vector (C / CHANNEL_SCALE from the featurizer) are read:
#: ``linear`` as they are (GENNAPE's C / 512); ``log`` log2(1 + C) / log2(1 + 512); ``relative`` C divided
#: by the widest channel count of the same graph, so a cell family at 16–64 channels looks like one at 128–512
CHANNEL_MODES = ("linear", "log", "relative")


def scale_channels(res: torch.Tensor, mode: str, batch: torch.Tensor | None = None) -> torch.Tensor:
    """The resolution vectors [N, 6] with the channel entries (last two) rescaled by ``mode``."""
    if mode == "linear":
        return res
    channels = res[:, 4:]
    if mode == "log":
        channels = torch.log2(1 + channels * CHANNEL_SCALE) / math.log2(1 + CHANNEL_SCALE)
    elif mode == "relative":
        if batch is None:
            batch = torch.zeros(len(res), dtype=torch.long, device=res.device)
        widest = scatter(channels.amax(1), batch, dim=0, reduce="max").clamp_min(1e-9)
        channels = channels / widest[batch, None]
    else:
        raise ValueError(f"unknown channel scaling {mode!r}; choose one of {', '.join(CHANNEL_MODES)}")
    return torch.cat([res[:, :4], channels], dim=1)


class NodeEmbedding(nn.Module):
    """``op_init="zero"`` starts the op-type tables at zero, so an op that training never shows the model
    (NB-201's avgpool, identity and zero for a model trained on NB-101) carries no op-type signal
    instead of a random N(0, 1) vector that differs from seed to seed; ``"normal"`` is PyTorch's default."""

    def __init__(self, dim: int = 32, n_ops: int = N_OPS, channels: str = "linear", op_init: str = "zero"):
        super().__init__()
        if dim < 16:
            raise ValueError(f"the node embedding needs dim ≥ 16, got {dim}")
        if channels not in CHANNEL_MODES:
            raise ValueError(f"unknown channel scaling {channels!r}; choose one of {', '.join(CHANNEL_MODES)}")
        self.channels = channels
        self.res_regular = nn.Linear(6, 8)
        self.op_regular = nn.Embedding(n_ops, dim - 8)
        self.res_weighted = nn.Linear(6, 8)
        self.op_weighted = nn.Embedding(n_ops, dim - 18)
        if op_init == "zero":
            nn.init.zeros_(self.op_regular.weight)
            nn.init.zeros_(self.op_weighted.weight)
        elif op_init != "normal":
            raise ValueError(f"unknown op-embedding initialisation {op_init!r}; choose 'zero' or 'normal'")
        self.kernel_h = nn.Embedding(MAX_KERNEL + 1, 4)
        self.kernel_w = nn.Embedding(MAX_KERNEL + 1, 4)
        self.bias = nn.Linear(2, 2)

    def forward(self, data) -> torch.Tensor:
        res = scale_channels(data.res, self.channels, getattr(data, "batch", None))
        regular = torch.cat([self.op_regular(data.op), self.res_regular(res)], dim=1)
        bias = nn.functional.one_hot(data.bias, 2).float()
        weighted = torch.cat([self.op_weighted(data.op), self.res_weighted(res), self.kernel_h(data.kernel[:, 0]),
                              self.kernel_w(data.kernel[:, 1]), self.bias(bias)], dim=1)
        return torch.where(data.weighted[:, None], weighted, regular)


def _layer(kind: str, dim: int) -> nn.Module:
    if kind == "graphconv":
        return GraphConv(dim, dim, aggr="add")
    if kind == "gin":
        return GINConv(nn.Sequential(nn.Linear(dim, dim), nn.Tanh(), nn.Linear(dim, dim)))
    if kind == "gat":
        return GATConv(dim, dim, heads=1)
    if kind == "gcn":
        return GCNConv(dim, dim)
    raise ValueError(f"unknown GNN type {kind!r}; choose one of {', '.join(GNN_TYPES)}")


class GraphEncoder(nn.Module):
    """CG batch → graph embeddings [n_graphs, dim]."""

    def __init__(self, dim: int = 32, layers: int = 6, gnn: str = "graphconv", dropout: float = 0.0,
                 channels: str = "linear", op_init: str = "zero"):
        super().__init__()
        self.config = {"dim": dim, "layers": layers, "gnn": gnn, "dropout": dropout, "channels": channels,
                       "op_init": op_init}
        self.embed = NodeEmbedding(dim, channels=channels, op_init=op_init)
        self.convs = nn.ModuleList(_layer(gnn, dim) for _ in range(layers))
        self.dropout = nn.Dropout(dropout)
        self.dim = dim

    def node_states(self, data) -> torch.Tensor:
        """The last layer's state of every node [N, dim]."""
        h = self.embed(data)
        # the CSR sum kernel is CPU-only; elsewhere PyG's gather-scatter gives the same sums
        if self.config["gnn"] not in SPARSE_TYPES or h.device.type != "cpu":
            for conv in self.convs:
                h = self.dropout(torch.tanh(conv(h, data.edge_index)))
            return h
        adj = adjacency(data.edge_index, h.shape[0])  # once for all layers
        for conv in self.convs:
            h = graph_conv(conv, h, adj) if isinstance(conv, GraphConv) else conv(h, adj)
            h = self.dropout(_tanh(h))
        return h

    def forward(self, data) -> torch.Tensor:
        return global_mean_pool(self.node_states(data), data.batch, getattr(data, "num_graphs", None))
