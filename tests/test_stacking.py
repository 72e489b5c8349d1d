"""Runs trained together (`dinv.experiments.stacking`) give each run its own numbers."""

import numpy as np
import pytest

from dinv.errors import InputError
from dinv.experiments.linear_regression import RATE_MODELS
from dinv.experiments.registry import get_experiment, make_config
from dinv.experiments.stacking import can_stack, run_stacked


def assert_same(a, b, path="results"):
    """Equal bit for bit: same keys, same types of containers, NaNs in the same places."""
    if isinstance(a, dict):
        assert isinstance(b, dict) and set(a) == set(b), f"{path}: keys {set(a) ^ set(b)}"
        for key in a:
            assert_same(a[key], b[key], f"{path}/{key}")
    elif isinstance(a, (list, tuple)) and not np.ndim(a) == 0:
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
