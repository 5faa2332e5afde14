"""The fast graph paths equal build-and-trace, node for node, on random specs of every space."""
from __future__ import annotations

import pytest

from nape_utils.graphs import graph_of, has_fast_path
from nape_utils.spaces import get_space

SPACES = ["nb101", "nb201", "nb301"]


@pytest.mark.parametrize("space", SPACES)
@pytest.mark.parametrize("profile, n", [("paper", 100), ("zoo", 25)])
def test_fast_path_equals_from_module(space, profile, n):
    assert has_fast_path(space)
    for spec in get_space(space).sample_many(n, seed=2024):
        fast = graph_of(space, spec, profile)
        traced = graph_of(space, spec, profile, fast=False)
        assert fast.equals(traced), f"{space} {spec}: {fast.difference(traced)}"
        keys = ("space", "spec", "profile", "input_shape")
        assert [fast.meta[k] for k in keys] == [traced.meta[k] for k in keys]


def test_graph_of_accepts_alternative_spec_forms_and_rejects_bad_ones():
    graph = graph_of("nb201", "(4, 0, 3, 1, 4, 3)")
    assert graph.meta["spec"] == "|avg_pool_3x3~0|+|skip_connect~0|none~1|+|nor_conv_1x1~0|avg_pool_3x3~1|nor_conv_1x1~2|"
    with pytest.raises(ValueError, match="unknown space 'nb999'"):
        graph_of("nb999", "x")
    with pytest.raises(ValueError, match="unknown profile"):
        graph_of("nb201", graph.meta["spec"], "huge")
