"""Linear regression with a 30-20-10 linear network (Fig. 3a-f).

Protocol (paper Sec. 5.1, ``shared/PROTOCOLS.md``): a teacher T ~ U(-1, 1) maps
inputs x ~ N(0, I) to targets T x; one pass over a fixed set of samples in
random order, one online update per sample (the first sample only measures);
weights U(-0.01, 0.01) shared by all models; eta = 1e-2; hidden errors clipped
at norm 10; ``fixed_norm`` scales each layer's update to unit norm (Fig. 3b).
"""

import numpy as np

from dinv.experiments.models_spec import ModelSpec
from dinv.experiments.regression import train_regression
from dinv.experiments.settings import CIRCUIT_DESCRIPTIONS, RINIT_DESCRIPTION
from dinv.models.network import FeedforwardNetwork

MODELS = (
    ModelSpec("BP", "bp"),
    ModelSpec("FA", "fa", feedback="random"),
    ModelSpec("PBP", "pbp"),
    ModelSpec("NDI a=0.01", "ndi", 0.01, "transpose"),
    ModelSpec("NDI a=0.001", "ndi", 0.001, "transpose"),
    ModelSpec("DI a=0.01", "di", 0.01, "transpose"),
    ModelSpec("DI a=0.001", "di", 0.001, "transpose"),
    ModelSpec("NDI R-Init a=0.01", "ndi", 0.01, "stable-random"),
    ModelSpec("DI R-Init a=0.01", "di", 0.01, "stable-random"),
)

DEFAULTS = {
    "seed": 0,
    "sizes": [30, 20, 10],
    "samples": 2000,
    "fixed_norm_samples": 4000,
    "lr": 1e-2,
    "init_scale": 0.01,
    "clip_hidden": 10.0,
    "fixed_norm": False,
    "models": None,
    "iterations": None,
    "steps": 1000,
    "dt": 0.5,
    # Population models of every circuit, by registered name (`dinv list`).
    "system": "rate-system",
    "controller": "rate-controller",
    # Gains of controller=pid-controller (Eq. 7): K_p, K_d (in units of tau_controller)
    # and tau_d / tau_controller of its derivative filters; scalars here (gain matrices:
    # dinv.circuits.pid_controller in Python).
    "pid_kp": 0.0,
    "pid_kd": 0.0,
    "pid_filter_ratio": 1.0,
    # A settle whose final residual exceeds settle_tol fell short: counted in
    # results.json ('ignore'), warned about ('warn') or an error ('raise').
    "on_unsettled": "ignore",
    "settle_tol": 1e-3,
    "parallel": True,
    "error_dtype": "float64",
    "restabilise": True,
    "rinit": {"target": -0.01, "lr": 0.5, "max_iters": 2000, "min_iters": 100},
    # Re-stabilisation during training: the R-Init descent (``rinit``) with these
    # options on top, from the current feedback: SSA gradients from one
    # eigendecomposition per step, and no minimum of steps (it ends as soon as
    # the target abscissa is reached). The spectral shift (method "shift") is
    # cheaper still, but early in training W's tiny singular values make the
    # shifted B so large that the Euler circuit diverges.
    "repair": {"min_iters": 0, "solver": "eigen"},
}
QUICK = {"samples": 300, "fixed_norm_samples": 300}

DESCRIPTIONS = {
    **CIRCUIT_DESCRIPTIONS,
    "sizes": "layer widths of the student and the teacher, input first",
    "samples": "size of the data set: one online pass, one update per sample after the "
               "first (which only measures)",
    "fixed_norm_samples": "size of the data set with fixed_norm (Fig. 3b)",
    "lr": "learning rate eta of the online updates",
    "init_scale": "initial weights U(-init_scale, init_scale), shared by all models",
    "clip_hidden": "hidden errors clipped to this norm",
    "fixed_norm": "scale every layer's update to unit Frobenius norm (Fig. 3b)",
    "iterations": "stop after this many updates (null: one pass over the data set)",
    "parallel": "run the closed-form models, curves and errors in a companion process",
    "error_dtype": "precision of the forward pass of the data-set error: 'float64' or "
                   "'float32'",
    "restabilise": "re-stabilise DI/SLDI feedback whenever a circuit turns unstable",
    "rinit": RINIT_DESCRIPTION,
    "repair": "options over rinit for re-stabilisation during training",
}
"""One line per setting (``dinv run linear-regression --help``)."""

UNITS = {
    "error": "dimensionless",
    "nmse": "dimensionless",
    "error_ratio": "dimensionless",
    "eigenvalue": "1/tau_system",
    "angle_B": "degrees",
    "angle_ndi": "degrees",
    "angle_pbp": "degrees",
    "median_angle_ndi": "degrees",
    "updates": "updates",
    "wall_seconds": "s",
}
"""Unit of every quantity of results.json (recorded in it as ``units``): ``error`` is the
summed squared error over the data set, ``nmse`` the error over the largest of any model,
``eigenvalue`` the Jacobian's spectral abscissa (time in units of tau_system)."""
NAME = "linear regression"
"""Label of the progress bar."""


def prepare(config):
    """The data, initial network and generator of a run: the arguments of
    `dinv.experiments.regression.train_regression` after its name."""
    rng = np.random.default_rng(config["seed"])
    sizes = config["sizes"]
    n = config["fixed_norm_samples"] if config["fixed_norm"] else config["samples"]
    teacher = rng.uniform(-1.0, 1.0, size=(sizes[-1], sizes[0]))
    X = rng.standard_normal((n, sizes[0]))
    Y = X @ teacher.T
    base = FeedforwardNetwork.create(
        sizes, ["linear"] * (len(sizes) - 1), rng, scale=config["init_scale"], bias=False
    )
    return config, MODELS, X, Y, base, rng


def run(config, progress=True, stop=None):
    """Train every model and record the curves of Fig. 3a-f.

    Returns
    -------
    dict
        See `dinv.experiments.regression.train_regression`.
    """
    return train_regression(NAME, *prepare(config), progress, stop)
