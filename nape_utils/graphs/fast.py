"""`graph_of`: the computation graph of a space's spec, by the space's fast path where it has one.

A fast path assembles the graph from cached templates (:mod:`.compose`) instead of building and
tracing the network; ``tests/test_fast_paths.py`` proves each equal to ``from_module(build(spec))``.
"""
from __future__ import annotations

import importlib

from ..spaces import Space, get_space
from .cg import ComputationGraph
from .trace import from_module

# space name → module in this package with ``compose(space, spec_text, profile) -> ComputationGraph``
_FAST_PATHS = {"nb201": "fast_nb201", "nb101": "fast_nb101", "nb301": "fast_nb301"}


def has_fast_path(space: str | Space) -> bool:
    return get_space(space).name in _FAST_PATHS


def graph_of(space: str | Space, spec: str, profile: str = "paper", *, fast: bool = True) -> ComputationGraph:
    """The CG of ``spec`` in ``space`` at ``profile``; ``fast=False`` builds and traces the network."""
    space = get_space(space)
    canonical = space.canonical(spec)
    input_shape = space.input_shape_of(canonical, profile)
    if fast and space.name in _FAST_PATHS:
        module = importlib.import_module(f"{__package__}.{_FAST_PATHS[space.name]}")
        graph = module.compose(space, canonical, profile)
    else:
        graph = from_module(space.build(canonical, profile), input_shape)
    graph.meta.update(space=space.name, spec=canonical, profile=profile, input_shape=[list(input_shape)])
    return graph
