"""The timescale study: metrics from traces, and agreement with the linear theory."""

import json

import numpy as np
import pytest

from dinv.experiments.cli import main
from dinv.experiments.timescales import trace_metrics


def test_trace_metrics_of_a_known_exponential():
    """x(t) = x* (1 - e^{-0.1 t}): rate 0.1, time ln(100)/0.1 to 1 %, no overshoot."""
    t = np.arange(0, 400, 0.5)
    target = np.array([2.0, -1.0])
    states = target[None] * (1 - np.exp(-0.1 * t))[:, None]
    metrics = trace_metrics(t, states, target, 0.01)
    assert metrics["rate"] == pytest.approx(0.1, rel=1e-6)
    assert metrics["time"] == pytest.approx(np.log(100) / 0.1, abs=0.5)
    assert metrics["overshoot"] == 0.0


def test_trace_metrics_overshoot_and_never_converging():
    """An oscillation around x* has overshoot; a trace that ends outside has time NaN."""
    t = np.arange(0, 100, 0.5)
    target = np.array([1.0])
    ringing = target[None] * (1 - np.exp(-0.05 * t) * np.cos(t))[:, None]
    assert trace_metrics(t, ringing, target, 0.01)["overshoot"] > 0.5
    drifting = target[None] * (t / 200)[:, None]
    assert np.isnan(trace_metrics(t, drifting, target, 0.01)["time"])


def test_measured_decay_rates_match_the_jacobian(tmp_path):
    """Acceptance: for the linear layer pair, the decay rate measured from the Brian2
    traces matches -max Re eig of the circuit Jacobian within 10 % at every ratio."""
    out = tmp_path / "out"
    code = main(["run", "timescales", "--quick", "--out", str(out), "--no-progress"])
    assert code == 0
    record = json.loads((out / "results.json").read_text())
    for point in record["pair"]:
        assert point["rate"] is not None, point["ratio"]
        assert point["rate"] == pytest.approx(point["predicted_rate"], rel=0.10), point["ratio"]
        assert point["abscissa"] < 0
    assert set(record["chains"]) == {
        f"{a}, {h}" for a in ("sequential", "repeat")
        for h in ("slower up the hierarchy", "uniform", "faster up the hierarchy")}
    for label, chain in record["chains"].items():
        assert max(chain["final_error_all_layers"]) < 1e-2, label


def test_pid_part_of_the_study(tmp_path):
    """The PID grid on the reference case: zero gains are the integral controller, every
    gain pair the Euler step calls stable settles (and those it calls unstable diverge),
    the measured decay rates match the step radius, and no scalar gains here converge
    2x faster (docs/guide/reproductions.rst says why: the slowest mode is W's smallest
    singular direction)."""
    out = tmp_path / "out"
    assert main(["run", "timescales", "--quick", "--out", str(out), "--no-progress",
                 "--set", "ratios=[1]", "--set", "pid_grid_kp=[0, 1, -0.25]",
                 "--set", "pid_grid_kd=[0, 0.5]"]) == 0
    pid = json.loads((out / "results.json").read_text())["pid"]
    integral = pid["integral"]
    grid = {(p["kp"], p["kd"]): p for p in pid["grid"]}
    assert len(grid) == 6
    assert grid[(0, 0)]["time"] == integral["time"]
    assert grid[(0, 0)]["rate"] == pytest.approx(integral["rate"], rel=1e-9)
    for point in grid.values():
        assert (point["diverged"] is None) == (point["step_radius"] < 1), point
        if point["diverged"] is None:
            assert point["final_error"] < 1e-6
            assert point["rate"] == pytest.approx(point["predicted_rate"], rel=0.05)
    assert grid[(1, 0)]["overshoot"] < integral["overshoot"]  # P damps the overshoot
    assert pid["twice_as_fast"] == []
    assert pid["scan"]["rate_speedup"] < 2 and pid["scan"]["speedup"] < 2
