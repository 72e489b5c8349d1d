"""Runs trained together (`dinv.experiments.stacking`) give each run its own numbers."""

import copy

import numpy as np
import pytest

from dinv.errors import InputError
from dinv.experiments import linear_regression
from dinv.experiments.linear_regression import RATE_MODELS
from dinv.experiments.registry import get_experiment, make_config
from dinv.experiments.regression import CircuitUpdate, ClosedFormSide, RegressionCell
from dinv.experiments.stacking import can_stack, run_stacked
from dinv.theory import stack_c


def assert_same(a, b, path="results"):
    """Equal bit for bit: same keys, same types of containers, NaNs in the same places."""
    if isinstance(a, dict):
        assert isinstance(b, dict) and set(a) == set(b), f"{path}: keys {set(a) ^ set(b)}"
        for key in a:
            assert_same(a[key], b[key], f"{path}/{key}")
    elif isinstance(a, (list, tuple)) and np.ndim(a) != 0:
        assert type(a) is type(b) and len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{path}/{i}")
    elif isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        assert np.shape(a) == np.shape(b), path
        assert np.array_equal(a, b, equal_nan=True), path
    elif isinstance(a, float) and np.isnan(a):
        assert isinstance(b, float) and np.isnan(b), path
    else:
        assert a == b and type(a) is type(b), f"{path}: {a!r} != {b!r}"


RATE = [spec.name for spec in RATE_MODELS]
"""The linear regression's rate models: its spiking DI models train in passes of their
own and never stack."""


def configs(name, overrides):
    experiment = get_experiment(name)
    return [make_config(experiment, quick=True, overrides=o) for o in overrides]


def check_stacked_equals_solo(name, cfgs):
    assert can_stack(name, cfgs) == [list(range(len(cfgs)))]
    stacked = run_stacked(name, cfgs, progress=False)
    experiment = get_experiment(name)
    for config, together in zip(cfgs, stacked):
        alone = experiment.run(config, progress=False, stop=None)
        assert_same(alone, together)


def test_linear_regression_three_seeds_stacked_equal_solo():
    """Three seeds of the quick linear regression, trained together, each bit for bit
    as alone (errors, curves, re-stabilisations, settle statistics)."""
    cfgs = configs("linear-regression", [{"seed": s, "models": RATE} for s in (0, 1, 2)])
    check_stacked_equals_solo("linear-regression", cfgs)


def test_nonlinear_regression_other_leaks_and_seeds_stacked_equal_solo():
    """Runs with other models (other leaks of DI and SLDI) and seeds stack too."""
    cfgs = configs("nonlinear-regression", [
        {"seed": 0, "iterations": 60, "models": ["BP", "DI a=0.01", "SLDI a=0.01"]},
        {"seed": 5, "iterations": 60, "models": ["NDI a=0.001", "DI a=0.001",
                                                 "SLDI a=0.001", "DI R-Init a=0.01"]},
    ])
    check_stacked_equals_solo("nonlinear-regression", cfgs)


def test_can_stack_groups_by_shared_settings():
    cfgs = configs("linear-regression", [
        {"seed": 0, "models": RATE}, {"seed": 1, "lr": 0.02, "models": RATE},
        {"seed": 2, "models": RATE}, {"seed": 3, "on_unsettled": "raise", "models": RATE},
        {"seed": 4, "lr": 0.02, "models": ["BP"]}, {"seed": 5, "steps": 500, "models": RATE},
        {"seed": 6}, {"seed": 7, "models": ["DI-SCN a=0.1"]},
    ])
    # All models (null) include the spiking DI models: those runs train alone.
    assert can_stack("linear-regression", cfgs) == [[0, 2], [1, 4], [3], [5], [6], [7]]
    assert can_stack("mnist", cfgs[:2]) == [[0], [1]]
    with pytest.raises(InputError, match="cannot train together"):
        run_stacked("linear-regression", cfgs[:2], progress=False)
    assert run_stacked("linear-regression", [], progress=False) == []


def side_runs(overrides):
    """RegressionCells of the quick linear regression, one per dict of ``overrides``."""
    return [RegressionCell(*linear_regression.prepare(config))
            for config in configs("linear-regression", overrides)]


def test_closed_form_side_gives_each_run_its_numbers_alone():
    """The closed-form side of several runs (each rule's learners of all runs trained as one
    stack, all curves recorded as one stack) gives each run exactly its numbers alone,
    also where a stack mixes layouts (B = -W^T is a transposed array, FA's and R-Init's
    feedback are not) that numpy would keep when all of a run's arrays share one."""
    cells = side_runs([{"seed": 0, "iterations": 25, "models": ["NDI a=0.01", "PBP"]},
                       {"seed": 1, "iterations": 25,
                        "models": ["BP", "FA", "NDI R-Init a=0.01", "NDI a=0.001"]}])
    update = cells[0].update

    def run(group):
        side = ClosedFormSide(copy.deepcopy([cells[r].side_run() for r in group]), update, 25)
        for it in range(25):
            side.step(it, [cells[r].order[it] for r in group], None)
        return side.results()

    together = run([0, 1])
    for r in (0, 1):
        (errors, values), = run([r])
        assert_same(errors, together[r][0])
        assert_same(values, together[r][1])
    assert together[0][1]["angle_ndi"].shape == (1, 1, 25)
    assert np.all(np.isfinite(together[1][1]["eigenvalue"]))


def test_stack_c_gives_c_order_whatever_the_layouts():
    rng = np.random.default_rng(0)
    transposed = [rng.standard_normal((4, 3)).T for _ in range(2)]
    stacked = stack_c(transposed)
    assert stacked.flags.c_contiguous and stacked.shape == (2, 3, 4)
    np.testing.assert_array_equal(stacked, np.stack(transposed))
    assert not np.stack(transposed).flags.c_contiguous  # what stack_c avoids


def test_closed_form_side_refuses_copies_that_drift_from_the_simulation():
    """The side repeats each circuit learner's update from the errors the simulation sends
    and checks the result against the simulation's parameter sums: a mismatch names the
    model and stops the run."""
    cell, = side_runs([{"seed": 0, "iterations": 3, "models": ["BP", "DI a=0.01"]}])
    side = ClosedFormSide([cell.side_run()], cell.update, 3)
    hidden = [np.zeros((1, 1, 20))]
    with pytest.raises(RuntimeError, match="copies of DI a=0.01 no longer match"):
        side.step(0, [cell.order[0]], CircuitUpdate(hidden, np.zeros(1), {}))
