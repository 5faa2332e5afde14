"""The GENNAPE estimator: encoder, contrastive pretraining, fuzzy ensemble, API and bad input."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from nape_utils.encoders import GraphEncoder, collate, featurize
from nape_utils.encoders.contrastive import ContrastiveConfig, augment, nt_xent, view_graphs
from nape_utils.graphs import graph_of
from nape_utils.predictors.fuzzy import fuzzy_cmeans, memberships
from nape_utils.predictors.gennape import GENNAPE
from nape_utils.spaces import get_space


@pytest.fixture(scope="module")
def nb201_data():
    specs = get_space("nb201").sample_many(40, seed=0)
    graphs = [graph_of("nb201", s, "zoo") for s in specs]
    # a learnable synthetic target: more convolutions, higher "accuracy"
    y = np.array([50 + 5 * s.count("conv") for s in specs], dtype=float)
    return graphs, y


def test_features_follow_gennape():
    data = featurize(graph_of("nb201", "|nor_conv_3x3~0|+|nor_conv_1x1~0|none~1|+|skip_connect~0|none~1|none~2|", "zoo"))
    weighted = data.weighted.nonzero().ravel()
    assert data.kernel[weighted].tolist()[0] == [3, 3] and data.kernel[~data.weighted].abs().sum() == 0
    assert data.bias[weighted].tolist()[-1] == 1  # the classifier has a bias, the convs do not
    assert data.bias[weighted].tolist()[0] == 0
    assert data.res.shape[1] == 6 and float(data.res.max()) <= 1


@pytest.mark.parametrize("gnn", ["graphconv", "gin", "gat", "gcn"])
def test_encoder_types_give_one_vector_per_graph(gnn, nb201_data):
    graphs, _ = nb201_data
    encoder = GraphEncoder(gnn=gnn)
    assert encoder(collate([featurize(g) for g in graphs[:3]])).shape == (3, 32)
    with pytest.raises(ValueError, match="unknown GNN type"):
        GraphEncoder(gnn="transformer")


def test_nt_xent_prefers_matching_pairs():
    z = torch.randn(8, 16)
    assert nt_xent(z, z, 0.1) < nt_xent(z, torch.randn(8, 16), 0.1)


def test_views_change_scale_not_topology():
    spec = get_space("nb101").sample_many(1, seed=3)[0]
    views = view_graphs("nb101", spec)
    assert len(views) == 4 and len({v.num_nodes for v in views}) > 1
    gen = torch.Generator().manual_seed(0)
    masked = augment(views[0], gen, feature_mask=1.0, edge_drop=1.0)
    assert masked.op.abs().sum() == 0 and masked.edge_index.shape[1] == 0 and views[0].edge_index.shape[1] > 0


def test_fuzzy_memberships():
    centers = torch.tensor([[0.0, 0.0], [10.0, 0.0]])
    u = memberships(torch.tensor([[0.0, 0.0], [5.0, 0.0], [9.0, 0.0]]), centers)
    assert torch.allclose(u.sum(1), torch.ones(3))
    assert u[0, 0] > 0.99 and torch.allclose(u[1], torch.tensor([0.5, 0.5])) and u[2, 1] > 0.9
    # d = (1, 9) with m = 2: u_0 = 1 / (1 + (1/9)^2)
    assert u[2, 1] == pytest.approx(1 / (1 + (1 / 9) ** 2), rel=1e-5)
    points = torch.cat([torch.randn(20, 2), torch.randn(20, 2) + 20])
    found = fuzzy_cmeans(points, 2, seed=1)
    assert sorted(found[:, 0].round().tolist())[0] < 3 and sorted(found[:, 0].tolist())[1] > 17
    with pytest.raises(ValueError, match="fuzzifier"):
        fuzzy_cmeans(points, 2, m=1.0)


def test_fit_predict_fine_tune_save_load(nb201_data, tmp_path):
    graphs, y = nb201_data
    model = GENNAPE(epochs=30, n_clusters=2, seed=0)
    views = [view_graphs("nb201", g.meta["spec"]) for g in graphs[:16]]
    model.pretrain(views, ContrastiveConfig(epochs=2, batch_size=8), progress=False)
    assert len(model.pretrain_history) == 2
    model.fit(graphs[:30], y[:30], progress=False)
    pred = model.predict(graphs)
    assert pred.shape == (40,) and np.isfinite(pred).all()
    assert np.corrcoef(pred[:30], y[:30])[0, 1] > 0.5
    weights = model.cluster_weights(graphs)
    assert weights.shape == (40, 2) and np.allclose(weights.sum(1), 1)
    again = GENNAPE.load(model.save(tmp_path / "m.pt"))
    assert np.allclose(again.predict(graphs), pred)
    tuned = model.copy().fine_tune(graphs[30:], y[30:], epochs=2, progress=False)
    assert not np.allclose(tuned.predict(graphs), pred) and np.allclose(model.predict(graphs), pred)


def test_ablation_switches(nb201_data):
    graphs, y = nb201_data
    hard = GENNAPE(epochs=1, n_clusters=3, hard_clusters=True).fit(graphs, y, progress=False)
    assert set(np.unique(hard.cluster_weights(graphs))) <= {0.0, 1.0}
    plain = GENNAPE(epochs=1, n_clusters=1, flops_transform=False, rank_loss=1.0).fit(graphs, y, progress=False)
    assert np.isfinite(plain.predict(graphs)).all()


def test_bad_input(nb201_data, tmp_path):
    graphs, y = nb201_data
    with pytest.raises(ValueError, match="not fitted"):
        GENNAPE().predict(graphs)
    with pytest.raises(ValueError, match="NaN"):
        GENNAPE(epochs=1).fit(graphs, np.where(np.arange(40) == 3, np.nan, y), progress=False)
    with pytest.raises(ValueError, match="no architectures"):
        GENNAPE(epochs=1).fit([], [], progress=False)
    with pytest.raises(ValueError, match="40 architectures but 3 labels"):
        GENNAPE(epochs=1).fit(graphs, y[:3], progress=False)
    with pytest.raises(ValueError, match="unknown GENNAPE setting 'clusters'"):
        GENNAPE(clusters=3)
    model = GENNAPE(epochs=1, n_clusters=2).fit(graphs, y, progress=False)
    with pytest.raises(ValueError, match="at least 5"):
        model.fine_tune(graphs[:3], y[:3], progress=False)
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(ValueError, match="not a readable GENNAPE checkpoint"):
        GENNAPE.load(tmp_path / "junk.pt")
    torch.save({"format": "other"}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="incompatible version"):
        GENNAPE.load(tmp_path / "other.pt")


def test_channel_scaling_modes(nb201_data):
    from nape_utils.encoders.gnn import scale_channels

    graphs, _ = nb201_data
    batch = collate([featurize(g) for g in graphs[:3]])
    assert torch.equal(scale_channels(batch.res, "linear", batch.batch), batch.res)
    relative = scale_channels(batch.res, "relative", batch.batch)
    for i in range(3):  # the widest channel count of each graph reads 1
        assert float(relative[batch.batch == i, 4:].max()) == pytest.approx(1.0)
    assert torch.equal(relative[:, :4], batch.res[:, :4])
    log = scale_channels(batch.res, "log", batch.batch)
    assert float(log[:, 4:].max()) <= 1 and bool((log[:, 4:] >= batch.res[:, 4:]).all())
    for mode in ("log", "relative"):
        assert GraphEncoder(channels=mode)(batch).shape == (3, 32)
    with pytest.raises(ValueError, match="unknown channel scaling"):
        GraphEncoder(channels="sqrt")


def test_checkpoint_without_channel_setting_reads_channels_linearly(nb201_data, tmp_path):
    graphs, y = nb201_data
    model = GENNAPE(epochs=1, n_clusters=2, channels="linear").fit(graphs, y, progress=False)
    blob = torch.load(model.save(tmp_path / "old.pt"), weights_only=True)
    del blob["config"]["channels"]  # as written before the settings existed
    del blob["config"]["dev_fraction"]
    torch.save(blob, tmp_path / "old.pt")
    old = GENNAPE.load(tmp_path / "old.pt")
    assert old.config.channels == "linear" and old.config.dev_fraction == 0.0
    blob["config"]["future_setting"] = 1
    torch.save(blob, tmp_path / "new.pt")
    with pytest.raises(ValueError, match="newer, incompatible version"):
        GENNAPE.load(tmp_path / "new.pt")


def test_fine_tune_can_keep_the_training_standardisation(nb201_data):
    graphs, y = nb201_data
    model = GENNAPE(epochs=1, n_clusters=2).fit(graphs[:30], y[:30], progress=False)
    stats = model.target_stats
    kept = model.copy().fine_tune(graphs[30:], y[30:] + 20, epochs=1, restandardise=False, progress=False)
    assert kept.target_stats == stats
    refit = model.copy().fine_tune(graphs[30:], y[30:] + 20, epochs=1, progress=False)
    assert refit.target_stats != stats


def test_study_gives_one_tidy_row_per_setting_and_seed(nb201_data):
    from nape_utils.experiments.transfer import study, study_summary

    graphs, y = nb201_data
    data = [featurize(g) for g in graphs]
    views = [view_graphs("nb201", g.meta["spec"]) for g in graphs[:8]]
    bundle = {"g101": data[:25], "y101": y[:25], "g201": data[25:], "y201": y[25:], "views": views}
    settings = {"plain": {"config": {"epochs": 2, "n_clusters": 2}, "contrastive": None, "fine_tune": {"epochs": 1}},
                "pretrained": {"config": {"epochs": 2, "n_clusters": 2}, "contrastive": {"epochs": 1, "batch_size": 4},
                               "ensemble": 2, "fine_tune": {"epochs": 1}}}
    table = study(settings, bundle, seeds=(0, 1), k=5, progress=False)
    assert len(table) == 4 and {"zero_shot_spearman", "5_shot_spearman", "setting_json"} <= set(table.columns)
    summary = study_summary(table)
    assert summary["setting"].tolist() == ["plain", "pretrained"] and (summary["seeds"] == 2).all()


def test_dev_fraction_keeps_the_epoch_with_the_lowest_dev_error(nb201_data):
    graphs, y = nb201_data
    model = GENNAPE(epochs=5, n_clusters=2, lr=3e-2, dev_fraction=0.25).fit(graphs, y, progress=False)
    assert len(model.dev_history) == 5
    assert np.argmin(model.dev_history) < 4  # else keeping the last epoch would pass too
    dev = np.random.default_rng(model.config.seed).permutation(40)[:10]  # the split fit draws
    kept = model._dev_mape(collate([featurize(graphs[i]) for i in dev]), y[dev])
    assert kept == pytest.approx(min(model.dev_history), rel=1e-5)
    assert len(GENNAPE(epochs=2, n_clusters=2, dev_fraction=0).fit(graphs, y, progress=False).dev_history) == 0
    with pytest.raises(ValueError, match="dev_fraction must be in"):
        GENNAPE(epochs=1, dev_fraction=1.0).fit(graphs, y, progress=False)
