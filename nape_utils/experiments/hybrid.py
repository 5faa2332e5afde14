"""Training families of nape's hybrid estimator and the shipped ``hybrid-nb101`` model.

``hybrid-nb101`` is fitted on the real NB-101 labels (CIFAR-10 validation accuracy at 108 epochs of the cells
of nasbench-vis' ``data-1k.json``, which carries each cell's adjacency) and on every family of nape's zoo (their
offline-task labels). It never sees a real label of any other benchmark, so its numbers on NB-201, NB-301,
NAS-Bench-Macro, OFA-MBv3 and MnasNet are transfer. A zoo family of the target's own space is left out when
the model ranks that space (:meth:`HybridEstimator.predict`).

Features come from the proxy caches (``results/comparison/proxy_cache.csv`` for the zoo,
``results/transfer/proxy_cache.csv`` for real benchmark cells), computed where missing.

Build: ``python -m nape_utils.experiments.hybrid --data ../shared/data``.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd

from ..predictors.hybrid import DEFAULT_FEATURES, HybridConfig, HybridEstimator
from ..predictors.pretrained import PRETRAINED_DIR
from .comparison import proxy_table, zoo_table

ROOT = Path(__file__).resolve().parents[2]
ZOO = ROOT / "results" / "zoo" / "zoo.nc"
ZOO_PROXIES = ROOT / "results" / "comparison" / "proxy_cache.csv"
REAL_PROXIES = ROOT / "results" / "transfer" / "proxy_cache.csv"
NAME = "hybrid-nb101"
#: nasbench-vis' operation ids (checked against the benchmark's parameter counts)
_NB101_OPS = {-1: "input", -2: "output", 0: "conv3x3-bn-relu", 1: "conv1x1-bn-relu", 2: "maxpool3x3"}


def with_features(table: pd.DataFrame, cache: str | Path | None, progress=None) -> pd.DataFrame:
    """``table`` (space, spec, …) with the 13 proxies joined from ``cache`` (computed where missing)."""
    proxies = proxy_table(table, cache, progress=progress)
    return table.merge(proxies, on=["space", "spec"], how="left")


def zoo_families(zoo: str | Path = ZOO, cache: str | Path | None = ZOO_PROXIES) -> dict[str, pd.DataFrame]:
    """One labelled table per zoo family (``zoo-<space>``): seed-mean test accuracy and the proxies."""
    table = with_features(zoo_table(zoo), cache)
    return {f"zoo-{space}": part.reset_index(drop=True) for space, part in table.groupby("space", sort=True)}


def nb101_real_cells(data_dir: str | Path) -> pd.DataFrame:
    """The 1,000 cells of nasbench-vis' ``data-1k.json``: canonical spec and 108-epoch validation accuracy (%,
    one of the benchmark's three training runs). Read from the file's own adjacency and operations (padded
    with −3 beyond the output vertex)."""
    from ..spaces import get_space

    path = _find(data_dir, "data-1k.json")
    columns = json.loads(path.read_text())
    space = get_space("nb101")
    specs = []
    for adjacency, ops in zip(columns["adjacency"], columns["operations"]):
        n = ops.index(-2) + 1
        matrix = [[int(v) for v in row[:n]] for row in adjacency[:n]]
        specs.append(space.canonical(json.dumps({"matrix": matrix, "ops": [_NB101_OPS[o] for o in ops[:n]]})))
    table = pd.DataFrame({"space": "nb101", "spec": specs, "key": columns["key"],
                          "accuracy": 100 * np.asarray(columns["108_final_validation_accuracy"], dtype=float)})
    return table.drop_duplicates("spec").reset_index(drop=True)


def _find(data_dir: str | Path, name: str) -> Path:
    hits = sorted(Path(data_dir).rglob(name))
    if not hits:
        raise FileNotFoundError(f"{name} not found under {data_dir}; fetch it with `nape data fetch nb101-30k`")
    return hits[0]


def training_families(data_dir: str | Path, zoo: str | Path = ZOO, progress=None) -> dict[str, pd.DataFrame]:
    """The families ``hybrid-nb101`` is fitted on: real NB-101 and every zoo family."""
    return {"nb101-real": with_features(nb101_real_cells(data_dir), REAL_PROXIES, progress), **zoo_families(zoo)}


def nb201_metrics(model: HybridEstimator, data_dir: str | Path, k: int = 50, draws: int = 5) -> dict:
    """Spearman on the 500-cell NB-201 development slice: zero-shot on every cell, and k-shot (calibrated on k
    cells, tested on the others, ``draws`` draws), each beside FLOPs on the same cells."""
    from ..metrics import spearman
    from .comparison import nb201_dev_table

    table = with_features(nb201_dev_table(data_dir, ("all",)), ZOO_PROXIES)
    y = table["accuracy"].to_numpy(float)
    zero = model.predict(table)
    shots, flops_test = [], []
    for draw in range(draws):
        order = np.random.default_rng(draw).permutation(len(y))
        labelled, test = order[:k], order[k:]
        shots.append(spearman(y[test], model.calibrate(table, labelled, y[labelled])[test]))
        flops_test.append(spearman(y[test], table["flops"].to_numpy(float)[test]))
    return {"nb201_dev_zero_shot": {"spearman": round(spearman(y, zero), 4),
                                    "flops_spearman": round(spearman(y, table["flops"].to_numpy(float)), 4),
                                    "n": len(y)},
            f"nb201_dev_{k}_shot": {"spearman_mean": round(float(np.mean(shots)), 4),
                                    "spearman_sd": round(float(np.std(shots, ddof=1)), 4),
                                    "flops_spearman_mean": round(float(np.mean(flops_test)), 4), "draws": draws,
                                    "n_test": len(y) - k}}


def build(data_dir: str | Path, out_root: Path = PRETRAINED_DIR, config: HybridConfig | None = None) -> Path:
    """Fit ``hybrid-nb101`` and write ``model.json`` and ``card.json`` under ``out_root/hybrid-nb101``."""
    families = training_families(data_dir)
    model = HybridEstimator(config or HybridConfig()).fit(families)
    folder = Path(out_root) / NAME
    model.save(folder / "model.json")
    card = {"name": NAME, "kind": "hybrid", "features": list(model.config.features),
            "metrics": nb201_metrics(model, data_dir),
            "profile_of_features": "zoo", "training_families": {k: len(v) for k, v in families.items()},
            "config": json.loads(json.dumps(model.to_dict()["config"])),
            "about": "nape's hybrid estimator (nape_utils.predictors.hybrid): pool ranks of FLOPs, parameters and "
                     "five zero-cost proxies read by a pairwise linear ranker and an extra-trees forest; "
                     "scores are ranks within the pool given"}
    (folder / "card.json").write_text(json.dumps(card, indent=2, sort_keys=True) + "\n")
    return folder


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="folder with nasbench-vis' data-1k.json (e.g. ../shared/data)")
    args = parser.parse_args(argv)
    print(build(args.data))


if __name__ == "__main__":
    main()

__all__ = ["DEFAULT_FEATURES", "build", "nb101_real_cells", "training_families", "with_features", "zoo_families"]
