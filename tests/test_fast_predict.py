"""The fast prediction path (batched featurization, CSR aggregation) equals the plain PyG path."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch_geometric.data import Batch
from torch_geometric.nn import global_mean_pool

from nape_utils.encoders import GraphEncoder, collate, featurize
from nape_utils.encoders.contrastive import augment
from nape_utils.encoders.features import batch_graphs
from nape_utils.graphs import graph_of
from nape_utils.predictors.gennape import GENNAPE
from nape_utils.predictors.pretrained import load_pretrained
from nape_utils.spaces import get_space

FIELDS = ("op", "res", "kernel", "bias", "weighted", "edge_index", "batch", "ptr", "flops", "params")


@pytest.fixture(scope="module")
def graphs():
    """NB-201 cells at the paper profile and a few NB-101 cells (other sizes, wider in-degrees)."""
    nb201 = [graph_of("nb201", s, "paper") for s in get_space("nb201").sample_many(6, seed=1)]
    nb101 = [graph_of("nb101", s, "zoo") for s in get_space("nb101").sample_many(3, seed=1)]
    return nb201 + nb101


def _reference_states(encoder: GraphEncoder, batch) -> torch.Tensor:
    """The encoder as it was: PyG message passing over ``edge_index``, torch's tanh."""
    h = encoder.embed(batch)
    for conv in encoder.convs:
        h = torch.tanh(conv(h, batch.edge_index))
    return global_mean_pool(h, batch.batch)


def test_batches_equal_pyg_collation(graphs):
    expected = Batch.from_data_list([featurize(g) for g in graphs])
    for batch in (collate([featurize(g) for g in graphs]), batch_graphs(graphs)):
        for field in FIELDS:
            assert torch.equal(batch[field], expected[field]), field
        assert batch.spec == expected.spec and batch.num_graphs == len(graphs) and batch.num_nodes == expected.num_nodes


@pytest.mark.parametrize("gnn", ["graphconv", "gin", "gat", "gcn"])
def test_encoder_equals_edge_index_path(gnn, graphs):
    torch.manual_seed(0)
    encoder = GraphEncoder(gnn=gnn).eval()
    data = [featurize(g) for g in graphs]
    data[1] = augment(data[1], torch.Generator().manual_seed(0), feature_mask=0.0, edge_drop=1.0)  # no edges
    with torch.inference_mode():
        fast = encoder(collate(data))
        expected = _reference_states(encoder, Batch.from_data_list(data))
    assert fast.shape == (len(graphs), 32)
    torch.testing.assert_close(fast, expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("gnn", ["graphconv", "gin"])
def test_training_gradients_equal_edge_index_path(gnn, graphs):
    """Training runs through the same sparse path; its gradients are the edge-wise ones."""
    torch.manual_seed(0)
    encoder = GraphEncoder(gnn=gnn).train()
    batch = collate([featurize(g) for g in graphs])
    grads = []
    for forward in (encoder, lambda b: _reference_states(encoder, b)):
        encoder.zero_grad()
        (forward(batch) ** 2).sum().backward()
        grads.append([p.grad.clone() for p in encoder.parameters()])
    for fast, expected in zip(*grads):
        torch.testing.assert_close(fast, expected, atol=1e-5, rtol=1e-4)
    dropout = GraphEncoder(gnn=gnn, dropout=0.5).train()
    dropout(batch).sum().backward()  # dropout masks stay per node


def test_predictions_of_the_shipped_model_are_unchanged(graphs):
    model, _ = load_pretrained("nb101-cifar10")
    cells = graphs[:6]
    batch = Batch.from_data_list([featurize(g) for g in cells])
    with torch.no_grad():
        z = _reference_states(model.model.encoder, batch)
        heads = torch.cat([head(z) for head in model.model.heads], dim=1)
        t = (model.model.weights(z) * heads).sum(1)
    expected = model._inverse(t.numpy().astype(float), batch.flops.numpy().astype(float))
    np.testing.assert_allclose(model.predict(cells), expected, atol=1e-5, rtol=1e-6)
    np.testing.assert_allclose(model.predict([featurize(g) for g in cells], batch_size=4), expected, atol=1e-5, rtol=1e-6)
    mixed = [g if i % 2 else featurize(g) for i, g in enumerate(cells)]
    np.testing.assert_allclose(model.predict(mixed, batch_size=3), expected, atol=1e-5, rtol=1e-6)


def test_predict_rejects_out_of_vocabulary_graphs(graphs):
    model = GENNAPE(n_clusters=2)
    model.fitted = True
    unknown = graphs[0]
    unknown = type(unknown)(np.where(np.arange(unknown.n_nodes) == 3, 0, unknown.ops), unknown.features, unknown.edges)
    with pytest.raises(ValueError, match=r"1 architecture\(s\) \(first: #1\)"):
        model.predict([graphs[1], unknown])


def test_bench_predict_writes_rates(tmp_path):
    from nape_utils.experiments.bench import bench_predict

    report = bench_predict(n=6, workers=1, note="test", out=tmp_path / "predict.json")
    row = json.loads((tmp_path / "predict.json").read_text())["results"][0]
    assert row == report["results"][0] and row["n"] == 6 and row["end_to_end_archs_per_second"] > 0
    assert row["encoder_archs_per_second_per_worker"] > 0 and report["note"] == "test" and "load_average" in report
