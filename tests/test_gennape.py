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
    refit = model.copy().fine_tune(graphs[30:], y[30:] + 20, epochs=1, restandardise=True, progress=False)
    assert refit.target_stats != stats
    default = model.copy().fine_tune(graphs[30:], y[30:] + 20, epochs=1, progress=False)
    assert default.target_stats == stats  # keeping the training statistics is the measured default


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


# -- switches added after checking the authors' code (issue 21) -----------------------------------------

def test_flops_unit_sets_the_divisor(nb201_data):
    raw, giga = GENNAPE(flops_unit="raw"), GENNAPE(flops_unit="giga")
    flops = np.array([0.0, 1e9, 2.5e8])
    assert giga._divisor(flops) == pytest.approx([1.0, np.log10(2) + 1, np.log10(1.25) + 1])
    assert raw._divisor(flops) == pytest.approx(np.log10(flops + 1) + 1)
    assert GENNAPE(flops_unit="giga", flops_transform=False)._divisor(flops).tolist() == [1, 1, 1]
    with pytest.raises(ValueError, match="unknown flops_unit"):
        GENNAPE(flops_unit="mega")
    graphs, y = nb201_data
    model = GENNAPE(epochs=2, n_clusters=2, flops_unit="giga").fit(graphs, y, progress=False)
    mean, std = model.target_stats
    # standardised on y / (log10(GFLOPs + 1) + 1): the mean is close to y's (NB-201 zoo cells are tiny)
    assert mean == pytest.approx(np.mean(y), rel=0.05)


def test_checkpoints_from_before_the_switches_keep_their_behaviour(nb201_data, tmp_path):
    from nape_utils.predictors.gennape import LEGACY_SETTINGS

    graphs, y = nb201_data
    model = GENNAPE(epochs=1, n_clusters=2, flops_unit="giga", op_repr="reference").fit(graphs, y, progress=False)
    blob = torch.load(model.save(tmp_path / "m.pt"), weights_only=True)
    for key in ("flops_unit", "op_repr", "center_refit", "center_refit_final", "encoder_lr_scale",
                "freeze_encoder_epochs"):
        del blob["config"][key]
    del blob["cluster_history"]
    torch.save(blob, tmp_path / "old.pt")
    old = GENNAPE.load(tmp_path / "old.pt", device="cpu")
    assert old.config.flops_unit == "raw" and old.config.op_repr == "atomic" and old.config.center_refit == 0
    assert all(getattr(old.config, k) == v for k, v in LEGACY_SETTINGS.items() if k in ("encoder_lr_scale",
                                                                                       "freeze_encoder_epochs"))
    # the shipped format reads as before: same weights, raw divisor
    assert old._divisor(np.array([1e9])) == pytest.approx(np.log10(1e9 + 1) + 1)
    again = GENNAPE.load(tmp_path / "m.pt", device="cpu")
    assert again.config.flops_unit == "giga" and np.allclose(again.predict(graphs), model.predict(graphs))


def test_centres_refit_follow_the_encoder(nb201_data):
    graphs, y = nb201_data
    once = GENNAPE(epochs=4, n_clusters=3, lr=1e-2, dev_fraction=0).fit(graphs, y, progress=False)
    final = GENNAPE(epochs=4, n_clusters=3, lr=1e-2, dev_fraction=0, center_refit_final=True).fit(graphs, y, progress=False)
    # same seed, same training: only the final refit differs
    assert torch.allclose(once.model.encoder.convs[0].lin_rel.weight, final.model.encoder.convs[0].lin_rel.weight)
    assert not torch.allclose(once.model.centers, final.model.centers)
    assert [h["epoch"] for h in final.cluster_history] == [0, 4] and final.cluster_history[-1]["entropy"] <= np.log(3)
    assert once.cluster_history[-1].get("refit") is False
    every = GENNAPE(epochs=5, n_clusters=3, lr=1e-2, dev_fraction=0, center_refit=2).fit(graphs, y, progress=False)
    assert [h["epoch"] for h in every.cluster_history] == [0, 2, 4, 5]
    # the entropy logged at the end is that of the final memberships
    assert every.membership_entropy(graphs) == pytest.approx(every.cluster_history[-1]["entropy"], abs=1e-4)


def test_fuzzy_refit_from_given_centres_and_entropy():
    from nape_utils.predictors.fuzzy import membership_entropy

    points = torch.cat([torch.randn(20, 2), torch.randn(20, 2) + 20])
    start = torch.tensor([[1.0, 1.0], [19.0, 19.0]])
    found = fuzzy_cmeans(points, 2, init=start)
    assert found[0, 0] < 3 and found[1, 0] > 17  # warm start keeps the order of the given centres
    with pytest.raises(ValueError, match="init must have shape"):
        fuzzy_cmeans(points, 3, init=start)
    assert membership_entropy(torch.full((2, 4), 0.25)) == pytest.approx([np.log(4)] * 2)
    assert membership_entropy(torch.tensor([[1.0, 0.0]])).item() == pytest.approx(0, abs=1e-9)


def test_reference_ops_rewrite_the_cg_and_the_batch_alike():
    from nape_utils.encoders.features import reference_ops_batch
    from nape_utils.graphs.reference_ops import reference_ops

    spec = "|avg_pool_3x3~0|+|skip_connect~0|none~1|+|nor_conv_1x1~0|avg_pool_3x3~1|nor_conv_1x1~2|"
    graph = graph_of("nb201", spec, "zoo")
    ref = reference_ops(graph)
    ref.check()
    before, after = graph.op_counts(), ref.op_counts()
    assert after["mul"] == before["zero"] and "zero" not in after
    assert after["identity"] == before["identity"] + before["zero"]
    stride1 = int(((graph.ops == graph.ops[3]) & (graph.feature("stride") == 1)).sum())  # node 3 is a cell avgpool
    assert after["batchnorm"] == before["batchnorm"] + stride1 and after["avgpool"] == before["avgpool"]
    assert ref.flops == graph.flops and ref.n_nodes == graph.n_nodes + before["zero"] + stride1
    # each follower takes over its node's out-edges: an avgpool's only successor is its batch norm
    for node in np.flatnonzero((ref.ops == graph.ops[3]) & (ref.feature("stride") == 1)):
        assert [ref.op_names[d] for s, d in ref.edges.tolist() if s == node] == ["batchnorm"]
    graphs = [graph, *(graph_of("nb201", s, "zoo") for s in get_space("nb201").sample_many(3, seed=1))]
    a = collate([featurize(reference_ops(g)) for g in graphs])
    b = reference_ops_batch(collate([featurize(g) for g in graphs]))
    for key in ("op", "res", "kernel", "bias", "weighted", "batch", "ptr"):
        assert torch.equal(a[key], b[key]), key
    assert {tuple(e) for e in a.edge_index.T.tolist()} == {tuple(e) for e in b.edge_index.T.tolist()}
    nb101 = collate([featurize(graph_of("nb101", get_space("nb101").sample_many(1, seed=0)[0], "zoo"))])
    assert reference_ops_batch(nb101) is nb101  # NB-101 has neither op


def test_op_repr_switch_changes_only_graphs_with_those_ops(nb201_data):
    graphs, y = nb201_data
    atomic = GENNAPE(epochs=2, n_clusters=2, op_init="normal", op_repr="atomic").fit(graphs, y, progress=False)
    ref = GENNAPE(epochs=2, n_clusters=2, op_init="normal", op_repr="reference").fit(graphs, y, progress=False)
    assert not np.allclose(atomic.predict(graphs), ref.predict(graphs))
    with pytest.raises(ValueError, match="unknown op_repr"):
        GENNAPE(op_repr="tf")
    ref.model.load_state_dict(atomic.model.state_dict())
    ref.target_stats = atomic.target_stats
    nb101 = [graph_of("nb101", s, "zoo") for s in get_space("nb101").sample_many(3, seed=0)]
    assert np.allclose(ref.predict(nb101), atomic.predict(nb101))


def test_same_size_views_and_encoder_schedule(nb201_data):
    graphs, y = nb201_data
    spec = get_space("nb101").sample_many(1, seed=3)[0]
    (view,) = view_graphs("nb101", spec, "same")
    paper = featurize(graph_of("nb101", spec, "paper"))
    assert torch.equal(view.op, paper.op) and torch.equal(view.edge_index, paper.edge_index)
    with pytest.raises(ValueError, match="unknown view mode"):
        view_graphs("nb101", spec, "tiny")
    frozen = GENNAPE(epochs=2, n_clusters=2, freeze_encoder_epochs=2, dev_fraction=0)
    start = copy_state(frozen.model.encoder)
    frozen.fit(graphs, y, progress=False)
    assert all(torch.equal(start[k], v) for k, v in frozen.model.encoder.state_dict().items())
    assert all(p.requires_grad for p in frozen.model.encoder.parameters())  # unfrozen for fine-tuning
    tuned = frozen.copy().fine_tune(graphs[:10], y[:10], epochs=1, progress=False)
    assert not torch.equal(tuned.model.encoder.convs[0].lin_rel.weight, frozen.model.encoder.convs[0].lin_rel.weight)
    slow = GENNAPE(epochs=2, n_clusters=2, encoder_lr_scale=0.0, dev_fraction=0)
    start = copy_state(slow.model.encoder)
    slow.fit(graphs, y, progress=False)
    assert all(torch.equal(start[k], v) for k, v in slow.model.encoder.state_dict().items())


def copy_state(module) -> dict:
    return {k: v.clone() for k, v in module.state_dict().items()}


def test_device_argument_and_gather_scatter_path(nb201_data, tmp_path):
    from nape_utils.predictors.gennape import resolve_device

    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("cpu").type == "cpu"
    graphs, y = nb201_data
    model = GENNAPE(epochs=1, n_clusters=2, device="cpu").fit(graphs, y, progress=False)
    assert model.device.type == "cpu" and all(p.device.type == "cpu" for p in model.model.parameters())
    loaded = GENNAPE.load(model.save(tmp_path / "m.pt"), device="cpu")
    assert np.allclose(loaded.predict(graphs), model.predict(graphs))
    # what a GPU runs: PyG's own GraphConv aggregation, which must equal the CPU's CSR product
    batch = collate([featurize(g) for g in graphs[:4]])
    encoder = model.model.encoder
    h = encoder.embed(batch)
    for conv in encoder.convs:
        h = torch.tanh(conv(h, batch.edge_index))
    with torch.no_grad():
        assert torch.allclose(encoder.node_states(batch), h, atol=1e-5)


def test_study_variants_view_modes_and_resume(nb201_data, tmp_path):
    from nape_utils.experiments.transfer import study, study_summary

    graphs, y = nb201_data
    data = [featurize(g) for g in graphs]
    specs = get_space("nb101").sample_many(6, seed=0)
    bundle = {"g101": data[:25], "y101": y[:25], "g201": data[25:], "y201": y[25:], "view_specs": specs,
              "views": [view_graphs("nb101", s) for s in specs]}
    settings = {"same": {"config": {"epochs": 2, "n_clusters": 2}, "contrastive": {"epochs": 1, "batch_size": 4, "views": "same"},
                         "fine_tune": {"epochs": 1}, "fine_tune_variants": {"keep": {"restandardise": False}}}}
    out = tmp_path / "rows.csv"
    table = study(settings, bundle, seeds=(0,), k=5, progress=False, out=out)
    assert table["setting"].tolist() == ["same", "same+keep"] and len(bundle["views_same"]) == 6
    assert table["zero_shot_spearman"].nunique() == 1  # the variants share the fitted model
    assert {"entropy_nb101_init", "entropy_nb101_end", "entropy_nb201"} <= set(table.columns)
    assert (table["entropy_nb201"] <= np.log(2) + 1e-6).all()
    again = study(settings, bundle, seeds=(0, 1), k=5, progress=False, out=out)  # seed 0 is in the file
    assert again["seed"].tolist() == [1, 1] and len(study_summary(__import__("pandas").read_csv(out))) == 2


def test_nb101_cifar10_recipe_on_a_small_slice(shared_data, tmp_path):
    import json

    from nape_utils.experiments.pretrained import train_nb101_cifar10

    folder, card = train_nb101_cifar10(str(shared_data), source="nb101-zc", train_cells=40, pretrain_cells=4,
                                       pretrain_epochs=1, config={"epochs": 1, "n_clusters": 2}, seed=0,
                                       few_shot_seeds=(), progress=False, root=tmp_path)
    model = GENNAPE.load(folder / "model.pt", device="cpu")
    assert json.loads((folder / "card.json").read_text())["training_data"]["architectures"] == 40
    assert card["recipe"]["pretrain_cells"] == 4 and card["config"]["epochs"] == 1 and model.config.n_clusters == 2
    assert set(card["seconds"]) >= {"graphs", "pretrain", "fit", "fit_per_epoch"}
    assert card["memberships"]["uniform_entropy"] == pytest.approx(np.log(2), abs=1e-4)
    assert -1 <= card["metrics"]["nb201_dev_zero_shot"]["spearman"] <= 1
    with pytest.raises(ValueError, match="unknown recipe keys"):
        train_nb101_cifar10(str(shared_data), cells=3, root=tmp_path)
