"""Properties of every space's graphs, over specs drawn by hypothesis-chosen seeds."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.utils.flop_counter import FlopCounterMode

from nape_utils.graphs import from_module, graph_of, has_fast_path
from nape_utils.spaces import get_space, space_names

seeds = st.integers(0, 2**32 - 1)


@pytest.mark.parametrize("name", space_names())
@settings(max_examples=15, deadline=None)
@given(seed=seeds)
def test_sampled_spec_is_a_dag_with_one_input_and_one_output(name, seed):
    space = get_space(name)
    spec = space.sample(np.random.default_rng(seed))
    # paper-size graphs where a fast path makes them cheap; traced ones at the small zoo size
    graph = graph_of(space, spec, "paper" if has_fast_path(space) else "zoo")
    graph.check()
    assert graph.op_names[0] == "input" and graph.op_names[-1] == "output"
    assert space.canonical(spec) == spec and space.format(space.parse(spec)) == spec


@pytest.mark.parametrize("name", space_names())
@settings(max_examples=4, deadline=None)
@given(seed=seeds)
def test_node_params_and_flops_sum_to_the_modules(name, seed):
    space = get_space(name)
    spec = space.sample(np.random.default_rng(seed))
    module = space.build(spec, "zoo").eval()
    shape = space.input_shape("zoo")
    graph = from_module(module, shape)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        module(torch.randn(shape))
    assert graph.params == sum(p.numel() for p in module.parameters())
    assert graph.flops == counter.get_total_flops()


@pytest.mark.parametrize("name", space_names())
@settings(max_examples=20, deadline=None)
@given(seed=seeds)
def test_mutation_stays_valid_and_changes_the_spec(name, seed):
    space = get_space(name)
    rng = np.random.default_rng(seed)
    spec = space.sample(rng)
    child = space.mutate(spec, rng)
    assert child != spec and space.is_valid(child) and space.canonical(child) == child
