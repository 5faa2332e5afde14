"""The offline task, the trainer, the resumable store, the executors and the export."""
from __future__ import annotations

import io
import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from nape_utils.data.task import TaskConfig, make_task
from nape_utils.graphs import graph_of
from nape_utils.spaces import get_space
from nape_utils.zoo import (ZOO_SPACES, NothingComplete, TrainConfig, ZooStore, build_zoo, label_quality, load_zoo, plan,
                             to_dataset, train_one)
from nape_utils.zoo.export import spearman_brown

TINY = TrainConfig(epochs=1, task=TaskConfig(n_train=200, n_val=40, n_test=60))
RESULT_COLUMNS = ["space", "spec", "seed", "budget", "test_accuracy", "val_accuracy", "train_loss", "params", "flops"]


def test_task_is_deterministic_standardised_and_hard_to_memorise():
    a, b = make_task(TINY.task), make_task(TaskConfig(n_train=200, n_val=40, n_test=60))
    for split in ("train", "val", "test"):
        assert np.array_equal(a[split][0], b[split][0]) and np.array_equal(a[split][1], b[split][1])
    x, y = a["train"]
    assert x.shape == (200, 3, 16, 16) and x.dtype == np.float32 and set(y) == set(range(10))
    # each channel of each image on its own: zero mean, unit std over its 16×16 pixels
    assert np.abs(x.mean(axis=(2, 3))).max() < 1e-4 and np.abs(x.std(axis=(2, 3)) - 1).max() < 0.05
    other = make_task(TaskConfig(n_train=200, n_val=40, n_test=60, seed=1))
    assert not np.array_equal(other["train"][0], x)
    with pytest.raises(ValueError, match="size must be at least 12"):
        TaskConfig(size=8)
    with pytest.raises(ValueError, match="standardise must be one of"):
        TaskConfig(standardise="batch")


def test_dataset_standardisation_and_configs_recorded_before_it_existed():
    config = TaskConfig(n_train=200, n_val=40, n_test=60, standardise="dataset")
    x = make_task(config)["train"][0]
    assert np.abs(x.mean(axis=(0, 2, 3))).max() < 1e-4 and np.abs(x.std(axis=(0, 2, 3)) - 1).max() < 1e-3
    assert x.mean(axis=(2, 3)).std() > 0.1  # images keep their own colour offsets
    legacy = {"size": 16, "n_train": 200, "n_val": 40, "n_test": 60, "clutter": 0, "noise": 0.05, "seed": 0}
    assert TaskConfig.from_dict(legacy) == config
    assert TaskConfig.from_dict({**legacy, "standardise": "image"}).standardise == "image"


def test_training_is_seeded_and_records_everything():
    spec = "|nor_conv_3x3~0|+|skip_connect~0|none~1|+|none~0|none~1|avg_pool_3x3~2|"
    first, again = train_one("nb201", spec, 3, TINY), train_one("nb201", spec, 3, TINY)
    assert first["test_accuracy"] == again["test_accuracy"] and first["train_loss"] == again["train_loss"]
    assert {"params", "flops", "seconds", "versions", "val_accuracy"} <= set(first)
    assert all(first["versions"][name] for name in ("torch", "scipy", "scikit-learn", "networkx"))
    assert 0 <= first["test_accuracy"] <= 100


def _frame(store_path):
    with ZooStore(store_path) as store:
        return store.runs()[RESULT_COLUMNS].sort_values(["space", "spec", "seed"]).reset_index(drop=True)


def test_a_killed_build_resumes_to_the_uninterrupted_dataset(tmp_path):
    jobs = plan(["nb201"], 5, [0, 1], sample_seed=4)
    reference = tmp_path / "reference.sqlite"
    build_zoo(jobs, reference, TINY, progress=False)

    killed = tmp_path / "killed.sqlite"
    script = textwrap.dedent(f"""
        from nape_utils.zoo import build_zoo, plan
        from tests.test_zoo import TINY
        build_zoo(plan(["nb201"], 5, [0, 1], sample_seed=4), {str(killed)!r}, TINY, progress=False)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=os.getcwd())
    deadline = time.time() + 120
    while time.time() < deadline:  # kill it once some, but not all, runs are stored
        if killed.exists():
            try:
                with ZooStore(killed) as store:
                    if len(store.done()) >= 2:
                        break
            except ValueError:
                pass
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    with ZooStore(killed) as store:
        partial = len(store.done())
    assert 2 <= partial < len(jobs)
    assert build_zoo(jobs, killed, TINY, progress=False) == len(jobs) - partial
    assert _frame(killed).equals(_frame(reference))


def test_store_refuses_other_configurations_and_corruption(tmp_path):
    path = tmp_path / "zoo.sqlite"
    jobs = plan(["nb201"], 1, [0])
    build_zoo(jobs, path, TINY, progress=False)
    with pytest.raises(ValueError, match="another zoo configuration.*lr"):
        build_zoo(jobs, path, TrainConfig(epochs=1, lr=0.3, task=TINY.task), progress=False)
    with ZooStore(path) as store, pytest.raises(ValueError, match="another zoo profile"):
        store.claim_profile("nb201", {"input_shape": [3, 64, 64]})
    with pytest.raises(ValueError, match="unknown space"):
        build_zoo([("nb999", "x", 0)], path, TINY, progress=False)
    with pytest.raises(ValueError, match="malformed NB-201"):
        build_zoo([("nb201", "|oops|", 0)], path, TINY, progress=False)
    with pytest.raises(ValueError, match="is a folder; a zoo store is one SQLite file"):
        ZooStore(tmp_path)
    corrupt = tmp_path / "corrupt.sqlite"
    corrupt.write_bytes(b"this is not a database" * 100)
    with pytest.raises(ValueError, match="not a readable zoo store"):
        ZooStore(corrupt)
    truncated = tmp_path / "truncated.sqlite"
    truncated.write_bytes(path.read_bytes()[:len(path.read_bytes()) // 2])
    with pytest.raises(ValueError, match="not a readable zoo store"):
        ZooStore(truncated).runs()
    foreign = tmp_path / "foreign.sqlite"
    with sqlite3.connect(foreign) as db:
        db.execute("CREATE TABLE measurements (x REAL)")
    with pytest.raises(ValueError, match="not a readable zoo store.*other tables \\(measurements\\)"):
        ZooStore(foreign)


def test_store_reads_a_configuration_recorded_before_a_task_setting_existed(tmp_path):
    """Stores from before ``standardise`` existed recorded no value for it: they are dataset-standardised."""
    from nape_utils.zoo.build import store_config

    path = tmp_path / "old.sqlite"
    old = store_config(TrainConfig(task=TaskConfig(standardise="dataset")))
    del old["task"]["standardise"]
    ZooStore(path, old).close()
    ZooStore(path, store_config(TrainConfig(task=TaskConfig(standardise="dataset")))).close()
    with pytest.raises(ValueError, match="task.standardise: stored 'dataset', asked 'image'"):
        ZooStore(path, store_config(TrainConfig()))


def test_dask_cluster_gives_the_local_results(tmp_path):
    distributed = pytest.importorskip("distributed")
    jobs = plan(["nb201"], 2, [0])
    build_zoo(jobs, tmp_path / "local.sqlite", TINY, progress=False)
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False, protocol="tcp",
                                  host="127.0.0.1", dashboard_address=None) as cluster:
        build_zoo(jobs, tmp_path / "dask.sqlite", TINY, scheduler=cluster.scheduler_address, progress=False)
        assert sum(worker.state.executed_count for worker in cluster.workers.values()) == len(jobs)  # ran there
        import dask

        from nape_utils.zoo.executors import execute
        for _ in execute(abs, [-1, 2], scheduler=cluster.scheduler_address):  # the caller's dask is left alone
            assert dask.config.get("scheduler", None) != "dask.distributed"
    assert _frame(tmp_path / "dask.sqlite").equals(_frame(tmp_path / "local.sqlite"))


def test_export_dataset_and_label_quality(tmp_path):
    path = tmp_path / "zoo.sqlite"
    build_zoo(plan(["nb201"], 4, [0, 1]), path, TINY, progress=False)
    with ZooStore(path) as store:
        ds = to_dataset(store.runs(), config=store.config)
    assert ds["test_accuracy"].dims == ("arch", "seed") and ds.sizes == {"arch": 4, "seed": 2}
    assert set(ds["space"].values) == {"nb201"} and ds["params"].dims == ("arch",)
    quality = label_quality(ds)
    assert quality.loc["nb201", "archs"] == 4
    assert ds.attrs["reliability_bar"] == 0.8 and json.loads(ds.attrs["versions"])[0]["networkx"]
    assert spearman_brown(0.5, 2) == pytest.approx(2 / 3)
    assert spearman_brown(-1.0, 2) == 0.0 and spearman_brown(-0.3, 3) == 0.0  # disagreeing seeds: no signal


def _runs(rows):
    import pandas as pd

    return pd.DataFrame([{"space": space, "spec": spec, "seed": seed, "budget": 5, "test_accuracy": acc,
                          "val_accuracy": acc, "seconds": 1.0, "params": 10, "flops": 20}
                         for space, spec, seed, acc in rows])


def test_families_at_different_numbers_of_seeds():
    """nb201 at seeds 0-1, hiaml at 0-2: each family's labels are means over its own seeds; an arch
    missing one of its family's seeds is left out; a seed few archs have (hiaml's 3) is ignored."""
    from nape_utils.experiments.comparison import zoo_table

    rows = [("nb201", f"a{i}", seed, 50.0 + i + seed) for i in range(4) for seed in (0, 1)]
    rows += [("nb201", "partial", 0, 60.0)]
    rows += [("hiaml", f"b{i}", seed, 70.0 + 2 * i + seed) for i in range(4) for seed in (0, 1, 2)]
    rows += [("hiaml", "short", 0, 70.0), ("hiaml", "short", 1, 71.0), ("hiaml", "b0", 3, 99.0)]
    ds = to_dataset(_runs(rows))
    assert list(ds["seed"].values) == [0, 1, 2]
    nb201 = ds["space"].values == "nb201"
    assert nb201.sum() == 4 and np.isnan(ds["test_accuracy"].values[nb201, 2]).all()
    assert sorted(ds["spec"].values[~nb201]) == ["b0", "b1", "b2", "b3"]
    quality = label_quality(ds)
    assert quality.loc["nb201", "seeds"] == 2 and quality.loc["hiaml", "seeds"] == 3
    assert quality.loc["hiaml", "seed_mean_reliability"] == pytest.approx(1.0)
    table = zoo_table(ds).set_index("spec")
    assert table.loc["a0", "accuracy"] == pytest.approx(50.5) and table.loc["b1", "accuracy"] == pytest.approx(73.0)


def test_label_quality_leaves_out_degenerate_networks():
    """a0 sits at chance (seed mean 11 % ≤ 15 %): its seeds' agreement says nothing about ranking, so the
    seed Spearman is taken over a1-a4 only (ρ = 0.8; with a0 it would be 0.9)."""
    accs = {"a0": (10.0, 12.0), "a1": (50.0, 55.0), "a2": (60.0, 52.0), "a3": (70.0, 75.0), "a4": (80.0, 81.0)}
    ds = to_dataset(_runs([("nb201", spec, seed, acc[seed]) for spec, acc in accs.items() for seed in (0, 1)]))
    quality = label_quality(ds).loc["nb201"]
    assert quality["archs"] == 5 and quality["non_degenerate"] == 4
    assert quality["seed_spearman"] == pytest.approx(0.8)
    assert quality["seed_mean_reliability"] == pytest.approx(round(2 * 0.8 / 1.8, 4))
    means = np.array([np.mean(acc) for acc in accs.values()])
    assert quality["acc_min"] == 11.0 and quality["acc_max"] == 80.5
    assert quality["acc_mean"] == pytest.approx(round(means.mean(), 2))
    assert quality["acc_std"] == pytest.approx(round(means.std(), 2))


def test_export_refuses_what_it_cannot_export():
    runs = _runs([("nb201", "a", 0, 50.0), ("nb201", "b", 1, 60.0)])  # no arch has both of the family's seeds
    with pytest.raises(NothingComplete, match="no architecture has been trained at every seed"):
        to_dataset(runs)
    with pytest.raises(ValueError, match="no runs at a budget of 3 epochs; it holds budgets of 5: choose one"):
        to_dataset(runs, budget=3)


def test_train_one_downsamples_the_task_to_the_networks_resolution():
    """An OFA spec at r=128 trains on 9×9 images: the trainer resizes the task, the graph counts FLOPs there."""
    import json

    from nape_utils.data.task import task_tensors

    data = make_task(TINY.task)
    x, y = task_tensors(data, "val", 9)
    assert x.shape == (len(y), 3, 9, 9) and torch.equal(y, torch.tensor(data["val"][1]))
    assert task_tensors(data, "val", 16)[0].shape[-1] == 16
    space = get_space("ofa_resnet")
    spec = json.dumps({**json.loads(space.sample_many(1, seed=0)[0]), "r": 128})
    record = train_one("ofa_resnet", spec, 0, TINY)
    assert record["flops"] == graph_of(space, space.canonical(spec), "zoo").flops
    assert 0 <= record["test_accuracy"] <= 100


def test_refresh_exports_and_fills_the_caches_once(tmp_path):
    import pandas as pd

    from nape_utils.experiments.zoo_refresh import refresh

    store, out = tmp_path / "zoo.sqlite", tmp_path / "zoo.nc"
    build_zoo(plan(["nb201", "hiaml"], 2, [0, 1]), store, TINY, progress=False)
    caches = dict(proxy_cache=tmp_path / "proxies.csv", graf_cache=tmp_path / "graf")
    with pytest.raises(FileNotFoundError, match="include the export step"):
        refresh(store, out, steps=["proxies"], progress=False, **caches)
    with pytest.raises(ValueError, match="unknown step.*choose from export, proxies"):
        refresh(store, out, steps=["export", "proxys"], progress=False, **caches)
    refresh(store, out, steps=["graf", "proxies", "export"], progress=False, **caches)
    exported = load_zoo(out)
    proxies = pd.read_csv(caches["proxy_cache"])
    assert sorted(zip(proxies["space"], proxies["spec"])) == sorted(zip(exported["space"].values, exported["spec"].values))
    assert [p.name for p in caches["graf_cache"].iterdir()] == ["hiaml.zoo.csv.gz"]  # nb201's come from specs
    graf_bytes = next(caches["graf_cache"].iterdir()).read_bytes()
    refresh(store, out, steps=["proxies", "graf"], progress=False, **caches)  # nothing new: nothing recomputed
    assert pd.read_csv(caches["proxy_cache"]).equals(proxies)
    assert next(caches["graf_cache"].iterdir()).read_bytes() == graf_bytes


def test_load_zoo_finds_the_shipped_zoo_from_any_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    shipped = load_zoo()
    families = set(shipped["space"].values)
    # the eleven GENNAPE families; macro and mnasnet join when their build is complete and exported (session 12)
    assert shipped["test_accuracy"].dims == ("arch", "seed") and families in (set(ZOO_SPACES[:11]), set(ZOO_SPACES))
    # the shipped labels say how they were made and how reliable they are, and clear the bar they state
    quality = pd.read_json(io.StringIO(shipped.attrs["label_quality"]), orient="index")
    assert json.loads(shipped.attrs["versions"]) and json.loads(shipped.attrs["config"])["task"]
    assert set(quality.index) == families and (quality["seed_mean_reliability"] >= shipped.attrs["reliability_bar"]).all()
    with pytest.raises(FileNotFoundError, match="no zoo at .*nape zoo export"):
        load_zoo(tmp_path / "missing.nc")
    store = tmp_path / "zoo.sqlite"
    sqlite3.connect(store).execute("CREATE TABLE runs (x)").connection.close()
    with pytest.raises(ValueError, match="is a zoo store \\(SQLite\\), not an export: .*nape zoo export"):
        load_zoo(store)


def test_a_read_only_store_leaves_its_file_as_it_was(tmp_path):
    path = tmp_path / "zoo.sqlite"
    build_zoo(plan(["nb201"], 1, [0]), path, TINY, progress=False)
    before = path.read_bytes()
    with ZooStore(path, readonly=True) as store:
        assert len(store.runs()) == 1 and store.config["lr"] == TINY.lr
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            store.db.execute("DELETE FROM runs")
    assert path.read_bytes() == before
    with pytest.raises(FileNotFoundError, match="no zoo store at"):
        ZooStore(tmp_path / "missing.sqlite", readonly=True)
    with pytest.raises(ValueError, match="cannot claim a configuration"):
        ZooStore(path, {"lr": 0.1}, readonly=True)
    empty = tmp_path / "empty.sqlite"
    sqlite3.connect(empty).close()
    with pytest.raises(ValueError, match="not a readable zoo store"):
        ZooStore(empty, readonly=True)


def test_a_store_in_a_read_only_folder_is_read_but_not_written(tmp_path, monkeypatch):
    """os.access stands in for the permissions, which root (CI, containers) would ignore."""
    from nape_utils.zoo import store as store_module
    from nape_utils.zoo.build import store_config

    path = tmp_path / "zoo.sqlite"
    build_zoo(plan(["nb201"], 1, [0]), path, TINY, progress=False)
    with ZooStore(path) as writer:  # a WAL store, as a build leaves it: reading it normally needs a -shm file
        assert writer.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    before = path.read_bytes()
    writable, connect = os.access, sqlite3.connect

    def connect_without_shm(target, *args, **kwargs):  # what SQLite says when it cannot create the -shm file
        if str(target).endswith("?mode=ro"):
            raise sqlite3.OperationalError("unable to open database file")
        return connect(target, *args, **kwargs)

    monkeypatch.setattr(store_module.os, "access", lambda p, mode: writable(p, mode) and Path(p) != tmp_path)
    monkeypatch.setattr(store_module.sqlite3, "connect", connect_without_shm)
    with ZooStore(path, readonly=True) as reader:
        assert len(reader.runs()) == 1
    assert path.read_bytes() == before and not path.with_name("zoo.sqlite-shm").exists()
    with pytest.raises(ValueError, match=f"cannot write the zoo store at {path}: {tmp_path} is read-only"):
        ZooStore(path, store_config(TINY))
    with pytest.raises(ValueError, match="cannot write the zoo store .*new.sqlite"):
        ZooStore(tmp_path / "sub" / "new.sqlite", store_config(TINY))
    path.with_name("zoo.sqlite-wal").write_bytes(b"x" * 100)
    with pytest.raises(ValueError, match="keeps runs in zoo.sqlite-wal"):
        ZooStore(path, readonly=True)


def test_train_config_refuses_impossible_settings():
    for bad in ({"epochs": 0}, {"epochs": 2.5}, {"batch_size": -1}, {"lr": 0}, {"lr": "x"}, {"momentum": 1.0},
                {"weight_decay": -1e-4}, {"warmup": 1.5}, {"lr": float("nan")}, {"task": {"n_train": 10}}):
        with pytest.raises(ValueError, match=f"TrainConfig.{next(iter(bad))} must be"):
            TrainConfig(**bad)


def test_macro_and_mnasnet_are_zoo_families_that_build_and_train(tmp_path):
    """Session 12's families: in ZOO_SPACES after the first eleven (whose order the shipped plans keep), and
    their zoo profiles build, train and store like the others (channels-last, as their profiles ask)."""
    assert ZOO_SPACES[:11] == ("nb101", "nb201", "nb301", "ofa_mbv3", "ofa_pn", "ofa_resnet", "hiaml", "inception",
                               "two_path", "nago", "ghn_random")
    assert ZOO_SPACES[11:] == ("macro", "mnasnet")
    path = tmp_path / "zoo.sqlite"
    jobs = plan(["macro", "mnasnet"], 1, [0])
    assert build_zoo(jobs, path, TINY, progress=False) == 2
    with ZooStore(path, readonly=True) as store:
        runs = store.runs().set_index("space")
        profiles = dict(store.db.execute("SELECT space, profile FROM profiles"))
    for space, spec, _ in jobs:
        sp = get_space(space)
        assert sp.profile("zoo").memory_format == torch.channels_last
        assert json.loads(profiles[space])["options"] == json.loads(json.dumps(sp.profile("zoo").options))
        run = runs.loc[space]
        assert run["spec"] == spec and 0 <= run["test_accuracy"] <= 100 and np.isfinite(run["train_loss"]).all()
        assert run["params"] == graph_of(sp, spec, "zoo").params


def test_a_macro_plan_holds_distinct_networks():
    """NAS-Bench-Macro keys that differ only in where a stage's identities sit build one network; a zoo
    plan counts it once, and still grows by extension."""
    macro = get_space("macro")
    specs = [spec for _, spec, _ in plan(["macro"], 200, [0])]
    assert len({macro.trained_key(spec) for spec in specs}) == 200
    assert plan(["macro"], 30, [0]) == plan(["macro"], 200, [0])[:30]
    assert len(set(specs)) == 200 and all(spec == macro.canonical(spec) for spec in specs)
