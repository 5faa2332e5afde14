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
             batch_size: int = 1, progress: bool = False, **fine_tune) -> pd.DataFrame:
    """One row of metrics per seed: fine-tune a copy on k random architectures (``fine_tune``: more
    :meth:`GENNAPE.fine_tune` keywords, e.g. ``restandardise``), test on the rest."""
    y = np.asarray(y, dtype=float)
    if k >= len(y):
        raise ValueError(f"k = {k} leaves no test architectures out of {len(y)}")
    rows = []
    for seed in seeds:
        order = np.random.default_rng(seed).permutation(len(y))
        train, test = order[:k], order[k:]
        tuned = model.copy().fine_tune([graphs[i] for i in train], y[train], epochs=epochs, lr=lr,
                                       batch_size=batch_size, progress=progress, **fine_tune)
        before = evaluate(y[test], model.predict([graphs[i] for i in test]))
        after = evaluate(y[test], tuned.predict([graphs[i] for i in test]))
        rows.append({"seed": seed, **{f"zero_shot_{m}": v for m, v in before.items()}, **after})
    return pd.DataFrame(rows)


# -- the NB-101 → NB-201 study ---------------------------------------------------------------------
#: reference figures on the NB-201 development slice (Spearman): FLOPs alone on its 500 cells, and the
#: GENNAPE paper (zero-shot, 50-shot)
NB201_DEV_FLOPS_SPEARMAN = 0.721
PAPER_NB201 = {"zero_shot": 0.815, "50_shot": 0.910}


def study_data(data_dir: str | Path, pretrain_cells: int = 500, view_seed: int = 100, *, train: pd.DataFrame | None = None,
               view_modes=("macro",)) -> dict:
    """What :func:`study` reads, built once: featurized real NB-101 cells and labels (``train``: a table
    with ``spec`` and ``val_accuracy``, default :func:`real_nb101`), the NB-201 development slice, and
    contrastive views of ``pretrain_cells`` sampled NB-101 cells (no labels), per view mode
    (``views`` is the ``macro`` set, ``views_<mode>`` the others)."""
    from ..encoders.contrastive import view_graphs
    from ..spaces import get_space

    train = real_nb101(data_dir) if train is None else train
    dev = nb201_dev(data_dir)
    specs = get_space("nb101").sample_many(pretrain_cells, seed=view_seed) if pretrain_cells else []
    data = {"g101": graphs_of("nb101", train["spec"], "paper"), "y101": train["val_accuracy"].to_numpy(float),
            "g201": graphs_of("nb201", dev["spec"], "paper"), "y201": dev["val_accuracy"].to_numpy(float),
            "view_specs": specs}
    for mode in view_modes:
        data["views" if mode == "macro" else f"views_{mode}"] = [view_graphs("nb101", s, mode) for s in specs]
    return data


def _views(data: dict, mode: str) -> list:
    """The study's views of one mode, built on first use from ``data["view_specs"]``."""
    from ..encoders.contrastive import view_graphs

    key = "views" if mode == "macro" else f"views_{mode}"
    if key not in data:
        data[key] = [view_graphs("nb101", s, mode) for s in data["view_specs"]]
    return data[key]


def _study_members(setting: dict, seed: int, data: dict) -> list[GENNAPE]:
    from ..encoders.contrastive import ContrastiveConfig
    from ..predictors.gennape import GENNAPEConfig

    members = []
    for j in range(int(setting.get("ensemble", 1))):
        member_seed = seed * 100 + j
        model = GENNAPE(GENNAPEConfig(**{**setting.get("config", {}), "seed": member_seed}), device="cpu")
        if setting.get("contrastive") is not None:
            options = dict(setting["contrastive"])
            views = _views(data, options.get("views", "macro"))
            cells = options.pop("cells", len(views))
            if cells > len(views):
                raise ValueError(f"the setting asks for {cells} pretraining cells; study_data built {len(views)}")
            model.pretrain(views[:cells], ContrastiveConfig(**{**options, "seed": member_seed}), progress=False)
        members.append(model.fit(data["g101"], data["y101"], progress=False))
    return members


def study(settings: dict[str, dict], data: dict, *, seeds=(0, 1, 2), k: int = 50, progress: bool = True,
          out: str | Path | None = None) -> pd.DataFrame:
    """Train on the real NB-101 cells only, evaluate on the NB-201 development slice.

    ``settings`` maps a name to ``{"config": GENNAPEConfig overrides, "contrastive": ContrastiveConfig
    overrides plus ``cells`` (None: no pretraining), "ensemble": models averaged (default 1),
    "fine_tune": GENNAPE.fine_tune keyword overrides, "fine_tune_variants": {suffix: more overrides}}``;
    ``data`` comes from :func:`study_data`. Per setting and seed, one tidy row: zero-shot metrics on all
    cells, the memberships' mean entropy (NB-101 training cells after the first centre fit and at the
    end, NB-201 cells), and after fine-tuning a copy on k cells drawn with that seed, the metrics on the
    rest (with the zero-shot Spearman on the same rest). Each fine-tune variant reuses the same fitted
    model and adds a row named ``setting+suffix``. With ``out`` (a CSV), every row is appended as it
    comes and (setting, seed) pairs already in the file are skipped, so an interrupted study resumes.
    """
    import json
    import time

    from ..metrics import evaluate

    g201, y201 = data["g201"], data["y201"]
    done = set()
    if out is not None and Path(out).is_file():
        previous = pd.read_csv(out)
        done = set(zip(previous["setting"], previous["seed"]))
    rows = []
    for name, setting in settings.items():
        variants = {"": {}, **{f"+{suffix}": v for suffix, v in setting.get("fine_tune_variants", {}).items()}}
        for seed in seeds:
            if all((name + suffix, seed) in done for suffix in variants):
                continue
            start = time.perf_counter()
            members = _study_members(setting, seed, data)
            fit_seconds = time.perf_counter() - start
            predict = lambda models, graphs: np.mean([m.predict(graphs) for m in models], axis=0)  # noqa: E731
            zero = evaluate(y201, predict(members, g201))
            train = evaluate(data["y101"], predict(members, data["g101"]))
            history = members[0].cluster_history
            base = {"seed": seed, "zero_shot_spearman": zero["spearman"], "zero_shot_kendall": zero["kendall"],
                    "train_nb101_spearman": train["spearman"], "entropy_nb101_init": history[0]["entropy"],
                    "entropy_nb101_end": history[-1]["entropy"],
                    "entropy_nb201": members[0].membership_entropy(g201), "fit_seconds": round(fit_seconds, 1)}
            for suffix, extra in variants.items():
                if (name + suffix, seed) in done:
                    continue
                row = {"setting": name + suffix, **base}
                tick = time.perf_counter()
                if k:
                    order = np.random.default_rng(seed).permutation(len(y201))
                    shot, rest = order[:k], order[k:]
                    options = {"epochs": 100, "lr": 1e-4, "batch_size": 1, "restandardise": False,
                               **setting.get("fine_tune", {}), **extra}
                    tuned = [m.copy().fine_tune([g201[i] for i in shot], y201[shot], progress=False, **options)
                             for m in members]
                    test = [g201[i] for i in rest]
                    after = evaluate(y201[rest], predict(tuned, test))
                    row.update({f"{k}_shot_spearman": after["spearman"], f"{k}_shot_kendall": after["kendall"],
                                f"{k}_shot_rest_zero_shot_spearman": evaluate(y201[rest], predict(members, test))["spearman"],
                                "fine_tune_epochs": options["epochs"]})
                row["seconds"] = round(fit_seconds + time.perf_counter() - tick, 1)
                used = options if k else {**setting.get("fine_tune", {}), **extra}
                row["setting_json"] = json.dumps({**setting, "fine_tune": used}, sort_keys=True)
                rows.append(row)
                if out is not None:
                    _append_row(out, row)
                if progress:
                    print({key: (round(v, 3) if isinstance(v, float) else v) for key, v in row.items()
                           if key != "setting_json"}, flush=True)
    return pd.DataFrame(rows)


def _append_row(path: str | Path, row: dict) -> None:
    """Add one row to a CSV (columns united with the file's), through a temporary file and a rename."""
    path = Path(path)
    frame = pd.DataFrame([row])
    if path.is_file():
        frame = pd.concat([pd.read_csv(path), frame], ignore_index=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    frame.to_csv(tmp, index=False)
    tmp.replace(path)


def study_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Mean ± std per setting of the Spearman and membership-entropy columns of :func:`study`, with the
    seeds counted."""
    columns = [c for c in table.columns if c.endswith("spearman") or c.startswith("entropy")]
    summary = table.groupby("setting", sort=False)[columns].agg(["mean", "std"])
    summary.columns = [f"{c}_{stat}" for c, stat in summary.columns]
    summary["seeds"] = table.groupby("setting", sort=False)["seed"].nunique()
    return summary.reset_index()
