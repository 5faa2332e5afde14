"""Training the shipped GENNAPE models and writing their model cards.

``python -m nape_utils.experiments.pretrained nb101-cifar10 --data ../shared/data`` trains
``results/pretrained/nb101-cifar10`` by :data:`NB101_CIFAR10_RECIPE`: the encoder pretrained
contrastively on sampled NB-101 cells, then encoder and heads fitted on real NB-101 CIFAR-10 labels
(``--source nb101-30k``: the 30,001 cells of nasbench-vis; ``nb101-zc``: NASLib's 301); its card records
the recipe, the seconds each stage took, the memberships' entropy and the transfer to the NB-201
development slice, zero-shot and 50-shot.

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
from ..metrics import evaluate, spearman
from ..predictors.gennape import GENNAPE, GENNAPEConfig
from ..predictors.pretrained import PRETRAINED_DIR, save_pretrained
from ..spaces import get_space
from ..zoo.build import DEFAULT_STORE
from .transfer import few_shot, graphs_of, nb201_dev, real_nb101, zero_shot


def _rounded(metrics: dict) -> dict:
    return {k: round(v, 4) for k, v in metrics.items()}


#: the recipe of the shipped ``nb101-cifar10`` (results/gennape_study/README.md says why each choice)
NB101_CIFAR10_RECIPE = {
    "source": "nb101-30k",   # 30,001 real NB-101 cells (one training run each); "nb101-zc": the 301 NASLib cells
    "train_cells": None,     # all of them (10 % of them the dev split)
    "pretrain_cells": 5000,  # 5,000 beat 500 and 20,000 at the 3,000-cell scale (round 3)
    "pretrain_epochs": 10,
    "contrastive": {},       # ContrastiveConfig overrides (views, masking): macro views measured best
    "config": {"epochs": 20},  # GENNAPEConfig overrides: 20 epochs of 27,000 cells fit the 30-minute CPU budget
    "fine_tune": {},         # GENNAPE.fine_tune overrides for the card's k-shot figures
}


def nb101_training_table(data_dir: str | Path, source: str = "nb101-30k") -> pd.DataFrame:
    """Real NB-101 CIFAR-10 labels, one row per distinct canonical cell (``spec``, ``val_accuracy`` in %):
    ``nb101-30k`` (nasbench-vis: 30,001 cells, one training run's 108-epoch validation accuracy) or
    ``nb101-zc`` (NASLib's 500 records, averaged over records that prune to one cell: 301 cells)."""
    from ..data import load_benchmark

    if source == "nb101-zc":
        return real_nb101(data_dir)
    if source != "nb101-30k":
        raise ValueError(f"unknown NB-101 training source {source!r}; choose nb101-30k or nb101-zc")
    table = None
    for folder in (Path(data_dir), Path(data_dir) / "nb101" / "nasbench_vis", Path(data_dir) / "nasbench_vis"):
        try:
            table = load_benchmark("nb101-30k", folder)
            break
        except (FileNotFoundError, ValueError) as err:
            last = err
    if table is None:
        raise last
    return table.groupby("spec", as_index=False)["val_accuracy"].mean()


def train_nb101_cifar10(data_dir: str, *, seed: int = 0, few_shot_seeds=(0, 1, 2), progress: bool = True,
                        root: Path = PRETRAINED_DIR, name: str = "nb101-cifar10", **recipe):
    """Train and save ``nb101-cifar10`` (``recipe``: overrides of :data:`NB101_CIFAR10_RECIPE`): the
    encoder pretrained contrastively on sampled NB-101 cells, then fitted on real NB-101 labels; the card
    records the recipe, the time each stage took and the transfer to the NB-201 development slice.
    Returns (folder, card)."""
    import torch

    unknown = set(recipe) - set(NB101_CIFAR10_RECIPE)
    if unknown:
        raise ValueError(f"unknown recipe keys {sorted(unknown)}; known: {', '.join(NB101_CIFAR10_RECIPE)}")
    recipe = {**NB101_CIFAR10_RECIPE, **recipe}
    start = time.perf_counter()
    config = GENNAPEConfig(**{**recipe["config"], "seed": seed})
    contrastive = ContrastiveConfig(**{"epochs": recipe["pretrain_epochs"], **recipe["contrastive"], "seed": seed})
    train = nb101_training_table(data_dir, recipe["source"])
    available = len(train)
    if recipe["train_cells"] is not None and recipe["train_cells"] < len(train):
        train = train.sample(n=recipe["train_cells"], random_state=seed).reset_index(drop=True)
    specs = get_space("nb101").sample_many(recipe["pretrain_cells"], seed=100 + seed) if recipe["pretrain_cells"] else []
    views = [view_graphs("nb101", s, contrastive.views) for s in specs]
    g101 = graphs_of("nb101", train["spec"], "paper")
    seconds = {"graphs": round(time.perf_counter() - start, 1)}
    model = GENNAPE(config)
    tick = time.perf_counter()
    if views:
        model.pretrain(views, contrastive, progress=progress)
    seconds["pretrain"] = round(time.perf_counter() - tick, 1)
    tick = time.perf_counter()
    model.fit(g101, train["val_accuracy"], progress=progress)
    seconds["fit"] = round(time.perf_counter() - tick, 1)
    seconds["fit_per_epoch"] = round(seconds["fit"] / config.epochs, 2)
    dev = nb201_dev(data_dir)
    g201 = graphs_of("nb201", dev["spec"], "paper")
    source_note = {"nb101-30k": "nasbench-vis data-1k/10k/20k.json: 30,001 NB-101 cells, CIFAR-10 validation accuracy "
                                "after 108 epochs (%) of ONE of the benchmark's three training runs",
                   "nb101-zc": "NASLib zc_nasbench101.json (500 records, CIFAR-10 validation accuracy, %); records "
                               "that prune to the same cell are averaged (301 cells)"}[recipe["source"]]
    card = {
        "name": name,
        "estimator": "GENNAPE (CG encoder + fuzzy C-means ensemble)",
        "profile": "paper",
        "recipe": recipe,
        "training_data": {"source": source_note, "architectures": len(train), "available": available,
                          "sampled_with_seed": seed if len(train) < available else None},
        "contrastive_pretraining": {"cells": len(specs),
                                    "view_set": "NB-101 macro scales (VIEW_SCALES)" if contrastive.views == "macro"
                                    else "the paper-size CG alone (views differ by masking and edge dropping)",
                                    **contrastive.to_dict(), "loss_per_epoch": [round(v, 4) for v in model.pretrain_history]},
        "config": asdict(config),
        "device": str(model.device),
        "threads": torch.get_num_threads(),
        "seconds": seconds,
        "memberships": {"entropy_nb101_per_refit": model.cluster_history,
                        "entropy_nb201_dev": round(model.membership_entropy(g201), 4),
                        "uniform_entropy": round(float(np.log(config.n_clusters)), 4)},
        "metrics": {
            "train_nb101": _rounded(evaluate(train["val_accuracy"], model.predict(g101))),
            "nb201_dev_zero_shot": _rounded(zero_shot(model, g201, dev["val_accuracy"])),
            "nb201_dev_flops_spearman": round(spearman(dev["val_accuracy"], [float(g.flops) for g in g201]), 4),
        },
        "published": {"nb201_zero_shot_spearman": 0.815, "nb201_50_shot_spearman": 0.910,
                      "source": "GENNAPE (Mills et al., AAAI 2023), trained on NB-101 at full scale"},
    }
    folder = save_pretrained(model, name, card, root)  # usable now; the k-shot figures follow
    if few_shot_seeds:
        tick = time.perf_counter()
        shots = few_shot(model, g201, dev["val_accuracy"], k=50, seeds=few_shot_seeds, **recipe["fine_tune"])
        card["metrics"]["nb201_dev_50_shot"] = {
            "seeds": list(few_shot_seeds), "fine_tune": {"epochs": 100, "lr": 1e-4, "batch_size": 1, "restandardise": False, **recipe["fine_tune"]},
            **{f"{k}_mean": round(float(shots[k].mean()), 4) for k in ("spearman", "kendall", "ndcg@10")},
            **{f"{k}_std": round(float(shots[k].std()), 4) for k in ("spearman", "kendall", "ndcg@10")},
            "spearman_per_seed": [round(float(v), 4) for v in shots["spearman"]]}
        seconds["few_shot"] = round(time.perf_counter() - tick, 1)
    card["seconds_to_train"] = round(seconds["graphs"] + seconds["pretrain"] + seconds["fit"])
    return save_pretrained(model, name, card, root), card


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
    views = [view_graphs("nb101", s, contrastive.views) for s in get_space("nb101").sample_many(pretrain_cells, seed=100 + seed)]
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
        "contrastive_pretraining": {"cells": pretrain_cells, "view_set": "NB-101 macro scales (VIEW_SCALES)",
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
    parser.add_argument("--pretrain-cells", type=int, default=None,
                        help="NB-101 cells whose views pretrain the encoder (default: the recipe's, 500)")
    parser.add_argument("--pretrain-epochs", type=int, default=None, help="nb101-cifar10: contrastive epochs")
    parser.add_argument("--source", default=NB101_CIFAR10_RECIPE["source"], choices=["nb101-30k", "nb101-zc"],
                        help="nb101-cifar10: the real NB-101 labels to fit")
    parser.add_argument("--train-cells", type=int, default=NB101_CIFAR10_RECIPE["train_cells"],
                        help="nb101-cifar10: fit on this many cells of the source, drawn with --seed (default all)")
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
            cells = 500 if args.pretrain_cells is None else args.pretrain_cells
            folder, card = train_zoo_nb101(args.zoo, pretrain_cells=cells, seed=args.seed,
                                           few_shot_seeds=shot_seeds, min_archs=args.min_archs, progress=False)
        print(folder)
        print(json.dumps(card["metrics"], indent=1))
        return
    if not args.data:
        parser.error("nb101-cifar10 needs --data (the folder with nb101/ and nb201/)")
    recipe = {"source": args.source, "train_cells": args.train_cells}
    if args.pretrain_cells is not None:
        recipe["pretrain_cells"] = args.pretrain_cells
    if args.pretrain_epochs is not None:
        recipe["pretrain_epochs"] = args.pretrain_epochs
    folder, card = train_nb101_cifar10(args.data, seed=args.seed, few_shot_seeds=shot_seeds, progress=False, **recipe)
    print(folder)
    print(json.dumps({"seconds": card["seconds"], **card["metrics"]}, indent=1))


if __name__ == "__main__":
    main()
