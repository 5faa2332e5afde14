"""GENNAPE's transfer protocol: train on one family, predict others zero-shot, then k-shot fine-tune.

Zero-shot: the model predicts every architecture of the target family. k-shot: for each seed, k
random architectures of the target family fine-tune a copy of the model and the rest are the test
set; metrics are averaged over seeds.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..encoders import featurize
from ..graphs import graph_of
from ..metrics import evaluate
from ..predictors.gennape import GENNAPE


def graphs_of(space: str, specs, profile: str) -> list:
    """Featurized CGs of ``specs`` (what GENNAPE reads)."""
    return [featurize(graph_of(space, s, profile)) for s in specs]


def real_nb101(data_dir: str | Path) -> pd.DataFrame:
    """The real NB-101 labels (zc_nasbench101.json): one row per distinct canonical cell, the
    validation accuracy averaged over the records that prune to it."""
    from ..data import load_benchmark

    table = load_benchmark("nb101-zc", data_dir)
    return table.groupby("spec", as_index=False)["val_accuracy"].mean()


def nb201_dev(data_dir: str | Path) -> pd.DataFrame:
    """The 500-cell NB-201 development slice: spec and CIFAR-10 validation accuracy (%)."""
    from ..spaces import get_space

    table = pd.read_csv(Path(data_dir) / "nb201" / "nb201_dev_subset.csv")
    space = get_space("nb201")
    return pd.DataFrame({"spec": [space.canonical(s) for s in table["arch_str"]], "val_accuracy": table["cifar10_val_acc"]})


def zero_shot(model: GENNAPE, graphs: list, y) -> dict[str, float]:
    return evaluate(np.asarray(y, dtype=float), model.predict(graphs))


def few_shot(model: GENNAPE, graphs: list, y, k: int = 50, seeds=(0, 1, 2), epochs: int = 100, lr: float = 1e-4,
             batch_size: int = 1, progress: bool = False) -> pd.DataFrame:
    """One row of metrics per seed: fine-tune a copy on k random architectures, test on the rest."""
    y = np.asarray(y, dtype=float)
    if k >= len(y):
        raise ValueError(f"k = {k} leaves no test architectures out of {len(y)}")
    rows = []
    for seed in seeds:
        order = np.random.default_rng(seed).permutation(len(y))
        train, test = order[:k], order[k:]
        tuned = model.copy().fine_tune([graphs[i] for i in train], y[train], epochs=epochs, lr=lr,
                                       batch_size=batch_size, progress=progress)
        before = evaluate(y[test], model.predict([graphs[i] for i in test]))
        after = evaluate(y[test], tuned.predict([graphs[i] for i in test]))
        rows.append({"seed": seed, **{f"zero_shot_{m}": v for m, v in before.items()}, **after})
    return pd.DataFrame(rows)
