"""A hostile probe of the command line's newer surfaces: the spiking study's settings,
PID gains, model lists, `dinv sweep` grids and workers, and `dinv show` / `load_results`
of damaged or older results files.

Every case ends in one line ``dinv: error: ...`` naming the setting or file and what is
wrong (exit status 2, no traceback), before anything is simulated; or, where the input
is legal, in the correct result.
"""

import json

import numpy as np
import pytest

from dinv.analysis import ResultsFileError, load_results, read_results
from dinv.circuits import pid_controller, settle_layer
from dinv.errors import InputError
from dinv.experiments.cli import main

SPIKING = ["run", "spiking-inversion", "--quick", "--no-progress"]
REGRESSION = ["run", "linear-regression", "--quick", "--no-progress", "--set", "samples=20"]
PID = [*REGRESSION, "--set", 'controller="pid-controller"']
SWEEP = ["sweep", "linear-regression", "--quick", "--no-progress", "--set", "samples=20",
         "--models", "BP"]

COMMAND_ERRORS = {
    # The spiking study: time constants, steps, sizes, windows, fractions.
    "spiking tau_ms 0": (SPIKING + ["--set", "tau_ms=0"], "setting tau_ms must be a positive"),
    "spiking tau_ms negative": (SPIKING + ["--set", "tau_ms=-5"], "setting tau_ms must be a "
                                                                  "positive number, got -5"),
    "spiking tau_ms NaN": (SPIKING + ["--set", "tau_ms=NaN"], "setting tau_ms must be a "
                                                              "positive number, got nan"),
    "spiking tau_ms infinite": (SPIKING + ["--set", "tau_ms=Infinity"], "got inf"),
    "spiking tau_ms text": (SPIKING + ["--set", 'tau_ms="ten"'], "setting tau_ms must be a "
                                                                "number, got 'ten'"),
    "spiking dt 0": (SPIKING + ["--set", "dt=0"], "setting dt must be a positive number"),
    "spiking dt negative": (SPIKING + ["--set", "dt=-0.001"], "setting dt must be a positive"),
    "spiking size 1": (SPIKING + ["--set", "sizes=[1]"], "neurons per dimension must be an "
                                                         "integer >= 2, got 1"),
    "spiking size fraction": (SPIKING + ["--set", "sizes=[2.5]"], "integer >= 2, got 2.5"),
    "spiking no sizes": (SPIKING + ["--set", "sizes=[]"], "sizes must be a non-empty list"),
    "spiking duration 0": (SPIKING + ["--set", "duration=0"], "setting duration must be a "
                                                              "positive number"),
    "spiking a duration 0": (SPIKING + ["--set", "durations=[10,0]"], "setting durations: "
                                                                      "each must be a positive"),
    "spiking readout window 0": (SPIKING + ["--set", "average_fraction=0"],
                                 "average_fraction must lie in (0, 1], got 0"),
    "spiking readout window > 1": (SPIKING + ["--set", "average_fraction=1.5"],
                                   "average_fraction must lie in (0, 1], got 1.5"),
    "spiking record interval 0": (SPIKING + ["--set", "record_interval=0"],
                                  "setting record_interval must be a positive number"),
    "spiking silence all": (SPIKING + ["--set", "silence=1"], "silence must lie in [0, 1), "
                                                              "got 1"),
    "spiking silence NaN": (SPIKING + ["--set", "silence=NaN"], "got nan"),
    "spiking readout 0 ms": (SPIKING + ["--set", 'tau_readout_ms={"scn": [0], "lif": [5]}'],
                             "setting tau_readout_ms: scn must be a positive number, got 0"),
    "spiking sweep size 1": (SPIKING + ["--set", 'sweep_size={"scn": 1, "lif": 64}'],
                             "sweep_size: scn must be an integer >= 2, got 1"),
    "spiking alpha negative": (SPIKING + ["--set", "alpha=-1"], "setting alpha must be a "
                                                                "number >= 0, got -1"),
    "spiking margin 0": (SPIKING + ["--set", "margin=0"], "setting margin must be a positive"),
    "spiking case duration 0": (SPIKING + ["--set", 'case_duration={"chain": 0}'],
                                "case_duration: 'chain': 0 must be a positive time"),
    # PID gains through the command line: scalars only, finite, for a PID controller.
    "pid gain NaN": (PID + ["--set", "pid_kp=NaN"], "setting pid_kp must be a finite number"),
    "pid gain infinite": (PID + ["--set", "pid_kd=Infinity"], "pid_kd must be a finite"),
    "pid gain list": (PID + ["--set", "pid_kp=[1, 2]"], "setting pid_kp must be a number, "
                                                        "got [1, 2]"),
    "pid filter 0": (PID + ["--set", "pid_filter_ratio=0"], "pid_filter_ratio (tau_d / "
                                                            "tau_controller) must be positive"),
    "pid gain without pid": (REGRESSION + ["--set", "pid_kp=1"],
                             "pid_kp set, but controller='rate-controller' is not a PID"),
    # Model lists.
    "model twice": (REGRESSION + ["--models", "BP,BP"], "models names 'BP' more than once"),
    "model twice by --set": (REGRESSION + ["--set", 'models=["FA", "BP", "FA"]'],
                             "models names 'FA' more than once"),
    "no model": (REGRESSION + ["--models", ",,"], "--models names no models"),
    "model twice in a sweep": (SWEEP[:-2] + ["--models", "BP,BP", "--grid", "seed=0,1"],
                               "models names 'BP' more than once"),
    # Sweep grids and workers.
    "sweep empty range": (SWEEP + ["--grid", "seed=0:0"], "needs b > a"),
    "sweep reversed range": (SWEEP + ["--grid", "seed=2:1"], "needs b > a"),
    "sweep range of words": (SWEEP + ["--grid", "seed=a:b"], "seed must be a whole number"),
    "sweep unknown setting": (SWEEP + ["--grid", "nope=1,2"], "has no setting 'nope'"),
    "sweep empty value": (SWEEP + ["--grid", "seed="], "empty value"),
    "sweep grid without =": (SWEEP + ["--grid", "seed"], "--grid expects KEY=V1,V2,..."),
    "sweep value of a wrong type": (SWEEP + ["--grid", "lr=1e-2,abc"],
                                    "setting lr must be a number, got 'abc'"),
    "sweep key twice": (SWEEP + ["--grid", "seed=0,1", "--grid", "seed=2,3"], "given twice"),
    "sweep value twice": (SWEEP + ["--grid", "seed=1,1"], "gives the cell seed=1 twice"),
    "sweep no workers": (SWEEP + ["--grid", "seed=0,1", "--workers", "0"],
                         "--workers must be at least 1, got 0"),
    "sweep negative workers": (SWEEP + ["--grid", "seed=0,1", "--workers", "-1"],
                               "--workers must be at least 1, got -1"),
    "sweep negative retries": (SWEEP + ["--grid", "seed=0,1", "--retries", "-1"],
                               "--retries must be at least 0"),
}


@pytest.mark.parametrize("case", sorted(COMMAND_ERRORS))
def test_bad_settings_are_one_line_errors(case, tmp_path, capsys):
    args, message = COMMAND_ERRORS[case]
    assert main([*args, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith("dinv: error: ") and message in err, err
    assert not (tmp_path / "out").exists()


# --------------------------------------------------------------------------
# dinv show and load_results of damaged files
# --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def good_record(tmp_path_factory):
    """The record of a real (tiny) run: BP on 20 samples of the linear regression."""
    out = tmp_path_factory.mktemp("good") / "run"
    assert main([*REGRESSION, "--models", "BP", "--out", str(out)]) == 0
    return json.loads((out / "results.json").read_text())


DAMAGED = {
    "an array": ("[1, 2]", "holds an array, not the JSON object a dinv run writes"),
    "null": ("null", "holds null, not the JSON object"),
    "a number": ("3.5", "holds a number, not the JSON object"),
    "truncated": ('{"experiment": "linear-regr', "is not readable JSON"),
    "empty": ("", "is not readable JSON"),
    "not text": (bytes(range(256)), "is not readable JSON"),
    "final a string": (lambda r: {**r, "final": "x"},
                       "breaks the linear-regression results schema at final: 'x' is not of "
                       "type 'object'"),
    "nmse a string": (lambda r: {**r, "nmse": "x"}, "schema at nmse: 'x' is not of type"),
    "no config": (lambda r: {k: v for k, v in r.items() if k != "config"},
                  "at the top level: 'config' is a required property"),
    "a NaN in a curve": (lambda r: {**r, "error": {"BP": [2.0, "NaN"]}},
                         "schema at error/BP/1"),
    "no experiment": (lambda r: {k: v for k, v in r.items() if k != "experiment"},
                      "names no experiment"),
    "an unknown experiment": (lambda r: {**r, "experiment": "nope"},
                              "names the experiment 'nope', which dinv does not know"),
}


def _write(folder, content, record):
    folder.mkdir()
    if callable(content):
        content = json.dumps(content(record))
    path = folder / "results.json"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    return folder


@pytest.mark.parametrize("case", sorted(DAMAGED))
def test_show_of_a_damaged_results_file_is_one_line(case, good_record, tmp_path, capsys):
    content, message = DAMAGED[case]
    folder = _write(tmp_path / "run", content, good_record)
    assert main(["show", str(folder)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith(f"dinv: error: {folder / 'results.json'}") and message in err, err
    with pytest.raises(ResultsFileError, match="results.json"):
        read_results(folder)


@pytest.mark.parametrize("case", ["an array", "truncated", "no experiment", "final a string"])
def test_load_results_of_a_damaged_file_names_the_file(case, good_record, tmp_path):
    content, _ = DAMAGED[case]
    folder = _write(tmp_path / "run", content, good_record)
    with pytest.raises(InputError, match=str(folder / "results.json")):
        load_results(folder)


def test_show_of_a_sound_record_prints_its_table(good_record, tmp_path, capsys):
    folder = _write(tmp_path / "run", json.dumps(good_record), good_record)
    assert main(["show", str(folder)]) == 0
    out = capsys.readouterr().out
    nmse = good_record["final"]["BP"]["nmse"]
    assert "linear-regression" in out and f"BP     {nmse:.4g}" in out


def test_show_of_an_older_record_says_so(good_record, tmp_path, capsys):
    """A record of results format 1 (no results_format, no units) is shown, marked as
    older and unchecked; one whose layout this version cannot read is a one-line error."""
    old = {k: v for k, v in good_record.items() if k not in ("results_format", "units")}
    folder = _write(tmp_path / "old", json.dumps(old), good_record)
    assert main(["show", str(folder)]) == 0
    out = capsys.readouterr().out
    assert "results format 1" in out and "BP" in out
    broken = _write(tmp_path / "broken", json.dumps({**old, "final": [1, 2]}), good_record)
    assert main(["show", str(broken)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "written by an older dinv (results format 1)" in err


def test_sampled_validation_checks_the_ends_of_long_series(good_record):
    """`dinv show` checks long arrays at their ends: a bad value there is found; the
    full check (`validate_results`) finds one anywhere."""
    import jsonschema

    from dinv.analysis import validate_results

    long = {**good_record, "error": {"BP": [1.0] * 100}}
    validate_results(long, sample=True)
    for where in (0, 99):
        bad = {**good_record, "error": {"BP": [1.0] * 100}}
        bad["error"]["BP"][where] = "x"
        with pytest.raises(jsonschema.ValidationError):
            validate_results(bad, sample=True)
    middle = {**good_record, "error": {"BP": [1.0] * 100}}
    middle["error"]["BP"][50] = "x"
    validate_results(middle, sample=True)
    with pytest.raises(jsonschema.ValidationError):
        validate_results(middle)


# --------------------------------------------------------------------------
# PID gains through the API: matrices of the wrong shape, NaN, and the right answer
# --------------------------------------------------------------------------


@pytest.mark.parametrize("gains, message", [
    (dict(kp=np.ones((2, 3))), "kp must be a number or a square"),
    (dict(kp=[[np.nan]]), "kp contains NaN"),
    (dict(kd=np.ones((2, 2, 2))), "kd must have 0 or 2 dimensions"),
    (dict(kp=np.eye(2), kd=np.eye(3)), "kp and kd must have the same shape"),
    (dict(filter_ratio=float("nan")), "filter_ratio must be a finite number"),
])
def test_bad_pid_gains_are_refused(gains, message):
    with pytest.raises(InputError, match=message):
        pid_controller(**gains)


def test_pid_gain_matrices_settle_to_eq_9():
    """Legal matrices: the settled state is the steady state of Eq. (9), whatever the
    gains (the P and D terms vanish at rest)."""
    from dinv.models.rules import ndi

    rng = np.random.default_rng(3)
    W = rng.standard_normal((3, 5)) / np.sqrt(5)
    delta = rng.standard_normal((2, 3))
    kp = 0.2 * np.eye(3) + 0.05 * rng.standard_normal((3, 3))
    settled = settle_layer(W, -W.T, delta, 0.1, controller=pid_controller(kp=kp),
                           steps=4000)
    assert np.abs(settled - ndi(W, -W.T, delta, 0.1)).max() < 1e-9
