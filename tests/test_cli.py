"""The `nape` command: the DESIGN.md contract and its error messages."""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import nbformat
import pytest
import yaml

from nape_utils.cli import main


def run(capsys, *argv, stdin: str | None = None, monkeypatch=None):
    if stdin is not None:
        monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_spaces_and_sample(capsys):
    code, out, _ = run(capsys, "spaces")
    assert code == 0 and {"nb101", "nb201", "nb301"} <= set(out.split())
    code, out, _ = run(capsys, "sample", "nb201", "-n", "5", "--seed", "7")
    first = out.splitlines()
    assert code == 0 and len(first) == 5
    assert run(capsys, "sample", "nb201", "-n", "5", "--seed", "7")[1].splitlines() == first


def test_describe_reads_stdin_and_writes_csv(capsys, monkeypatch):
    specs = "\n".join(["(4, 0, 3, 1, 4, 3)", "# a comment", "",
                       "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"])
    code, out, _ = run(capsys, "describe", "nb201", "--archs", "-", stdin=specs, monkeypatch=monkeypatch)
    rows = list(csv.DictReader(io.StringIO(out)))
    assert code == 0 and [r["spec"][:14] for r in rows] == ["|avg_pool_3x3~", "|nor_conv_3x3~"]
    assert int(rows[1]["params"]) == 1_531_546
    assert list(rows[0]) == ["spec", "params", "flops", "nodes", "edges"]


def test_describe_reports_the_bad_line(capsys, monkeypatch):
    code, _, err = run(capsys, "describe", "nb201", "--archs", "-", stdin="(4, 0, 3, 1, 4, 3)\n|bad|\n",
                       monkeypatch=monkeypatch)
    assert code == 2 and "line 2" in err and "malformed NB-201 arch string" in err
    code, _, err = run(capsys, "describe", "nb201", "--archs", "missing.txt")
    assert code == 2 and "no such file" in err


def test_graph_writes_json_dot_png(capsys, tmp_path):
    spec = "(4, 0, 3, 1, 4, 3)"
    for suffix in ("json", "dot", "png"):
        code, _, err = run(capsys, "graph", "nb201", spec, "--out", str(tmp_path / f"g.{suffix}"), "--profile", "zoo")
        assert code == 0 and (tmp_path / f"g.{suffix}").stat().st_size > 0, err
    assert json.loads((tmp_path / "g.json").read_text())["meta"]["profile"] == "zoo"
    code, _, err = run(capsys, "graph", "nb999", spec, "--out", str(tmp_path / "g.json"))
    assert code == 2 and "known spaces" in err


@pytest.fixture
def tiny_notebook(tmp_path):
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell('n: int = 3  # how many\nscale: float = 0.5  # a factor\nresults_dir: str = "."')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell(
        "from pathlib import Path\nPath(results_dir, 'out.txt').write_text(str(n * scale))")]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = tmp_path / "07_tiny.ipynb"
    nbformat.write(nb, path)
    return path


def test_run_refuses_unknown_and_mistyped_parameters(capsys, tiny_notebook, tmp_path):
    code, _, err = run(capsys, "run", str(tiny_notebook), "-p", "nn", "4", "--results", str(tmp_path / "r"))
    assert code == 2 and "has no parameter 'nn'" in err and "Did you mean 'n'?" in err and "scale: float" in err
    code, _, err = run(capsys, "run", str(tiny_notebook), "-p", "n", "many", "--results", str(tmp_path / "r"))
    assert code == 2 and "must be int" in err
    assert not (tmp_path / "r").exists()


def test_run_executes_into_a_run_directory(capsys, tiny_notebook, tmp_path):
    params = tmp_path / "p.yaml"
    params.write_text("scale: 2\n")
    code, out, err = run(capsys, "run", str(tiny_notebook), "-p", "n", "5", "-f", str(params),
                         "--results", str(tmp_path / "r"))
    assert code == 0, err
    run_dir = tmp_path / "r" / "07_tiny" / out.strip().split("/")[-1]
    assert yaml.safe_load((run_dir / "params.yaml").read_text())["n"] == 5
    assert (run_dir / "out.txt").read_text() == "10"  # results_dir was pointed at the run directory
    assert (run_dir / "07_tiny.ipynb").is_file()


def test_predict_scores_each_spec_with_a_shipped_model(capsys, monkeypatch):
    from nape_utils.graphs import graph_of
    from nape_utils.predictors.pretrained import load_pretrained

    specs = ["(4, 0, 3, 1, 4, 3)",
             "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"]
    code, out, _ = run(capsys, "predict", "nb201", "--archs", "-", "--model", "nb101-cifar10",
                       stdin="\n".join(specs), monkeypatch=monkeypatch)
    rows = list(csv.DictReader(io.StringIO(out)))
    assert code == 0 and len(rows) == 2 and rows[0]["spec"].startswith("|avg_pool_3x3~0|")
    model, _ = load_pretrained("nb101-cifar10")
    expected = model.predict([graph_of("nb201", rows[1]["spec"], "paper")])[0]
    assert float(rows[1]["prediction"]) == pytest.approx(expected, abs=1e-4)
    code, _, err = run(capsys, "predict", "nb201", "--archs", "-", "--model", "no-such-model",
                       stdin=specs[0], monkeypatch=monkeypatch)
    assert code == 2 and "no-such-model" in err


def test_zoo_seeds_per_family():
    from nape_utils.cli import _seeds_of

    spaces = ["nb201", "hiaml"]
    assert _seeds_of(spaces, ["0,1"]) == {"nb201": [0, 1], "hiaml": [0, 1]}
    assert _seeds_of(spaces, ["0,1", "hiaml=0,1,2"]) == {"nb201": [0, 1], "hiaml": [0, 1, 2]}
    with pytest.raises(ValueError, match="ofa_pn is not among the families built"):
        _seeds_of(spaces, ["0,1", "ofa_pn=0,1,2"])
    with pytest.raises(ValueError, match="no seeds for nb201"):
        _seeds_of(spaces, ["hiaml=0,1"])
    with pytest.raises(ValueError, match="comma-separated integers"):
        _seeds_of(spaces, ["0,x"])
    for bad in ("0,-1", "0,1,0"):
        with pytest.raises(ValueError, match="distinct non-negative integers"):
            _seeds_of(spaces, [bad])
    with pytest.raises(ValueError, match="name the family before '='"):
        _seeds_of(spaces, ["=1"])


def test_plan_keeps_an_architectures_seeds_together():
    from nape_utils.zoo import plan

    jobs = plan(["nb201", "hiaml"], 2, {"nb201": [0, 1], "hiaml": [0, 1, 2]})
    assert [(space, seed) for space, _, seed in jobs[:5]] == [("nb201", 0), ("nb201", 1), ("hiaml", 0), ("hiaml", 1),
                                                              ("hiaml", 2)]
    assert len(jobs) == 10 and len({spec for space, spec, _ in jobs if space == "hiaml"}) == 2
    with pytest.raises(ValueError, match="no seeds given for hiaml"):
        plan(["nb201", "hiaml"], 2, {"nb201": [0]})
    for seeds in ("0,1", [0, 0], [-1], [], [0.5]):
        with pytest.raises(ValueError, match="seeds for every family must be"):
            plan(["nb201"], 2, seeds)
    with pytest.raises(ValueError, match="n_archs must be an integer of at least 1"):
        plan(["nb201"], 0, [0])


def test_zoo_status_prints_counts_and_label_quality(capsys, tmp_path):
    from nape_utils.data.task import TaskConfig
    from nape_utils.zoo import TrainConfig, build_zoo, plan

    store = tmp_path / "zoo.sqlite"
    code, _, err = run(capsys, "zoo", "status", "--store", str(store))
    assert code == 2 and "no zoo store" in err and "nape zoo build" in err
    tiny = TrainConfig(epochs=1, task=TaskConfig(n_train=100, n_val=20, n_test=40))
    first_two = plan(["nb201"], 2, [0, 1])
    build_zoo([first_two[0], first_two[3]], store, tiny, progress=False)  # each arch at one of the two seeds
    code, out, _ = run(capsys, "zoo", "status", "--store", str(store))
    assert code == 0 and "no label quality yet: no architecture has been trained at every seed" in out
    build_zoo(plan(["nb201"], 3, [0, 1]), store, tiny, progress=False)
    code, out, _ = run(capsys, "zoo", "status", "--store", str(store))
    counts, quality = out.split("label quality")
    assert code == 0 and counts.split()[-4:] == ["nb201", "1", "3", "3"]
    header, row = quality.splitlines()[1:3]
    assert "seed_mean_reliability" in header.split() and row.split()[:3] == ["nb201", "3", "2"]
    code, explicit, _ = run(capsys, "zoo", "status", "--store", str(store), "--budget", "1")
    assert code == 0 and explicit == out
    code, _, err = run(capsys, "zoo", "status", "--store", str(store), "--budget", "7")
    assert code == 2 and "no runs at a budget of 7 epochs; it holds budgets of 1" in err
    code, _, err = run(capsys, "zoo", "export", "--store", str(store), "--out", str(tmp_path))
    assert code == 2 and "Is a directory" in err and "Traceback" not in err


def test_sweep_runs_every_grid_point_into_its_own_directory(capsys, tiny_notebook, tmp_path):
    code, out, err = run(capsys, "sweep", str(tiny_notebook), "--grid", "n=1,2", "--grid", "scale=0.5,3",
                         "--results", str(tmp_path / "r"), "--workers", "2")
    assert code == 0, err
    outputs = {Path(line).name: (Path(line) / "out.txt").read_text() for line in out.split()}
    assert outputs == {"sweep-n=1-scale=0.5": "0.5", "sweep-n=1-scale=3": "3", "sweep-n=2-scale=0.5": "1.0",
                       "sweep-n=2-scale=3": "6"}
    code, _, err = run(capsys, "sweep", str(tiny_notebook), "--grid", "n=1,2", "n=3", "--results", str(tmp_path / "r"))
    assert code == 2 and "names n twice" in err
    code, _, err = run(capsys, "sweep", str(tiny_notebook), "--grid", "n=1,", "--results", str(tmp_path / "r"))
    assert code == 2 and "a value of n is empty" in err
    code, _, err = run(capsys, "sweep", str(tiny_notebook), "--grid", "m=1,2", "--results", str(tmp_path / "r2"))
    assert code == 2 and "has no parameter 'm'" in err and not (tmp_path / "r2").exists()


def test_sweep_on_a_dask_cluster_gives_the_local_results(tiny_notebook, tmp_path):
    distributed = pytest.importorskip("distributed")
    from nape_utils.experiments.sweep import sweep

    grid = {"n": [2, 4]}
    local = sweep(tiny_notebook, grid, results_root=tmp_path / "local", workers=1, progress=False)
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False, protocol="tcp",
                                  host="127.0.0.1", dashboard_address=None) as cluster:
        remote = sweep(tiny_notebook, grid, results_root=tmp_path / "dask", scheduler=cluster.scheduler_address,
                       progress=False)
    assert [Path(d).name for d in remote] == [Path(d).name for d in local] == ["sweep-n=2", "sweep-n=4"]
    assert [(Path(d) / "out.txt").read_text() for d in remote] == ["1.0", "2.0"]
    with pytest.raises(ValueError, match="cannot reach a dask scheduler at tcp://127.0.0.1:9"):
        sweep(tiny_notebook, grid, results_root=tmp_path / "x", scheduler="tcp://127.0.0.1:9", progress=False)


def test_a_scheduler_address_that_never_answers_fails_in_time(monkeypatch):
    """A socket that accepts and stays silent (a web server, the dashboard port) hangs dask's own connect."""
    import socket
    import threading
    import time

    pytest.importorskip("distributed")
    from nape_utils.zoo import executors

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen()
    accepted = []
    threading.Thread(target=lambda: accepted.append(silent.accept()), daemon=True).start()
    monkeypatch.setattr(executors, "CONNECT_TIMEOUT", 1.0)
    address = f"tcp://127.0.0.1:{silent.getsockname()[1]}"
    start = time.perf_counter()
    with pytest.raises(ValueError, match=f"cannot reach a dask scheduler at {address} .*dashboard"):
        list(executors.execute(abs, [1], scheduler=address))
    assert time.perf_counter() - start < 10
    with pytest.raises(ValueError, match="cannot reach a dask scheduler at localhost:abc"):
        list(executors.execute(abs, [1], scheduler="localhost:abc"))
    silent.close()


def test_plan_grows_by_extension():
    from nape_utils.zoo import plan

    for space in ("nb101", "nb201"):  # NB-101's sampler draws differently for different counts
        assert plan([space], 30, [0]) == plan([space], 90, [0])[:30]


def test_zoo_commands_refuse_bad_input(capsys, tmp_path):
    code, _, err = run(capsys, "zoo", "build", "--spaces", "nb201, nb999", "--store", str(tmp_path / "z.sqlite"))
    assert code == 2 and "unknown space 'nb999'" in err
    code, _, err = run(capsys, "zoo", "export", "--store", str(tmp_path / "typo.sqlite"))
    assert code == 2 and "no zoo store at" in err and not (tmp_path / "typo.sqlite").exists()
    corrupt = tmp_path / "corrupt.sqlite"
    corrupt.write_bytes(b"not sqlite" * 500)
    code, _, err = run(capsys, "zoo", "status", "--store", str(corrupt))
    assert code == 2 and "not a readable zoo store" in err
    for option, value in (("--epochs", "0"), ("--archs", "-3"), ("--workers", "0"), ("--sample-seed", "-1")):
        with pytest.raises(SystemExit):  # argparse names the option and exits with 2
            main(["zoo", "build", option, value, "--store", str(tmp_path / "never.sqlite")])
        assert f"argument {option}: expected an integer of at least" in capsys.readouterr().err
    from nape_utils.cli import build_parser
    assert build_parser().parse_args(["bench", "rwe", "--rank-archs", "0"]).rank_archs == 0  # 0: every architecture
    code, _, err = run(capsys, "zoo", "build", "--spaces", ",", "--store", str(tmp_path / "never.sqlite"))
    assert code == 2 and "names no family" in err
    code, _, err = run(capsys, "zoo", "build", "--store", str(corrupt / "z.sqlite"))
    assert code == 2 and f"{corrupt} is a file, not a folder" in err
    assert not (tmp_path / "never.sqlite").exists()
