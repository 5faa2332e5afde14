"""Building computation graphs by pasting cached, traced pieces: the fast path.

Tracing a whole network per architecture costs about a tenth of a second. Most of a NAS network is
made of a handful of distinct blocks (an op at a given width and resolution, a stem, a head), so each
block is traced once (:class:`Template`, cached by the caller) and architectures are assembled by
pasting templates and adding the merge nodes (add, concat) between them, in the same order as the
module's forward pass. Tests prove the result equal to :func:`from_module` of the built network.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch.nn as nn

from .cg import FEATURES, ComputationGraph
from .trace import _chw, from_module
from .vocab import OP_ID

_N_FEATURES = len(FEATURES)


@dataclass(frozen=True)
class Template:
    """A traced block without its input and output nodes.

    ``entries`` are (input index, local node) pairs: which of the block's nodes read which input;
    ``exit`` is the local node whose value the block returns."""

    ops: np.ndarray
    features: np.ndarray
    edges: np.ndarray
    entries: tuple[tuple[int, int], ...]
    exit: int

    @classmethod
    def of(cls, module: nn.Module, *input_shapes: Sequence[int]) -> "Template":
        """Trace ``module`` at ``input_shapes`` (batch first) into a template."""
        wrapper = {1: _Call, 2: _Call2}[len(input_shapes)](module)
        return cls.from_graph(from_module(wrapper, list(input_shapes)))

    @classmethod
    def from_graph(cls, graph: ComputationGraph) -> "Template":
        names = graph.op_names
        inputs = [i for i, op in enumerate(names) if op == "input"]
        (output,) = [i for i, op in enumerate(names) if op == "output"]
        inner = [i for i in range(graph.n_nodes) if i not in inputs and i != output]
        local = {g: k for k, g in enumerate(inner)}
        edges, entries, exits = [], [], []
        for src, dst in graph.edges.tolist():
            if dst == output:
                exits.append(src)
            elif src in inputs:
                entries.append((inputs.index(src), local[dst]))
            else:
                edges.append((local[src], local[dst]))
        if len(exits) != 1 or exits[0] not in local:
            raise ValueError("a template must return one tensor computed by at least one op")
        return cls(graph.ops[inner], graph.features[inner], np.array(edges, dtype=np.int64).reshape(-1, 2),
                   tuple(entries), local[exits[0]])


class _Call(nn.Module):
    """Wraps a block so that tracing sees it *called*: a leaf module traced on its own (nn.Identity,
    nape's Zero) would otherwise show its body, not the single node it is inside a network."""

    def __init__(self, inner: nn.Module):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        return self.inner(x)


class _Call2(_Call):
    def forward(self, x, y):
        return self.inner(x, y)


class GraphComposer:
    """Assembles a :class:`ComputationGraph` node by node, in forward-pass order."""

    def __init__(self):
        self._ops: list[np.ndarray] = []
        self._features: list[np.ndarray] = []
        self._edges: list[np.ndarray] = []
        self._shapes: list[tuple[int, int, int]] = []  # (c, h, w) out of every node so far
        self._n = 0

    def _append(self, ops, features, edges) -> int:
        start = self._n
        self._ops.append(ops)
        self._features.append(features)
        if len(edges):
            self._edges.append(edges)
        self._n += len(ops)
        f = features
        self._shapes.extend(zip(f[:, 5].tolist(), f[:, 7].tolist(), f[:, 9].tolist()))
        return start

    def _single(self, op: str, sources: Sequence[int], shape_in, shape_out, params: int = 0, flops: int = 0) -> int:
        (c_in, h_in, w_in), (c_out, h_out, w_out) = shape_in, shape_out
        row = np.array([[0, 0, 1, 1, c_in, c_out, h_in, h_out, w_in, w_out, params, flops]], dtype=np.int64)
        index = self._n
        unique = list(dict.fromkeys(sources))
        edges = np.array([[s, index] for s in unique], dtype=np.int64).reshape(-1, 2)
        self._append(np.array([OP_ID[op]], dtype=np.int64), row, edges)
        return index

    def shape(self, node: int) -> tuple[int, int, int]:
        """(channels, height, width) of a node's output."""
        return self._shapes[node]

    def input(self, shape: Sequence[int]) -> int:
        """The input node for a tensor of ``shape`` (batch first)."""
        chw = _chw(shape)
        return self._single("input", [], chw, chw)

    def paste(self, template: Template, *inputs: int) -> int:
        """Append a template reading ``inputs``; returns the node holding its result."""
        start = self._n
        entry = np.array([[inputs[k], start + local] for k, local in template.entries], dtype=np.int64)
        inner = template.edges + start
        edges = np.concatenate([entry.reshape(-1, 2), inner]) if len(inner) else entry.reshape(-1, 2)
        self._append(template.ops, template.features, edges)
        return start + template.exit

    def op(self, op: str, sources: Sequence[int], shape_out: tuple[int, int, int]) -> int:
        """A parameter-free node (e.g. ``slice``) reading ``sources``, with output shape (c, h, w)."""
        return self._single(op, sources, self.shape(sources[0]), shape_out)

    def add(self, *sources: int) -> int:
        """An elementwise sum of same-shaped tensors (as ``a + b``)."""
        return self._single("add", sources, self.shape(sources[0]), self.shape(sources[0]))

    def concat(self, sources: Sequence[int]) -> int:
        """Channel concatenation (``torch.cat(sources, dim=1)``)."""
        c, h, w = self.shape(sources[0])
        total = sum(self.shape(s)[0] for s in sources)
        return self._single("concat", sources, (c, h, w), (total, h, w))

    def output(self, source: int) -> int:
        return self._single("output", [source], self.shape(source), self.shape(source))

    def graph(self, meta: dict | None = None) -> ComputationGraph:
        edges = np.concatenate(self._edges) if self._edges else np.zeros((0, 2), dtype=np.int64)
        return ComputationGraph(np.concatenate(self._ops), np.concatenate(self._features), edges, meta=meta or {})

