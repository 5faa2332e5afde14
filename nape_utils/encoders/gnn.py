"""GENNAPE's graph encoder: a node embedding of CG features and a k-GNN over the CG.

Node embedding (32 wide, as the authors' code): a regular node is op embedding (24) ‖ Linear(6→8)
of its resolution vector; a weighted node is op embedding (14) ‖ Linear(6→8) of resolution ‖ kernel
height and width embeddings (4 + 4) ‖ Linear(2→2) of the has-bias one-hot.

Encoder: L message-passing layers (default 6 × PyG ``GraphConv``, sum aggregation, i.e. a k-GNN:
h'_i = W₁ h_i + W₂ Σ_{j→i} h_j), tanh after each, then mean pooling over nodes → one vector per graph.
"""
from __future__ import annotations

import torch
import torch.nn as nn
from torch_geometric.nn import GATConv, GCNConv, GINConv, GraphConv, global_mean_pool

from .features import MAX_KERNEL, N_OPS

GNN_TYPES = ("graphconv", "gin", "gat", "gcn")


class NodeEmbedding(nn.Module):
    def __init__(self, dim: int = 32, n_ops: int = N_OPS):
        super().__init__()
        if dim < 16:
            raise ValueError(f"the node embedding needs dim ≥ 16, got {dim}")
        self.res_regular = nn.Linear(6, 8)
        self.op_regular = nn.Embedding(n_ops, dim - 8)
        self.res_weighted = nn.Linear(6, 8)
        self.op_weighted = nn.Embedding(n_ops, dim - 18)
        self.kernel_h = nn.Embedding(MAX_KERNEL + 1, 4)
        self.kernel_w = nn.Embedding(MAX_KERNEL + 1, 4)
        self.bias = nn.Linear(2, 2)

    def forward(self, data) -> torch.Tensor:
        regular = torch.cat([self.op_regular(data.op), self.res_regular(data.res)], dim=1)
        bias = nn.functional.one_hot(data.bias, 2).float()
        weighted = torch.cat([self.op_weighted(data.op), self.res_weighted(data.res), self.kernel_h(data.kernel[:, 0]),
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

    def __init__(self, dim: int = 32, layers: int = 6, gnn: str = "graphconv", dropout: float = 0.0):
        super().__init__()
        self.config = {"dim": dim, "layers": layers, "gnn": gnn, "dropout": dropout}
        self.embed = NodeEmbedding(dim)
        self.convs = nn.ModuleList(_layer(gnn, dim) for _ in range(layers))
        self.dropout = nn.Dropout(dropout)
        self.dim = dim

    def node_states(self, data) -> torch.Tensor:
        h = self.embed(data)
        for conv in self.convs:
            h = self.dropout(torch.tanh(conv(h, data.edge_index)))
        return h

    def forward(self, data) -> torch.Tensor:
        return global_mean_pool(self.node_states(data), data.batch)
