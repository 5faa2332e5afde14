"""Computation graphs (CGs) of atomic operations: the representation every estimator reads.

- :func:`from_module` converts any torch.fx-traceable ``nn.Module``;
- :func:`graph_of` gives the CG of a space's spec, by a fast cached path where the space has one;
- :class:`ComputationGraph` holds nodes, features and edges, with ``to_pyg``, JSON, DOT and PNG.
"""
from .cg import FEATURES, ComputationGraph
from .compose import GraphComposer, Template
from .fast import graph_of, has_fast_path
from .trace import from_module, trace
from .vocab import OP_ID, OPS

__all__ = ["FEATURES", "OPS", "OP_ID", "ComputationGraph", "GraphComposer", "Template", "from_module",
           "graph_of", "has_fast_path", "trace"]
