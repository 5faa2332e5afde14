"""Training the shipped models: the zoo-nb101 recipe end to end on a tiny zoo."""
from __future__ import annotations

import json

import numpy as np
import pytest

from nape_utils.data.task import TaskConfig
from nape_utils.experiments.pretrained import train_zoo_nb101
from nape_utils.predictors.pretrained import load_pretrained
from nape_utils.zoo import TrainConfig, build_zoo, plan

TINY = TrainConfig(epochs=1, task=TaskConfig(n_train=200, n_val=40, n_test=60))


@pytest.fixture(scope="module")
def tiny_zoo(tmp_path_factory):
    store = tmp_path_factory.mktemp("zoo") / "zoo.sqlite"
    build_zoo(plan(["nb101", "nb201"], 6, [0, 1], sample_seed=2), store, TINY, progress=False)
    return store


def test_zoo_nb101_is_trained_on_the_zoo_and_reports_every_family(tiny_zoo, tmp_path):
    folder, card = train_zoo_nb101(tiny_zoo, pretrain_cells=6, min_archs=5, k=3, few_shot_seeds=(0,),
                                   proxy_cache=tmp_path / "proxies.csv", root=tmp_path, progress=False)
    assert folder == tmp_path / "zoo-nb101"
    model, stored = load_pretrained(folder / "model.pt")
    assert stored == json.loads(json.dumps(card))
    assert card["training_data"]["architectures"] == 6 and card["training_data"]["seeds"] == [0, 1]
    assert card["training_data"]["zoo_config"]["task"]["n_train"] == 200
    nb201 = card["metrics"]["zoo_families"]["nb201"]
    assert nb201["archs"] == 6 and -1 <= nb201["zero_shot_spearman"] <= 1 and "3_shot_spearman_mean" not in nb201
    assert nb201["best_proxy"] in {"synflow", "nwot", "jacov", "snip", "grad_norm", "grasp", "fisher", "epe_nas",
                                   "zen", "l2_norm", "plain"}
    assert np.isfinite(nb201["flops_spearman"])


def test_zoo_nb101_refuses_a_zoo_with_too_few_nb101_labels(tiny_zoo, tmp_path):
    with pytest.raises(ValueError, match="fewer than min_archs = 20; build more"):
        train_zoo_nb101(tiny_zoo, root=tmp_path, progress=False)


def test_cost_quality_never_scores_zoo_nb101_on_its_own_training_family(tiny_zoo, tmp_path):
    from nape_utils.experiments import cost_quality as cq
    from nape_utils.experiments.comparison import zoo_table

    folder, _ = train_zoo_nb101(tiny_zoo, pretrain_cells=6, min_archs=5, k=3, few_shot_seeds=(0,),
                                proxy_cache=tmp_path / "proxies.csv", root=tmp_path, progress=False)
    labels = zoo_table(tiny_zoo).assign(family=lambda t: t["space"])
    estimates = cq.gennape_estimates(labels, str(folder / "model.pt"))
    assert set(estimates["family"]) == {"nb201"} and len(estimates) == 6
    with pytest.raises(ValueError, match="nothing is left to score zero-shot"):
        cq.gennape_estimates(labels[labels["space"] == "nb101"], str(folder / "model.pt"))


def test_zoo_nb101_is_measured_again_on_a_grown_zoo_but_not_on_other_nb101_labels(tiny_zoo, tmp_path):
    from nape_utils.experiments.pretrained import measure_zoo_nb101
    from nape_utils.zoo import ZooStore, to_dataset

    train_zoo_nb101(tiny_zoo, pretrain_cells=6, min_archs=5, k=3, few_shot_seeds=(0,), proxy_cache=tmp_path / "p.csv",
                    root=tmp_path, progress=False)
    with ZooStore(tiny_zoo) as store:
        ds = to_dataset(store.runs())
    _, card = measure_zoo_nb101(ds, min_archs=7, proxy_cache=tmp_path / "p.csv", root=tmp_path, progress=False)
    assert card["metrics"]["zoo_families"] == {}  # nb201 has 6 < 7 architectures
    fewer = ds.isel(arch=[i for i in range(ds.sizes["arch"]) if i != np.flatnonzero(ds["space"].values == "nb101")[0]])
    with pytest.raises(ValueError, match="refit it"):
        measure_zoo_nb101(fewer, min_archs=5, proxy_cache=tmp_path / "p.csv", root=tmp_path, progress=False)
