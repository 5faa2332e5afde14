"""Training the shipped GENNAPE models and writing their model cards.

``python -m nape_utils.experiments.pretrained nb101-cifar10 --data ../shared/data`` trains
``results/pretrained/nb101-cifar10``: the encoder pretrained contrastively on sampled NB-101 cells,
then encoder and heads fitted on the real NB-101 CIFAR-10 labels; its card records the transfer to
the NB-201 development slice, zero-shot and 50-shot.

``python -m nape_utils.experiments.pretrained zoo-nb101`` trains ``results/pretrained/zoo-nb101`` with
no download: the same pretraining, then the heads fitted on the zoo's NB-101 family (nape's own
labels, seed-mean test accuracy on the offline task); its card records, for every other zoo family
with enough labelled architectures, the zero-shot and k-shot Spearman beside FLOPs and the best single
zero-cost proxy on the same architectures.
"""
from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd

from ..encoders.contrastive import ContrastiveConfig, view_graphs
from ..metrics import evaluate
from ..predictors.gennape import GENNAPE, GENNAPEConfig
from ..predictors.pretrained import PRETRAINED_DIR, save_pretrained
from ..spaces import get_space
from ..zoo.build import DEFAULT_STORE
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


def zoo_family_transfer(model: GENNAPE, zoo: pd.DataFrame, train_family: str, *, k: int = 50, seeds=(0, 1, 2),
                        epochs: int = 100, min_archs: int = 20, proxy_cache: str | Path | None = None,
                        log=print) -> pd.DataFrame:
    """One row per zoo family other than ``train_family`` with ``min_archs`` or more labelled
    architectures (``log`` names the others): the accuracy range, GENNAPE's zero-shot metrics, k-shot
    Spearman (mean and std over ``seeds``, ``epochs`` of fine-tuning; when the family has ``k + 10`` or
    more), FLOPs' Spearman, and the best of the 13 zero-cost proxies (from
    :func:`~nape_utils.experiments.comparison.proxy_table`, cached in ``proxy_cache``)."""
    from ..metrics import spearman
    from ..predictors.proxies import PROXY_NAMES
    from .comparison import proxy_table

    rows = []
    for family, part in zoo[zoo["space"] != train_family].groupby("space"):
        if len(part) < min_archs:
            log(f"skipped {family}: {len(part)} labelled architectures (< min_archs = {min_archs})")
            continue
        y = part["accuracy"].to_numpy(float)
        graphs = graphs_of(family, part["spec"], "zoo")
        row = {"family": family, "archs": len(part), "acc_range": round(float(y.max() - y.min()), 2),
               **{f"zero_shot_{m}": round(v, 4) for m, v in zero_shot(model, graphs, y).items()},
               "flops_spearman": round(spearman(y, [float(g.flops) for g in graphs]), 4)}  # featurized CGs carry FLOPs
        if len(part) >= k + 10:
            shots = few_shot(model, graphs, y, k=k, seeds=seeds, epochs=epochs)
            row.update({f"{k}_shot_spearman_mean": round(float(shots["spearman"].mean()), 4),
                        f"{k}_shot_spearman_std": round(float(shots["spearman"].std()), 4)})
        proxies = proxy_table(part, proxy_cache)
        rhos = {name: spearman(y, proxies[name].fillna(proxies[name].min()).to_numpy(float)) for name in PROXY_NAMES}
        best = max(rhos, key=lambda name: -np.inf if np.isnan(rhos[name]) else rhos[name])
        row.update(best_proxy=best, best_proxy_spearman=round(rhos[best], 4))
        rows.append(row)
    return pd.DataFrame(rows)


def train_zoo_nb101(zoo_source=DEFAULT_STORE, *, pretrain_cells: int = 500, seed: int = 0, k: int = 50,
                    few_shot_seeds=(0, 1, 2), min_archs: int = 20,
                    proxy_cache: str | Path | None = "results/comparison/proxy_cache.csv", root: Path = PRETRAINED_DIR,
                    progress: bool = True):
    """Train and save ``zoo-nb101`` (module docstring); returns (folder, card)."""
    from ..zoo.export import label_quality
    from .comparison import zoo_dataset, zoo_table

    start = time.perf_counter()
    ds = zoo_dataset(zoo_source)
    zoo = zoo_table(ds)
    train = zoo[zoo["space"] == "nb101"]
    if len(train) < min_archs:
        raise ValueError(f"the zoo has {len(train)} labelled NB-101 architectures, fewer than min_archs = "
                         f"{min_archs}; build more with `nape zoo build --spaces nb101`")
    config = GENNAPEConfig(seed=seed)
    contrastive = ContrastiveConfig(epochs=10, seed=seed)
    views = [view_graphs("nb101", s) for s in get_space("nb101").sample_many(pretrain_cells, seed=100 + seed)]
    model = GENNAPE(config).pretrain(views, contrastive, progress=progress)
    g101 = graphs_of("nb101", train["spec"], "zoo")
    model.fit(g101, train["accuracy"].to_numpy(float), progress=progress)
    quality = label_quality(ds)
    card = {
        "name": "zoo-nb101",
        "estimator": "GENNAPE (CG encoder + fuzzy C-means ensemble)",
        "profile": "zoo",
        "zoo_families_trained_on": ["nb101"],
        "training_data": {"source": f"nape's zoo ({zoo_source}): the NB-101 family at the zoo profile, trained on "
                                    "the offline task; label = test accuracy (%), mean over training seeds",
                          "architectures": len(train), "seeds": [int(v) for v in ds["seed"].values],
                          "zoo_config": json.loads(ds.attrs.get("config", "{}")),
                          "label_quality": quality.loc["nb101"].to_dict() if "nb101" in quality.index else {}},
        "contrastive_pretraining": {"cells": pretrain_cells, "views": "NB-101 macro scales (VIEW_SCALES)",
                                    **contrastive.to_dict(), "loss_per_epoch": [round(v, 4) for v in model.pretrain_history]},
        "config": asdict(config),
        "metrics": {"train_nb101": _rounded(evaluate(train["accuracy"].to_numpy(float), model.predict(g101)))},
    }
    card["seconds_to_train"] = round(time.perf_counter() - start)
    save_pretrained(model, "zoo-nb101", card, root)  # usable now; the transfer figures follow
    return measure_zoo_nb101(zoo_source, k=k, few_shot_seeds=few_shot_seeds, min_archs=min_archs,
                             proxy_cache=proxy_cache, root=root, progress=progress)


def measure_zoo_nb101(zoo_source=DEFAULT_STORE, *, k: int = 50, few_shot_seeds=(0, 1, 2), min_archs: int = 20,
                      proxy_cache: str | Path | None = "results/comparison/proxy_cache.csv", root: Path = PRETRAINED_DIR,
                      progress: bool = True):
    """Measure the saved ``zoo-nb101`` on every other family of a zoo (it may have grown since the model
    was fitted; the NB-101 labels it learned from must still be the same) and write the figures into
    its card; returns (folder, card)."""
    from .comparison import zoo_dataset, zoo_table

    folder = root / "zoo-nb101"
    model = GENNAPE.load(folder / "model.pt")
    card = json.loads((folder / "card.json").read_text())
    ds = zoo_dataset(zoo_source)
    zoo = zoo_table(ds)
    train = zoo[zoo["space"] == "nb101"]
    if len(train) != card["training_data"]["architectures"]:
        raise ValueError(f"{zoo_source} has {len(train)} labelled NB-101 architectures, but zoo-nb101 was fitted on "
                         f"{card['training_data']['architectures']}: refit it (train_zoo_nb101) before measuring")
    start = time.perf_counter()
    transfer = zoo_family_transfer(model, zoo, "nb101", k=k, seeds=few_shot_seeds, min_archs=min_archs,
                                   proxy_cache=proxy_cache, log=print if progress else (lambda line: None))
    card["metrics"]["zoo_families"] = transfer.set_index("family").to_dict(orient="index") if len(transfer) else {}
    card["metrics"]["zoo_families_note"] = (f"measured on {zoo_source}: families with {min_archs}+ labelled "
                                            f"architectures; {k}-shot with {k + 10}+ (seeds {list(few_shot_seeds)}); "
                                            "the rest of each family is the test set")
    card["seconds_to_measure"] = round(time.perf_counter() - start)
    return save_pretrained(model, "zoo-nb101", card, root), card


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name", choices=["nb101-cifar10", "zoo-nb101"])
    parser.add_argument("--data", help="nb101-cifar10: folder with nb101/ and nb201/ benchmark files")
    parser.add_argument("--zoo", default=str(DEFAULT_STORE), help="zoo-nb101: the zoo store or NetCDF file")
    parser.add_argument("--pretrain-cells", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--min-archs", type=int, default=20,
                        help="zoo-nb101: families with fewer labelled architectures are not measured")
    parser.add_argument("--measure-only", action="store_true",
                        help="zoo-nb101: keep the saved model, re-measure it on the (grown) zoo")
    parser.add_argument("--shot-seeds", default="0,1,2",
                        help="comma-separated draws of the 50 fine-tuning architectures (each costs a 100-epoch fine-tune)")
    args = parser.parse_args(argv)
    try:
        shot_seeds = tuple(int(v) for v in args.shot_seeds.split(","))
    except ValueError:
        parser.error(f"--shot-seeds takes comma-separated integers, e.g. 0,1,2; got {args.shot_seeds!r}")
    if args.name == "zoo-nb101":
        if args.measure_only:
            folder, card = measure_zoo_nb101(args.zoo, few_shot_seeds=shot_seeds, min_archs=args.min_archs,
                                             progress=False)
        else:
            folder, card = train_zoo_nb101(args.zoo, pretrain_cells=args.pretrain_cells, seed=args.seed,
                                           few_shot_seeds=shot_seeds, min_archs=args.min_archs, progress=False)
        print(folder)
        print(json.dumps(card["metrics"], indent=1))
        return
    if not args.data:
        parser.error("nb101-cifar10 needs --data (the folder with nb101/ and nb201/)")
    folder, card = train_nb101_cifar10(args.data, pretrain_cells=args.pretrain_cells, seed=args.seed,
                                       few_shot_seeds=shot_seeds, progress=False)
    print(folder)
    print(card["metrics"])


if __name__ == "__main__":
    main()
