"""from_module and ComputationGraph on small networks whose graphs can be checked by hand."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from nape_utils.graphs import ComputationGraph, from_module
from nape_utils.graphs.vocab import OPS, op_id
from nape_utils.spaces.ops import Zero


def module_flops(module: nn.Module, shape) -> int:
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        module.eval()(torch.randn(shape))
    return counter.get_total_flops()


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def edge_set(graph: ComputationGraph) -> set[tuple[str, str]]:
    names = graph.op_names
    return {(names[s], names[d]) for s, d in graph.edges.tolist()}


class ResidualBlock(nn.Module):
    def __init__(self, c: int = 4):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, padding=1)
        self.bn = nn.BatchNorm2d(c)

    def forward(self, x):
        return F.relu(self.bn(self.conv(x)) + x)


def test_mlp_nodes_features_params_and_flops_by_hand():
    model = nn.Sequential(nn.Linear(5, 3), nn.ReLU(), nn.Linear(3, 2))
    graph = from_module(model, (1, 5))
    assert graph.op_names == ["input", "linear", "relu", "linear", "output"]
    table = graph.node_table()
    assert table.params.tolist() == [0, 18, 0, 8, 0]
    assert table.flops.tolist() == [0, 2 * 5 * 3, 0, 2 * 3 * 2, 0]  # FlopCounterMode: 2 per multiply-add
    assert table.c_in.tolist()[1:4] == [5, 3, 3] and table.c_out.tolist()[1:4] == [3, 3, 2]
    assert graph.edges.tolist() == [[0, 1], [1, 2], [2, 3], [3, 4]]
    graph.check()


def test_conv_kernel_stride_groups_and_shapes():
    model = nn.Sequential(nn.Conv2d(3, 8, 5, stride=2, padding=2), nn.Conv2d(8, 8, 3, padding=1, groups=8),
                          nn.Conv2d(8, 8, 3, padding=1, groups=2))
    graph = from_module(model, (1, 3, 16, 16))
    assert graph.op_names[1:4] == ["conv", "depthwise", "group_conv"]
    table = graph.node_table().iloc[1:4]
    assert table.kernel_h.tolist() == [5, 3, 3] and table.stride.tolist() == [2, 1, 1]
    assert table.groups.tolist() == [1, 8, 2]
    assert table.h_in.tolist() == [16, 8, 8] and table.h_out.tolist() == [8, 8, 8]
    assert table.params.tolist() == [3 * 8 * 25 + 8, 8 * 9 + 8, 8 * 4 * 9 + 8]


def test_residual_add_is_a_node_with_two_inputs():
    graph = from_module(ResidualBlock(), (1, 4, 8, 8))
    assert graph.op_names == ["input", "conv", "batchnorm", "add", "relu", "output"]
    assert ("input", "add") in edge_set(graph) and ("batchnorm", "add") in edge_set(graph)


def test_bookkeeping_is_collapsed_and_single_input_add_dropped():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3)
            self.fc = nn.Linear(4 * 6 * 6, 2)

        def forward(self, x):
            y = sum([self.conv(x)])  # 0 + tensor: GENNAPE drops single-input adds
            y = y.contiguous().view(y.size(0), -1)
            return self.fc(y)

    graph = from_module(Net(), (2, 3, 8, 8))
    assert graph.op_names == ["input", "conv", "reshape", "linear", "output"]
    assert graph.edges.tolist() == [[0, 1], [1, 2], [2, 3], [3, 4]]


def test_functional_weights_fold_into_their_op():
    class Functional(nn.Module):
        def __init__(self):
            super().__init__()
            self.weight = nn.Parameter(torch.randn(6, 3, 3, 3))
            self.bias = nn.Parameter(torch.zeros(6))

        def forward(self, x):
            return F.conv2d(x, self.weight, self.bias, 1, 1)

    graph = from_module(Functional(), (1, 3, 8, 8))
    assert graph.op_names == ["input", "conv", "output"]
    assert graph.node_table().params.tolist() == [0, 6 * 27 + 6, 0]
    assert graph.node_table().kernel_h.tolist()[1] == 3


def test_split_and_concat_keep_data_flow():
    class Net(nn.Module):
        def forward(self, x):
            a, b = torch.chunk(x, 2, dim=1)
            return torch.cat([torch.relu(a), torch.sigmoid(b)], dim=1)

    graph = from_module(Net(), (1, 4, 2, 2))
    assert graph.op_names == ["input", "split", "relu", "sigmoid", "concat", "output"]
    assert {("split", "relu"), ("split", "sigmoid"), ("relu", "concat"), ("sigmoid", "concat")} <= edge_set(graph)
    assert graph.node_table().c_out.tolist()[4] == 4


def test_atomic_zero_module_is_one_node_with_its_stride():
    graph = from_module(nn.Sequential(nn.Conv2d(2, 2, 1), Zero(2)), (1, 2, 8, 8))
    assert graph.op_names == ["input", "conv", "zero", "output"]
    assert graph.node_table().stride.tolist()[2] == 2 and graph.node_table().h_out.tolist()[2] == 4


@pytest.mark.parametrize("model, shape", [
    (ResidualBlock(), (1, 4, 8, 8)),
    (nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.Hardswish(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                   nn.Linear(8, 10)), (1, 3, 12, 12)),
    (nn.Sequential(nn.Linear(7, 7), nn.LayerNorm(7), nn.GELU(), nn.Dropout(0.1), nn.Linear(7, 1)), (3, 7)),
])
def test_node_sums_equal_module_counts(model, shape):
    graph = from_module(model, shape)
    assert graph.params == n_params(model)
    assert graph.flops == module_flops(model, shape)
    assert "oov" not in graph.op_names
    graph.check()


def test_unknown_op_becomes_oov_node_with_warning():
    model = nn.Sequential(nn.Conv2d(4, 4, 1), nn.PixelShuffle(2))
    with pytest.warns(UserWarning, match="PixelShuffle"):
        graph = from_module(model, (1, 4, 4, 4))
    assert graph.op_names == ["input", "conv", "oov", "output"]


def test_untraceable_module_names_the_offending_call():
    class Branchy(nn.Module):
        def forward(self, x):
            if x.sum() > 0:
                return x
            return -x

    with pytest.raises(TypeError, match=r"cannot trace Branchy.*if x\.sum\(\) > 0"):
        from_module(Branchy(), (1, 3))


def test_wrong_input_shape_is_explained():
    with pytest.raises(ValueError, match="input shape does not fit"):
        from_module(nn.Conv2d(3, 4, 3), (1, 1, 8, 8))
    with pytest.raises(ValueError, match="batch dimension"):
        from_module(nn.Conv2d(3, 4, 3), (3,))
    with pytest.raises(ValueError, match="input_shape must be a shape"):
        from_module(nn.Conv2d(3, 4, 3), "big")


def test_json_round_trip_dot_png_and_pyg(tmp_path):
    graph = from_module(ResidualBlock(), (1, 4, 8, 8))
    again = ComputationGraph.load(graph.save(tmp_path / "g.json"))
    assert again.equals(graph) and again.names == graph.names
    dot = graph.save(tmp_path / "g.dot").read_text()
    assert dot.startswith("digraph") and dot.count("->") == graph.n_edges
    png = graph.save(tmp_path / "g.png").read_bytes()
    assert png[:4] == b"\x89PNG"
    data = graph.to_pyg()
    assert data.num_nodes == graph.n_nodes and tuple(data.edge_index.shape) == (2, graph.n_edges)
    assert data.op.tolist() == graph.ops.tolist() and tuple(data.x.shape) == (graph.n_nodes, 12)
    with pytest.raises(ValueError, match="json, .dot or .png"):
        graph.save(tmp_path / "g.txt")
    with pytest.raises(ValueError, match="nape computation graph"):
        ComputationGraph.from_json(json.dumps({"format": "other"}))


def test_graph_checks_and_vocabulary():
    with pytest.raises(ValueError, match="unknown op 'warp'"):
        op_id("warp")
    assert OPS[0] == "oov" and len(set(OPS)) == len(OPS)
    cycle = ComputationGraph(ops=[op_id("input"), op_id("relu"), op_id("output")], features=np.zeros((3, 12)),
                             edges=[[0, 1], [1, 1], [1, 2]])
    with pytest.raises(ValueError, match="cycle"):
        cycle.check()
    with pytest.raises(ValueError, match="edge endpoints"):
        ComputationGraph(ops=[1, 2], features=np.zeros((2, 12)), edges=[[0, 5]])
