"""Training the shipped GENNAPE models and writing their model cards.

``python -m nape_utils.experiments.pretrained nb101-cifar10 --data ../shared/data`` trains
``results/pretrained/nb101-cifar10``: the encoder pretrained contrastively on sampled NB-101 cells,
then encoder and heads fitted on the real NB-101 CIFAR-10 labels; its card records the transfer to
the NB-201 development slice, zero-shot and 50-shot.
"""
from __future__ import annotations

import argparse
import time
from dataclasses import asdict

import numpy as np

from ..encoders.contrastive import ContrastiveConfig, view_graphs
from ..metrics import evaluate
from ..predictors.gennape import GENNAPE, GENNAPEConfig
from ..predictors.pretrained import save_pretrained
from ..spaces import get_space
from .transfer import few_shot, graphs_of, nb201_dev, real_nb101, zero_shot


def _rounded(metrics: dict) -> dict:
    return {k: round(v, 4) for k, v in metrics.items()}


def train_nb101_cifar10(data_dir: str, *, pretrain_cells: int = 500, seed: int = 0, few_shot_seeds=(0, 1, 2),
                        progress: bool = True):
    start = time.perf_counter()
    config = GENNAPEConfig(seed=seed)
    contrastive = ContrastiveConfig(epochs=10, seed=seed)
    train = real_nb101(data_dir)
    views = [view_graphs("nb101", s) for s in get_space("nb101").sample_many(pretrain_cells, seed=100 + seed)]
    model = GENNAPE(config).pretrain(views, contrastive, progress=progress)
    g101 = graphs_of("nb101", train["spec"], "paper")
    model.fit(g101, train["val_accuracy"], progress=progress)
    dev = nb201_dev(data_dir)
    g201 = graphs_of("nb201", dev["spec"], "paper")
    card = {
        "name": "nb101-cifar10",
        "estimator": "GENNAPE (CG encoder + fuzzy C-means ensemble)",
        "profile": "paper",
        "training_data": {"source": "NASLib zc_nasbench101.json (500 records, CIFAR-10 validation accuracy, %)",
                          "architectures": len(train),
                          "note": "records that prune to the same cell are averaged (500 records, 301 cells)"},
        "contrastive_pretraining": {"cells": pretrain_cells, "views": "NB-101 macro scales (VIEW_SCALES)",
                                    **contrastive.to_dict(), "loss_per_epoch": [round(v, 4) for v in model.pretrain_history]},
        "config": asdict(config),
        "metrics": {
            "train_nb101": _rounded(evaluate(train["val_accuracy"], model.predict(g101))),
            "nb201_dev_zero_shot": _rounded(zero_shot(model, g201, dev["val_accuracy"])),
        },
        "published": {"nb201_zero_shot_spearman": 0.815, "nb201_50_shot_spearman": 0.910,
                      "source": "GENNAPE (Mills et al., AAAI 2023), trained on NB-101 at full scale"},
    }
    folder = save_pretrained(model, "nb101-cifar10", card)  # usable now; the k-shot figures follow
    shots = few_shot(model, g201, dev["val_accuracy"], k=50, seeds=few_shot_seeds)
    card["metrics"]["nb201_dev_50_shot"] = {
        "seeds": list(few_shot_seeds),
        **{f"{k}_mean": round(float(shots[k].mean()), 4) for k in ("spearman", "kendall", "ndcg@10")},
        **{f"{k}_std": round(float(shots[k].std()), 4) for k in ("spearman", "kendall", "ndcg@10")}}
    card["seconds_to_train"] = round(time.perf_counter() - start)
    return save_pretrained(model, "nb101-cifar10", card), card


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name", choices=["nb101-cifar10"])
    parser.add_argument("--data", required=True, help="folder with nb101/ and nb201/ benchmark files")
    parser.add_argument("--pretrain-cells", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    folder, card = train_nb101_cifar10(args.data, pretrain_cells=args.pretrain_cells, seed=args.seed, progress=False)
    print(folder)
    print(card["metrics"])


if __name__ == "__main__":
    main()
