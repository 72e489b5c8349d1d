"""``dinv sweep``: grids on a 2-worker Dask LocalCluster, tables, faults."""

import json
import os
import signal
import threading
import time

import numpy as np
import pytest

from dinv.analysis import load_curves, load_sweep
from dinv.errors import InputError
from dinv.experiments.cli import main
from dinv.experiments.cluster import ClusterOptions
from dinv.experiments.registry import Experiment, get_experiment, make_config
from dinv.experiments.sweep import (
    SweepSpec,
    cell_id,
    make_cells,
    parse_grid_item,
    pays_to_pair,
    read_sweep_file,
    run_sweep,
)

distributed = pytest.importorskip("distributed")

# A linear-regression cell of a few seconds: 7 updates of two models.
TINY = {"samples": 8, "models": ["BP", "DI a=0.01"]}


@pytest.fixture(scope="module")
def cluster():
    """One 2-worker LocalCluster (single-threaded worker processes) for the module."""
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as local:
        yield ClusterOptions(scheduler=local.scheduler_address)


# ----------------------------------------------------------------- a toy experiment
# Its protocol is the module tests/sweep_toy.py, importable by the workers (pytest
# puts tests/ on sys.path, and the spawned worker processes inherit it).

TOY = Experiment(name="toy", paper="a test", module="sweep_toy")


# ----------------------------------------------------------------- the grid


def test_grid_values_ranges_and_json():
    assert parse_grid_item("seed=0:4") == ("seed", [0, 1, 2, 3])
    assert parse_grid_item("seed=2:9:3") == ("seed", [2, 5, 8])
    assert parse_grid_item("lr=0.01,1e-3") == ("lr", [0.01, 0.001])
    assert parse_grid_item("sizes=[30,20,10],[30,40,10]") == (
        "sizes", [[30, 20, 10], [30, 40, 10]])
    assert parse_grid_item('models=["BP","DI a=0.01"],["FA"]')[1] == [["BP", "DI a=0.01"],
                                                                      ["FA"]]
    assert parse_grid_item("system=rate-system")[1] == ["rate-system"]
    with pytest.raises(InputError, match="b > a"):
        parse_grid_item("seed=5:2")
    with pytest.raises(InputError, match="KEY=V1"):
        parse_grid_item("seed")


def test_cells_are_the_product_with_stable_ids():
    spec = SweepSpec("linear-regression", {"seed": [0, 1], "lr": [0.01, 0.005]},
                     {"samples": 20}, quick=True)
    cells = make_cells(spec)
    assert [c.id for c in cells] == ["seed=0,lr=0.01", "seed=0,lr=0.005", "seed=1,lr=0.01",
                                     "seed=1,lr=0.005"]
    assert cells[3].config["lr"] == 0.005 and cells[3].config["samples"] == 20
    assert cells[0].config["parallel"] is False  # one core per cell, no companion process
    assert cells == make_cells(spec)
    assert all(c.config["parallel"] for c in make_cells(spec, paired=True))
    odd = cell_id({"models": ["BP", "DI a=0.01"]})
    assert "/" not in odd and " " not in odd and odd != cell_id({"models": ["BP", "DI_a=0.01"]})


@pytest.mark.parametrize("grid, overrides, message", [
    ({"sedd": [0]}, {}, "has no setting 'sedd'"),
    ({"seed": [0]}, {"seed": 1}, "both swept"),
    ({"lr": ["fast"]}, {}, "must be a number"),
    ({"seed": [0, 0]}, {}, "twice"),
    ({"parallel": [True]}, {}, "parallel is set by the sweep"),
    ({}, {"parallel": False}, "parallel is set by the sweep"),
])
def test_bad_grids_are_one_line_errors(grid, overrides, message):
    with pytest.raises(InputError, match=message):
        make_cells(SweepSpec("linear-regression", grid, overrides))


def test_regression_tasks_take_two_cores_on_a_local_cluster_of_this_machine():
    """The regressions pair their tasks (a companion process each) on an embedded
    LocalCluster of this machine's cores; not with --workers, a scheduler, or for
    experiments without a closed-form side."""
    regression = SweepSpec("linear-regression", {"seed": [0, 1]})
    cores = len(os.sched_getaffinity(0))
    assert pays_to_pair(regression, ClusterOptions()) == (cores >= 2)
    assert not pays_to_pair(regression, ClusterOptions(workers=2))
    assert not pays_to_pair(regression, ClusterOptions(scheduler="tcp://127.0.0.1:1"))
    assert not pays_to_pair(SweepSpec("alpha-sweep", {"seed": [0, 1]}), ClusterOptions())
    assert ClusterOptions(paired=True).expected_workers() == max(1, cores // 2)
    assert ClusterOptions().expected_workers() == cores


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="pairing needs two cores")
def test_paired_sweep_forks_companions_and_gives_the_solo_numbers(tmp_path):
    """A paired sweep (its own LocalCluster, workers that may fork) runs the stacked
    cells with a companion process; each cell has the numbers of its solo run, and a
    rerun with one core per cell skips them (``parallel`` changes no number)."""
    spec = SweepSpec("linear-regression", {"seed": [0, 1]}, dict(TINY), quick=True)
    outcome = run_sweep(spec, tmp_path / "paired", progress=False, command="test")
    assert outcome.counts["done"] == 2, outcome.errors
    experiment = get_experiment("linear-regression")
    for seed in (0, 1):
        record = json.loads((tmp_path / "paired" / "cells" / f"seed={seed}" /
                             "results.json").read_text())
        assert record["config"]["parallel"] is True
        assert record["sweep"]["stacked_with"] == 1
        solo = experiment.run(make_config(experiment, True, {**TINY, "seed": seed}),
                              progress=False)
        for model, errors in solo["error"].items():
            assert np.array_equal(record["error"][model], errors)
    again = run_sweep(spec, tmp_path / "paired", ClusterOptions(workers=1), progress=False,
                      command="test")
    assert again.counts["skipped"] == 2


def test_sweep_file(tmp_path):
    path = tmp_path / "sweep.toml"
    path.write_text('experiment = "linear-regression"\nquick = true\nout = "x"\n'
                    '[grid]\nseed = "0:3"\nlr = [0.01, 0.005]\n[set]\nsamples = 20\n')
    read = read_sweep_file(path)
    assert read["grid"] == {"seed": [0, 1, 2], "lr": [0.01, 0.005]}
    assert read["set"] == {"samples": 20} and read["quick"] is True
    path.write_text('experiment = "linear-regression"\nseeds = 3\n')
    with pytest.raises(InputError, match="unknown entries seeds"):
        read_sweep_file(path)


def test_slurm_dry_run_prints_the_job_script(capsys, tmp_path):
    code = main(["sweep", "linear-regression", "--grid", "seed=0:10", "--slurm", "--dry-run",
                 "--queue", "short", "--account", "lab", "--cores", "4", "--memory", "8GB",
                 "--walltime", "02:00:00", "--jobs", "3", "--directive=--qos=low",
                 "--prologue", "module load python", "--out", str(tmp_path / "s")])
    script = capsys.readouterr().out
    assert code == 0
    for line in ("#SBATCH -p short", "#SBATCH -A lab", "#SBATCH --cpus-per-task=4",
                 "#SBATCH --mem=8G", "#SBATCH -t 02:00:00", "#SBATCH --qos=low",
                 "module load python", "OMP_NUM_THREADS=1", "--nthreads 1", "--nworkers 4"):
        assert line in script, line
    assert "10 cells" in script and "3 job(s)" in script
    assert not (tmp_path / "s").exists()  # nothing run, nothing written


def test_slurm_options_need_slurm(capsys):
    assert main(["sweep", "linear-regression", "--grid", "seed=0:2", "--queue", "short",
                 "--out", "x"]) == 2
    assert "applies to --slurm only" in capsys.readouterr().err


# ----------------------------------------------------------------- on the cluster


@pytest.fixture(scope="module")
def finished(cluster, tmp_path_factory):
    """A 4-cell linear-regression sweep (two tasks of two stacked cells on the two
    workers), run once for the tests below."""
    out = tmp_path_factory.mktemp("sweep") / "lr"
    spec = SweepSpec("linear-regression", {"seed": [0, 1, 2, 3]}, TINY, quick=True)
    return spec, out, run_sweep(spec, out, cluster, progress=False)


def test_sweep_completes_and_load_sweep_returns_its_rows(finished):
    _spec, out, outcome = finished
    assert outcome.counts["done"] == 4 and not outcome.errors
    table = load_sweep(out)
    assert list(table.columns) == ["cell", "seed", "status", "model", "metric", "value",
                                   "error"]
    assert sorted(table["cell"].unique()) == ["seed=0", "seed=1", "seed=2", "seed=3"]
    assert (table["status"] == "done").all()
    rows = {(r.seed, r.model, r.metric) for r in table.itertuples()}
    for seed in (0, 1, 2, 3):
        for model in ("BP", "DI a=0.01"):
            assert (seed, model, "nmse") in rows and (seed, model, "error_ratio") in rows
        assert (seed, "DI a=0.01", "unsettled_fraction") in rows
    assert len(table) == 4 * 5
    csv = (out / "sweep.csv").read_text().splitlines()
    assert len(csv) == 1 + len(table) and csv[0].startswith("cell,seed,status")
    curves = load_curves(out)
    assert set(curves["curve"]) == {"nmse"} and len(curves) == 4 * 2 * 8
    assert (out / "summary.png").read_bytes()[:4] == b"\x89PNG"
    # Each cell's results.json is a dinv run record, with the numbers of that cell alone,
    # though it trained stacked with another cell.
    record = json.loads((out / "cells" / "seed=1" / "results.json").read_text())
    assert record["experiment"] == "linear-regression" and record["seed"] == 1
    assert record["sweep"]["cell"] == "seed=1" and "versions" in record
    assert record["sweep"]["stacked_with"] == 1
    experiment = get_experiment("linear-regression")
    alone = experiment.run(make_config(experiment, True, {**TINY, "seed": 1}),
                           progress=False)
    for model in ("BP", "DI a=0.01"):
        assert np.array_equal(record["error"][model], alone["error"][model])
        value = table[(table.seed == 1) & (table.model == model) & (table.metric == "nmse")]
        assert value["value"].item() == alone["final"][model]["nmse"]


def test_sweep_cells_follow_the_schema_and_show(finished, capsys):
    """Every cell's results.json validates against the experiment's schema (with its
    ``sweep`` entry); `load_results` of the sweep folder has a ``cell`` column; `dinv show`
    prints the counts and the primary metric per model."""
    from dinv.analysis import load_results, validate_results

    _spec, out, _ = finished
    for path in (out / "cells").glob("*/results.json"):
        validate_results(path)
    frame = load_results(out)
    assert frame.columns[0] == "cell" and set(frame["cell"]) >= {"seed=0", "seed=3"}
    assert main(["show", str(out)]) == 0
    text = capsys.readouterr().out
    assert "sweep of linear-regression over seed: 4 done of 4 cells" in text
    assert "final nmse over the cells:" in text and "DI a=0.01" in text


def test_workers_are_set_up(finished, cluster):
    """Brian2's cache locks on, SIGINT left to the client, one BLAS thread."""
    def probe():
        from brian2 import prefs
        from threadpoolctl import threadpool_info

        return (prefs.codegen.runtime.cython.multiprocess_safe,
                signal.getsignal(signal.SIGINT) == signal.SIG_IGN,
                {pool["num_threads"] for pool in threadpool_info()})

    with distributed.Client(cluster.scheduler) as client:
        for safe, ignored, threads in client.run(probe).values():
            assert safe and ignored and threads <= {1}


def test_rerun_skips_finished_cells(finished, cluster):
    spec, out, _ = finished
    stamps = {p: p.stat().st_mtime_ns for p in (out / "cells").glob("*/results.json")}
    spec = SweepSpec(spec.experiment, {"seed": [0, 1, 2, 3, 4]}, spec.overrides, spec.quick)
    outcome = run_sweep(spec, out, cluster, progress=False)
    assert outcome.counts == {"done": 5, "error": 0, "interrupted": 0, "pending": 0,
                              "skipped": 4}
    assert stamps == {p: p.stat().st_mtime_ns for p in stamps}  # not run again
    assert len(load_sweep(out)["cell"].unique()) == 5


def test_another_sweep_in_the_folder_is_refused(finished, cluster):
    spec, out, _ = finished
    with pytest.raises(InputError, match="other set"):
        run_sweep(SweepSpec(spec.experiment, spec.grid, {"samples": 9}, True), out, cluster,
                  progress=False)


def test_killed_worker_and_failing_cell(cluster, tmp_path):
    """One cell kills its worker process (SIGKILL) mid-cell and is retried on the
    restarted worker; one raises and is recorded; the others finish."""
    marker = tmp_path / "killed-once"
    spec = SweepSpec(TOY, {"mode": ["ok", "raise", "die"], "seed": [0, 1]},
                     {"marker": str(marker)})
    outcome = run_sweep(spec, tmp_path / "toy", cluster, progress=False)
    assert marker.exists()  # a worker was killed
    assert outcome.counts["done"] == 4 and outcome.counts["error"] == 2
    assert set(outcome.errors) == {"mode=raise,seed=0", "mode=raise,seed=1"}
    error = json.loads((tmp_path / "toy" / "cells" / "mode=raise,seed=0" / "error.json")
                       .read_text())
    assert error["type"] == "ValueError" and "asked to fail" in error["message"]
    assert "Traceback" in error["traceback"]
    table = load_sweep(tmp_path / "toy")
    failed = table[table.status == "error"]
    assert len(failed) == 2 and failed["error"].str.contains("asked to fail").all()
    done = table[(table["status"] == "done") & (table["mode"] == "die")]
    assert sorted(done["value"]) == pytest.approx([0.1, 0.2])


class _StopAfterFirstCell:
    """Like `StopRequests`: asks to stop (SIGINT) once a first cell has finished."""

    def __init__(self, folder):
        self.requested = None
        self.signal_name = None
        self._folder = folder
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self):
        while not list(self._folder.glob("cells/*/results.json")):
            time.sleep(0.05)
        self.signal_name, self.requested = "SIGINT", signal.SIGINT


def test_stopped_sweep_writes_partial_tables_and_continues(cluster, tmp_path):
    out = tmp_path / "stopped"
    spec = SweepSpec(TOY, {"seed": [0, 1, 2, 3, 4, 5]}, {"mode": "sleep", "sleep": 1.0})
    outcome = run_sweep(spec, out, cluster, progress=False, stop=_StopAfterFirstCell(out))
    assert outcome.interrupted == "SIGINT"
    assert 1 <= outcome.counts["done"] < 6 and outcome.counts["pending"] >= 1
    table = load_sweep(out)
    assert set(table["status"]) == {"done", "pending"}
    time.sleep(1.5)  # the cells running when it stopped end on their own
    again = run_sweep(spec, out, cluster, progress=False)
    assert again.counts["done"] == 6 and again.counts["skipped"] >= outcome.counts["done"]


def test_command_line_failing_cells_exit_status(cluster, tmp_path, capsys):
    """A setting that raises inside the run (error_dtype=float16), in stacked groups
    with good cells: each group is run again cell by cell, the bad cells are recorded,
    the good ones done; exit status 2 with one line."""
    out = tmp_path / "cli"
    code = main(["sweep", "linear-regression", "--quick", "--grid", "seed=0,1",
                 "--grid", "error_dtype=float64,float16", "--set", "samples=8",
                 "--models", "BP", "--scheduler", cluster.scheduler, "--out", str(out),
                 "--no-progress"])
    captured = capsys.readouterr()
    assert code == 2
    assert "2 of 4 cells failed" in captured.err and "float16" in captured.err
    assert "cells: 2 done" in captured.out
    table = load_sweep(out)
    assert set(zip(table["error_dtype"], table["status"])) == {("float16", "error"),
                                                               ("float64", "done")}
    assert table.loc[table["status"] == "error", "error"].str.contains("error_dtype").all()


@pytest.mark.slow
def test_ctrl_c_stops_the_command_and_a_rerun_continues(tmp_path):
    """SIGINT to the whole process group (a Ctrl-C at the terminal, workers included)
    on an embedded 2-worker LocalCluster: exit 130 with the partial tables written;
    the same command then runs only the missing cells and exits 0."""
    import subprocess
    import sys
    from pathlib import Path

    out = tmp_path / "ctrl-c"
    command = [sys.executable, "-m", "dinv.experiments.cli", "sweep", "linear-regression",
               "--quick", "--set", "samples=200", "--models", "BP,DI a=0.01",
               # Cells that do not stack (on_unsettled=raise, see can_stack): they finish
               # one by one, so a Ctrl-C finds some pending.
               "--set", "on_unsettled=raise",
               # Sixteen cells of a second or two: a Ctrl-C after the first still finds
               # some pending (with six short ones, all were once done by then).
               "--grid", "seed=0:16", "--workers", "2", "--out", str(out), "--no-progress"]
    root = Path(__file__).resolve().parents[1]
    process = subprocess.Popen(command, cwd=root, start_new_session=True, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    while not list(out.glob("cells/*/results.json")) and time.monotonic() < deadline:
        time.sleep(0.2)
    os.killpg(process.pid, signal.SIGINT)
    _stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert "interrupted by SIGINT" in stderr
    table = load_sweep(out)
    first = set(table.loc[table["status"] == "done", "cell"])
    assert first and "pending" in set(table["status"])
    again = subprocess.run(command, cwd=root, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr
    assert f"16 done ({len(first)} already before)" in again.stdout
    assert set(load_sweep(out)["status"]) == {"done"}
