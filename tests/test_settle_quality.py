"""Settling quality as part of every result: counts, residuals, warnings, figure marks."""

import json

import numpy as np
import pytest
from matplotlib.figure import Figure

from dinv.analysis.figures import mark_unsettled
from dinv.circuits.settling import growing
from dinv.errors import NotSettledWarning
from dinv.experiments.cli import main
from dinv.experiments.settle_stats import SHORTFALL, SettleStats, shortfall_warnings

FIELDS = {"settles", "unsettled", "tolerance", "worst_residual", "median_residual", "unstable"}


def run(tmp_path, *args):
    out = tmp_path / "out"
    code = main(["run", *args, "--no-progress", "--out", str(out)])
    record = json.loads((out / "results.json").read_text()) if code == 0 else None
    return code, record


def test_settle_stats_count_and_median():
    """Counts, worst and the histogram median (exact to 1.2 %) against numpy."""
    rng = np.random.default_rng(0)
    residuals = 10.0 ** rng.uniform(-14, -1, size=501)
    stats = SettleStats(1e-3)
    for r in residuals:
        stats.add("DI", r, unstable=r > 0.05)
    stats.add("DI", 0.0)
    entry = stats.summary()["DI"]
    assert entry["settles"] == 502
    assert entry["unsettled"] == int(np.sum(residuals > 1e-3))
    assert entry["unstable"] == int(np.sum(residuals > 0.05))
    assert entry["worst_residual"] == residuals.max()
    median = np.sort(np.append(residuals, 0.0))[(502 - 1) // 2]
    assert entry["median_residual"] == pytest.approx(median, rel=0.012)
    # The counters survive a round trip through JSON (checkpoints).
    again = SettleStats(1e-3, json.loads(json.dumps(stats.state())))
    assert again.summary() == stats.summary()


def test_warning_only_above_the_shortfall_fraction():
    stats = SettleStats(1e-3)
    for k in range(1000):
        stats.add("rare", 1.0 if k < 10 else 1e-9)       # 1 %: no warning
        stats.add("often", 1.0 if k < 11 else 1e-9)      # 1.1 %: warning
    lines = shortfall_warnings(stats.summary())
    assert SHORTFALL == 0.01
    assert len(lines) == 1 and lines[0].startswith("often: 11 of 1000 settles (1.1%) fell short")
    assert "worst residual 1" in lines[0] and "run more steps" in lines[0]


def test_growing_readouts():
    """Changes that keep rising after the start-up transient: growing; falling: not."""
    t = np.arange(20.0)[:, None]
    transient = np.exp(-t)
    assert growing(transient + 1e-3 * np.exp(0.3 * t)).tolist() == [True]
    assert growing(transient + 1e-3 * np.exp(-0.1 * t)).tolist() == [False]
    assert growing(np.exp(0.3 * t)[:4]).tolist() == [False]  # too few checks to judge


def test_figure_marks_models_that_did_not_settle():
    entry = {"settles": 300, "unsettled": 12, "tolerance": 1e-3, "worst_residual": 0.03,
             "median_residual": 1e-6, "unstable": 0}
    fig = mark_unsettled(Figure(), {"DI a=0.01": entry, "DI a=0.1": {**entry, "unsettled": 0}})
    title = fig._suptitle.get_text()
    assert "DI a=0.01: 12 of 300 settles unsettled (worst residual 0.03)" in title
    assert "DI a=0.1" not in title
    assert mark_unsettled(Figure(), {"DI": {**entry, "unsettled": 0}})._suptitle is None


def test_regression_results_hold_settle_statistics(tmp_path, capsys):
    """Every circuit model of a regression has its settle counts in results.json and
    in its summary line; settled runs give no warning."""
    code, record = run(tmp_path, "linear-regression", "--models", "BP,DI a=0.01",
                       "--set", "samples=30")
    assert code == 0
    assert set(record["settling"]) == {"DI a=0.01"}
    entry = record["settling"]["DI a=0.01"]
    assert set(entry) == FIELDS
    assert entry["settles"] == 29 and entry["unsettled"] == 0 and entry["unstable"] == 0
    assert 0 < entry["median_residual"] <= entry["worst_residual"] <= 1e-3
    captured = capsys.readouterr()
    assert "settles: 0 of 29 unsettled" in captured.out
    assert "dinv: warning" not in captured.err


def test_unsettled_classifier_ends_with_a_warning(tmp_path, capsys):
    """mnist --quick --set steps=2 (one epoch, DI beside NDI): every DI settle falls
    short; results.json, the summary and one warning line say so."""
    code, record = run(tmp_path, "mnist", "--quick", "--epochs", "1",
                       "--models", "NDI a=0.01,DI a=0.01", "--set", "steps=2")
    assert code == 0
    entry = record["settling"]["DI a=0.01"]
    assert entry["settles"] == 150 and entry["unsettled"] == 150
    assert entry["worst_residual"] > 0.1
    assert "NDI a=0.01" not in record["settling"]
    captured = capsys.readouterr()
    assert "settles: 150 of 150 unsettled" in captured.out
    warnings = [line for line in captured.err.splitlines() if line.startswith("dinv: warning")]
    assert len(warnings) == 1
    assert warnings[0].startswith("dinv: warning: DI a=0.01: 150 of 150 settles (100.0%) fell "
                                  "short of settle_tol=0.001 (worst residual ")
    assert "run more steps (--set steps=N)" in warnings[0]


def test_on_unsettled_warn_warns_per_settle(tmp_path):
    with pytest.warns(NotSettledWarning, match="model 'DI a=0.01': the circuit has not settled"):
        code, record = run(tmp_path, "linear-regression", "--models", "DI a=0.01",
                           "--set", "samples=3", "--set", "steps=2",
                           "--set", "on_unsettled=warn")
    assert code == 0 and record["settling"]["DI a=0.01"]["unsettled"] == 2


def test_alpha_sweep_and_timescales_flag_every_case(tmp_path):
    code, record = run(tmp_path, "alpha-sweep", "--quick", "--set", "steps=100")
    assert code == 0
    for name, layer in record["layers"].items():
        residual = np.asarray(layer["circuit_residual"])
        assert layer["circuit_settled"] == (residual <= 1e-3).tolist()
        assert layer["circuit_unstable"] == [False] * residual.size
        assert record["settling"][name]["settles"] == residual.size
        assert record["settling"][name]["unsettled"] == int(np.sum(residual > 1e-3))
    code, record = run(tmp_path / "t", "timescales", "--quick", "--set", "steps=300",
                       "--set", "ratios=[1]")
    assert code == 0
    cases = record["pair"] + list(record["chains"].values())
    for case in cases:
        assert case["settled"] == (case["residual"] <= 1e-3)
        assert case["unstable"] is False
    counted = record["settling"]["layer pair"]["settles"] + record["settling"]["chains"]["settles"]
    assert counted == len(cases)
