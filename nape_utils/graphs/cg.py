"""`ComputationGraph`: a network as a DAG of atomic operations with per-node features."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .vocab import OPS, op_id

#: numeric node features, in column order
FEATURES: tuple[str, ...] = (
    "kernel_h", "kernel_w", "stride", "groups",
    "c_in", "c_out", "h_in", "h_out", "w_in", "w_out",
    "params", "flops",
)
FEATURE_INDEX = {name: i for i, name in enumerate(FEATURES)}
JSON_FORMAT = "nape-cg/1"


@dataclass(eq=False)
class ComputationGraph:
    """Nodes are atomic ops (``ops``: vocabulary ids) with integer ``features`` (one row per node,
    columns :data:`FEATURES`); ``edges`` are data-flow pairs (src, dst), src producing a tensor
    that dst consumes. ``names`` optionally labels nodes (the fx node or module path); ``meta``
    records where the graph came from (space, spec, profile, input shape)."""

    ops: np.ndarray
    features: np.ndarray
    edges: np.ndarray
    names: list[str] | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        self.ops = np.asarray(self.ops, dtype=np.int64).reshape(-1)
        self.features = np.asarray(self.features, dtype=np.int64).reshape(len(self.ops), len(FEATURES))
        self.edges = np.asarray(self.edges, dtype=np.int64).reshape(-1, 2)
        if len(self.edges) and (self.edges.min() < 0 or self.edges.max() >= len(self.ops)):
            raise ValueError("edge endpoints must be node indices in [0, n_nodes)")

    # -- summaries ---------------------------------------------------------------------------------
    @property
    def n_nodes(self) -> int:
        return len(self.ops)

    @property
    def n_edges(self) -> int:
        return len(self.edges)

    @property
    def op_names(self) -> list[str]:
        return [OPS[i] for i in self.ops]

    def feature(self, name: str) -> np.ndarray:
        """One feature column for every node."""
        return self.features[:, FEATURE_INDEX[name]]

    @property
    def params(self) -> int:
        return int(self.feature("params").sum())

    @property
    def flops(self) -> int:
        return int(self.feature("flops").sum())

    def op_counts(self) -> dict[str, int]:
        ids, counts = np.unique(self.ops, return_counts=True)
        return {OPS[i]: int(c) for i, c in zip(ids, counts)}

    def summary(self) -> dict[str, int]:
        return {"nodes": self.n_nodes, "edges": self.n_edges, "params": self.params, "flops": self.flops}

    def node_table(self):
        """A pandas DataFrame, one row per node: op, name and every feature."""
        import pandas as pd

        table = pd.DataFrame(self.features, columns=list(FEATURES))
        table.insert(0, "op", self.op_names)
        if self.names is not None:
            table.insert(1, "name", self.names)
        return table

    # -- structure -------------------------------------------------------------------------------
    def predecessors(self) -> list[list[int]]:
        preds: list[list[int]] = [[] for _ in range(self.n_nodes)]
        for src, dst in self.edges.tolist():
            preds[dst].append(src)
        return preds

    def check(self) -> None:
        """Raise ValueError unless the graph is a DAG with exactly one input and one output node."""
        names = self.op_names
        for role in ("input", "output"):
            count = names.count(role)
            if count != 1:
                raise ValueError(f"a computation graph needs exactly one {role} node, found {count}")
        graph = self.to_networkx()
        import networkx as nx

        if not nx.is_directed_acyclic_graph(graph):
            raise ValueError("the computation graph has a cycle")
        source, sink = names.index("input"), names.index("output")
        if graph.in_degree(source) or graph.out_degree(sink):
            raise ValueError("the input node must have no predecessors and the output node no successors")

    def equals(self, other: "ComputationGraph") -> bool:
        """Same ops and features node by node, and the same set of edges (names and meta ignored)."""
        return (
            np.array_equal(self.ops, other.ops)
            and np.array_equal(self.features, other.features)
            and np.array_equal(_sorted_edges(self.edges), _sorted_edges(other.edges))
        )

    def difference(self, other: "ComputationGraph") -> str:
        """Where two graphs differ first, in words (for test failures); '' when equal."""
        if self.n_nodes != other.n_nodes:
            return f"{self.n_nodes} nodes vs {other.n_nodes}"
        for i in range(self.n_nodes):
            if self.ops[i] != other.ops[i] or not np.array_equal(self.features[i], other.features[i]):
                return (f"node {i}: {OPS[self.ops[i]]} {dict(zip(FEATURES, self.features[i].tolist()))} vs "
                        f"{OPS[other.ops[i]]} {dict(zip(FEATURES, other.features[i].tolist()))}")
        a, b = {tuple(e) for e in self.edges.tolist()}, {tuple(e) for e in other.edges.tolist()}
        if a != b:
            return f"edges only in first: {sorted(a - b)[:5]}, only in second: {sorted(b - a)[:5]}"
        return ""

    # -- conversions -----------------------------------------------------------------------------
    def to_networkx(self):
        import networkx as nx

        graph = nx.DiGraph()
        for i, (op, row) in enumerate(zip(self.op_names, self.features.tolist())):
            graph.add_node(i, op=op, **dict(zip(FEATURES, row)))
        graph.add_edges_from(self.edges.tolist())
        return graph

    def to_pyg(self):
        """A ``torch_geometric.data.Data``: ``op`` (long op ids), ``x`` (float features, columns
        :data:`FEATURES`, unnormalised), ``edge_index`` (2 × E)."""
        import torch
        from torch_geometric.data import Data

        return Data(
            op=torch.from_numpy(self.ops.copy()),
            x=torch.from_numpy(self.features.astype(np.float32)),
            edge_index=torch.from_numpy(self.edges.T.copy()).long().reshape(2, -1),
            num_nodes=self.n_nodes,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": JSON_FORMAT,
            "features": list(FEATURES),
            "nodes": [[op, *row] for op, row in zip(self.op_names, self.features.tolist())],
            "edges": self.edges.tolist(),
            "names": self.names,
            "meta": self.meta,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ComputationGraph":
        if data.get("format") != JSON_FORMAT or list(data.get("features", [])) != list(FEATURES):
            raise ValueError(
                f"not a nape computation graph of format {JSON_FORMAT!r} with features {FEATURES}; "
                "write it again with ComputationGraph.to_json() from this version of nape"
            )
        nodes = data["nodes"]
        return cls(
            ops=[op_id(node[0]) for node in nodes],
            features=[node[1:] for node in nodes] or np.zeros((0, len(FEATURES))),
            edges=data["edges"] or np.zeros((0, 2)),
            names=data.get("names"),
            meta=data.get("meta") or {},
        )

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    @classmethod
    def from_json(cls, text: str) -> "ComputationGraph":
        return cls.from_dict(json.loads(text))

    def to_dot(self) -> str:
        """Graphviz DOT text: one box per node labelled with its op and output shape."""
        lines = ["digraph cg {", "  rankdir=TB;", '  node [shape=box, style="rounded,filled", fontsize=10];']
        for i, op in enumerate(self.op_names):
            f = dict(zip(FEATURES, self.features[i].tolist()))
            label = f"{op}\\n{f['c_out']}×{f['h_out']}×{f['w_out']}"
            if op in ("conv", "depthwise", "group_conv"):
                label = f"{op} {f['kernel_h']}×{f['kernel_w']}/{f['stride']}\\n{f['c_out']}×{f['h_out']}×{f['w_out']}"
            lines.append(f'  n{i} [label="{label}", fillcolor="{_color(op)}"];')
        lines += [f"  n{s} -> n{d};" for s, d in self.edges.tolist()]
        lines.append("}")
        return "\n".join(lines) + "\n"

    def draw(self, ax=None, *, labels: bool | None = None):
        """Draw the graph top to bottom in topological layers (matplotlib); returns the axes."""
        import matplotlib.pyplot as plt
        import networkx as nx

        graph = self.to_networkx()
        for layer, nodes in enumerate(nx.topological_generations(graph)):
            for node in nodes:
                graph.nodes[node]["layer"] = layer
        pos = nx.multipartite_layout(graph, subset_key="layer", align="horizontal", scale=-1)
        if ax is None:
            depth = max(nx.dag_longest_path_length(graph), 1) if self.n_nodes else 1
            _, ax = plt.subplots(figsize=(6, min(2 + 0.3 * depth, 40)))
        colors = [_color(op) for op in self.op_names]
        nx.draw_networkx(graph, pos, ax=ax, node_color=colors, node_size=120 if self.n_nodes > 60 else 300,
                         with_labels=bool(labels if labels is not None else self.n_nodes <= 60),
                         labels={i: op for i, op in enumerate(self.op_names)}, font_size=6, arrowsize=6,
                         connectionstyle="arc3,rad=0.25")  # curved, so skip edges do not hide behind chains
        ax.set_axis_off()
        return ax

    def save(self, path: str | Path) -> Path:
        """Write to ``.json``, ``.dot`` or ``.png`` (chosen by the suffix)."""
        path = Path(path)
        suffix = path.suffix.lower()
        if suffix == ".json":
            path.write_text(self.to_json())
        elif suffix == ".dot":
            path.write_text(self.to_dot())
        elif suffix == ".png":
            import matplotlib.pyplot as plt

            ax = self.draw()
            ax.figure.savefig(path, dpi=120, bbox_inches="tight")
            plt.close(ax.figure)
        else:
            raise ValueError(f"cannot write a graph to {path.name!r}: use a .json, .dot or .png file name")
        return path

    @classmethod
    def load(cls, path: str | Path) -> "ComputationGraph":
        return cls.from_json(Path(path).read_text())

    def __repr__(self) -> str:
        where = " ".join(f"{k}={v}" for k, v in self.meta.items() if k in ("space", "profile"))
        return (f"ComputationGraph({where + ', ' if where else ''}{self.n_nodes} nodes, {self.n_edges} edges, "
                f"{self.params:,} params, {self.flops:,} FLOPs)")


def _sorted_edges(edges: np.ndarray) -> np.ndarray:
    return edges[np.lexsort((edges[:, 1], edges[:, 0]))] if len(edges) else edges


_PALETTE = {
    "input": "#9ecae1", "output": "#9ecae1", "conv": "#fdae6b", "depthwise": "#fdd0a2", "group_conv": "#fdd0a2",
    "linear": "#fd8d3c", "batchnorm": "#c7e9c0", "add": "#dadaeb", "concat": "#bcbddc", "zero": "#f0f0f0",
    "identity": "#f0f0f0", "oov": "#fb6a4a",
}


def _color(op: str) -> str:
    if op in _PALETTE:
        return _PALETTE[op]
    if op in ("relu", "relu6", "sigmoid", "tanh", "hardswish", "hardsigmoid", "silu", "gelu", "softmax"):
        return "#e5f5e0"
    if op in ("maxpool", "avgpool", "global_pool", "mean"):
        return "#d9f0d3"
    return "#ffffff"
